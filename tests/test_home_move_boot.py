"""Home-move rows say which boot they were stamped in.

The host clock starts again at every boot.  Rows were told apart by their stamps alone:
one stamped more than SAME_BOOT_SLACK (600 s) later than a row being written was taken
for an earlier boot's and dropped.  Writers stamp before they write, so a row of this boot
can be stamped a little later than the next one written (test_review16_hand_move_row_race);
but an earlier boot's row stamped less than 600 s ahead of the new clock then stayed, and
once the new clock passed its stamp it held its VM down (and the memory-follow state read
it as this boot's last move of the VM).  Each row now carries the boot id of the clock it
was read on (Hypervisor.boot_id: Linux's boot id on Xen), and a row of another boot is
dropped and holds nothing down whatever its stamp.  Rows without one (written before, or
by a host that cannot say) are told by their stamps as before."""
import sqlite3

import pytest

from xapi_numa.backends import boot
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core import rebalance
from xapi_numa.core.topology import Topology
from xapi_numa.ops.affinity_follow import hold_down_hand_move
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HAND, HomeMove, HomeMoves
from xapi_numa.state.schema import SCHEMA_VERSION

HOLD = rebalance.Settings().hold_down
BEFORE, AFTER = "6cb3e8cb-99bc-4c42-9880-b70d28c32893", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"


def move(uuid, at, kind="balance"):
    return HomeMove(uuid, at, 0, 1, kind, kind)


def test_an_earlier_boots_row_stamped_just_ahead_of_the_new_clock_holds_nothing_and_goes(tmp_path):
    db = Database(str(tmp_path / "l.db"))
    HomeMoves(db, BEFORE).record(move("vm-old", 500.0, HAND), HOLD)  # 500 s into the boot before
    homes = HomeMoves(db, AFTER)                                     # rebooted: the clock reads 0 again
    assert homes.last_moved(100.0) == {}
    assert homes.last_moved(520.0) == {}, "the earlier boot's row holds its VM down in this boot"
    homes.record(move("vm-new", 120.0), HOLD)
    assert [m.uuid for m in homes.recent()] == ["vm-new"]


def test_an_earlier_boots_row_stamped_behind_the_new_clock_holds_nothing_and_goes(tmp_path):
    """The boot before lasted 50 s; this one reads 300 s: the old stamp looks like this boot's."""
    db = Database(str(tmp_path / "l.db"))
    HomeMoves(db, BEFORE).record(move("vm-old", 50.0), HOLD)
    homes = HomeMoves(db, AFTER)
    assert homes.latest(300.0) == {}
    homes.record(move("vm-new", 300.0), HOLD)
    assert list(homes.latest(310.0)) == ["vm-new"] and len(homes.recent()) == 1


def test_rows_of_this_boot_stay_however_far_ahead_of_the_row_written(tmp_path):
    """Same boot id: no stamp makes a row an earlier boot's (a writer that stamped long
    before it wrote, a hand move's row and the daemon's period's)."""
    db = Database(str(tmp_path / "l.db"))
    HomeMoves(db, AFTER).record(move("vm-a", 2000.0, HAND), HOLD)
    HomeMoves(db, AFTER).record(move("vm-b", 1000.0), HOLD)
    assert set(HomeMoves(db, AFTER).last_moved(2010.0)) == {"vm-a", "vm-b"}


def test_rows_that_do_not_say_their_boot_are_told_by_their_stamps_as_before(tmp_path):
    db = Database(str(tmp_path / "l.db"))
    unknown = HomeMoves(db)  # written before rows said their boot (or by a host that cannot say)
    unknown.record(move("vm-far", 86400.0), HOLD)
    unknown.record(move("vm-near", 500.0), HOLD)
    homes = HomeMoves(db, AFTER)
    homes.record(move("vm-new", 120.0), HOLD)
    assert [m.uuid for m in homes.recent()] == ["vm-near", "vm-new"]  # only the far one went, as before
    assert set(homes.last_moved(130.0)) == {"vm-new"} and set(homes.last_moved(520.0)) == {"vm-near", "vm-new"}
    # and a writer that cannot say its boot leaves rows that do say theirs to the stamps too
    HomeMoves(db).record(move("vm-x", 100.0), HOLD)
    assert "vm-new" in {m.uuid for m in homes.recent()}


def test_a_schema_11_log_keeps_its_rows_which_do_not_say_their_boot(tmp_path):
    path = str(tmp_path / "l.db")
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE home_move (uuid TEXT NOT NULL, moved_at REAL NOT NULL, from_node INTEGER NOT NULL, "
                "to_node INTEGER NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', "
                "followed_domid INTEGER NOT NULL DEFAULT -1, followed_pages INTEGER NOT NULL DEFAULT 0)")
    old.execute("INSERT INTO home_move VALUES ('vm-1', 90.0, 0, 1, 'swap', 'swap', 3, 10)")
    old.execute("PRAGMA user_version=11")
    old.commit()
    old.close()
    homes = HomeMoves(Database(path), AFTER)
    assert homes.latest(100.0)["vm-1"].followed_pages == 10  # not known to be another boot's: kept
    homes.record(move("vm-2", 95.0), HOLD)
    assert set(homes.latest(100.0)) == {"vm-1", "vm-2"}
    with homes.db.read() as conn:
        assert conn.execute("SELECT uuid, boot FROM home_move ORDER BY rowid").fetchall() == [
            ("vm-1", ""), ("vm-2", AFTER)]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 12


@pytest.mark.parametrize("text, expected", [
    (BEFORE + "\n", BEFORE), (BEFORE.upper() + "\n", BEFORE), ("", ""), ("not-a-boot-id\n", ""),
    (None, "")])
def test_the_boot_id_is_linuxs_or_nothing(tmp_path, text, expected):
    path = tmp_path / "boot_id"
    if text is not None:
        path.write_text(text)
    assert boot.boot_id(str(path)) == expected


def test_the_xen_adapter_says_dom0s_boot_id():
    xen = pytest.importorskip("xapi_numa.backends.xen")
    assert xen.XenHypervisor.boot_id() == boot.boot_id()


class Booted(SimHypervisor):
    """A simulated host that says which boot its clock is of."""

    def boot_id(self) -> str:
        return AFTER


def test_the_daemon_and_a_move_by_hand_stamp_their_rows_with_the_hosts_boot(tmp_path):
    path = str(tmp_path / "host")
    SimHypervisor.init(path, Topology.uniform(2, 2, 4 << 30), "credit2", 1)
    hv = Booted(path)
    hv.create("g", 1, 256 << 20, dtype="pvh")
    db = Database(str(tmp_path / "l.db"))
    HomeMoves(db, BEFORE).record(move("vm-old", hv.clock() + 60.0), HOLD)  # the boot before, a minute further on
    rt = Runtime(hv, db, Settings())
    assert rt.rebalancer.homes.boot == AFTER
    g = next(d for d in hv.domains() if d.name == "g")
    hold_down_hand_move(hv, db, g, 0, 1, None)
    with db.read() as conn:
        assert conn.execute("SELECT uuid, boot FROM home_move").fetchall() == [(g.uuid, AFTER)]
