"""The state database's guarantees: private files, clear errors, one ledger even when
its files are deleted under a running process, and concurrent first opens."""
import multiprocessing
import os
import stat
import time

import pytest

from xapi_numa.errors import StateError
from xapi_numa.state.db import Database
from xapi_numa.state.ledger import Ledger

G = 1 << 30


def test_files_are_private(tmp_path):
    path = str(tmp_path / "l.db")
    Ledger(path).reserve("vm", {0: G}, 60, lambda: {0: 4 * G})
    for name in os.listdir(str(tmp_path)):
        mode = stat.S_IMODE(os.stat(str(tmp_path / name)).st_mode)
        assert mode & 0o077 == 0, (name, oct(mode))


def test_a_missing_directory_is_refused_and_named(tmp_path):
    path = str(tmp_path / "nowhere" / "l.db")
    with pytest.raises(StateError) as err:
        Database(path)
    assert str(tmp_path / "nowhere") in err.value.message and "XAPI_NUMA_LEDGER" in err.value.message
    assert not os.path.exists(str(tmp_path / "nowhere"))


@pytest.mark.parametrize("under", [("a-file",), ("a-file", "sub")])
def test_a_path_under_a_file_is_called_that_not_a_missing_directory(tmp_path, under):
    """A --ledger under a regular file was called a directory that does not exist ("create it")."""
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(StateError) as err:
        Database(str(tmp_path.joinpath(*under) / "l.db"))
    assert "{} is not a directory".format(tmp_path / "a-file") in err.value.message, err.value.message
    assert "create it" not in err.value.message and (tmp_path / "a-file").read_text() == "x"


def test_a_file_that_is_not_a_database_is_a_clear_state_error(tmp_path):
    path = tmp_path / "l.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError) as err:
        Ledger(str(path)).outstanding()
    assert str(path) in err.value.message


def test_a_damaged_database_is_not_taken_for_a_full_disk(tmp_path):
    """"database disk image is malformed" named the disk: the hint said it might be full or
    read-only, for a file that is damaged."""
    import sqlite3
    path = str(tmp_path / "l.db")
    ledger = Ledger(path)
    for i in range(50):
        ledger.reserve("vm-{}".format(i), {0: 1}, 600, lambda: {0: 1 << 40})
    ledger.close()
    plain = sqlite3.connect(path)
    plain.execute("PRAGMA wal_checkpoint")
    plain.close()
    with open(path, "r+b") as f:
        f.seek(1100)
        f.write(b"\xff" * (os.path.getsize(path) - 1100))
    with pytest.raises(StateError) as err:
        Ledger(path).reservations()
    assert "full or read-only" not in err.value.message and "-wal and -shm" in err.value.message, err.value.message


def test_deleted_files_do_not_split_the_ledger(tmp_path):
    path = str(tmp_path / "l.db")
    holder = Ledger(path)
    holder.reserve("first", {0: 6 * G}, 60, lambda: {0: 7 * G})
    for name in os.listdir(str(tmp_path)):
        os.unlink(str(tmp_path / name))  # someone deletes the ledger under a running process
    other = Ledger(path)
    other.reserve("second", {0: 4 * G}, 60, lambda: {0: 7 * G})
    # the holder notices the file is not the one it had open and reopens it: one ledger
    assert holder.outstanding() == {0: 4 * G}
    with pytest.raises(Exception):
        holder.reserve("third", {0: 4 * G}, 60, lambda: {0: 7 * G})  # 4 + 4 > 7: refused
    assert sum(Ledger(path).outstanding().values()) == 4 * G


def _open_and_reserve(args):
    path, i, start_at = args
    time.sleep(max(0.0, start_at - time.time()))  # every worker opens the fresh file at once
    try:
        Ledger(path).reserve("vm-{}".format(i), {0: 1}, 60, lambda: {0: 1 << 40})
        return "ok"
    except Exception as err:  # noqa: BLE001 - the test reports any failure
        return "{}: {}".format(type(err).__name__, err)


def test_many_concurrent_first_opens_all_succeed(tmp_path):
    path = str(tmp_path / "fresh.db")
    # spawned, not forked: a worker forked from this long-lived test process once inherited a
    # lock held at the fork and hung the whole suite (twice, on a loaded machine); and bounded
    with multiprocessing.get_context("spawn").Pool(16) as pool:
        start_at = time.time() + 5.0  # after the spawned workers have started
        results = pool.map_async(_open_and_reserve, [(path, i, start_at) for i in range(64)],
                                 chunksize=1).get(timeout=300)
    assert results.count("ok") == 64, [r for r in results if r != "ok"][:3]
    assert len(Ledger(path).reservations()) == 64


def test_a_full_disk_mid_transaction_is_a_state_error_naming_the_file(tmp_path):
    """SQLite rolls a transaction back by itself when the disk is full: what the caller gets
    is still the one state error (not "cannot rollback - no transaction is active")."""
    db = Database(str(tmp_path / "full.db"))
    with db.write() as conn:
        conn.execute("CREATE TABLE big (x BLOB)")
    pages = db._connection().execute("PRAGMA page_count").fetchone()[0]
    db._connection().execute("PRAGMA max_page_count={}".format(pages + 2))  # a full disk, for this file
    with pytest.raises(StateError) as err:
        with db.write() as conn:
            for _ in range(100):
                conn.execute("INSERT INTO big VALUES (zeroblob(4000))")
    assert "full" in err.value.message and str(tmp_path / "full.db") in err.value.message
    with db.read() as conn:  # and the file is still usable
        assert conn.execute("SELECT COUNT(*) FROM big").fetchone()[0] == 0


def test_the_home_move_log_outlives_a_reboot_of_the_host_clock(tmp_path):
    """The host clock restarts at boot: an earlier boot's moves hold nothing down, and the
    log keeps recording (it once pruned every new row behind 1000 later-stamped old ones)."""
    from xapi_numa.state.homes import KEEP, HomeMove, HomeMoves
    log = HomeMoves(Database(str(tmp_path / "l.db")))
    for i in range(KEEP):
        log.record(HomeMove("vm-{}".format(i % 20), 2000000.0 + i, 0, 1, "move", "before the reboot"))
    assert log.last_moved(150.0) == {}  # after the reboot the clock reads 150 s
    log.record(HomeMove("vm-new", 100.0, 0, 1, "move", "after the reboot"))
    assert log.last_moved(150.0) == {"vm-new": 100.0}
    for i in range(KEEP + 5):
        log.record(HomeMove("vm-{}".format(i), 200.0 + i, 1, 0, "swap", "later"))
    assert len(log.recent()) == KEEP and log.recent()[-1].uuid == "vm-{}".format(KEEP + 4)


def test_a_second_open_in_one_process_keeps_the_first_ones_locks(tmp_path):
    """Opening the database a second time in a process (a foreground move-memory does)
    opened and closed the file, which drops every POSIX lock the process holds on it: the
    next process to close took itself for the last user and deleted the live WAL, and the
    first connection's later reservations were lost to every other process (an over-commit)."""
    import subprocess
    import sys
    from xapi_numa.errors import NoCapacity
    from xapi_numa.state.ledger import Ledger
    G = 1 << 30
    path = str(tmp_path / "ledger.db")
    first = Ledger(path)
    first.reserve("vm-a", {0: 4 * G}, 600, lambda: {0: 7 * G})
    second = Ledger(path)
    second.outstanding()
    second.close()

    def other(code):
        return subprocess.run([sys.executable, "-c", "from xapi_numa.state.ledger import Ledger; l = Ledger({!r}); {}"
                               .format(path, code)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, check=True).stdout.strip()
    assert other("print(l.outstanding()); l.close()") == "{0: 4294967296}"
    assert os.path.exists(path + "-wal")
    first.reserve("vm-b", {0: 2 * G}, 600, lambda: {0: 7 * G})
    assert other("print(l.outstanding())") == "{0: 6442450944}"
    with pytest.raises(NoCapacity):
        first.reserve("vm-c", {0: 3 * G}, 600, lambda: {0: 7 * G})


def test_ended_moves_of_gone_vms_leave_the_journal_after_an_hour(tmp_path):
    """One row per VM ever moved, read whole several times a cycle: 20,000 rows made a
    cycle 1.2 s.  xapi-numad's upkeep drops the ended moves of VMs gone for an hour."""
    from xapi_numa.backends.sim.backend import SimHypervisor
    from xapi_numa.core.actions import MoveMemory
    from xapi_numa.core.topology import Topology
    from xapi_numa.ops.move_memory import move_now
    from xapi_numa.ops.runtime import MOVES_KEPT_S, Runtime, Settings
    from xapi_numa.state.moves import MoveJournal
    topo = Topology.uniform(2, 4, 8 << 30)
    sim = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit2", 1, dom0_vcpus=1, dom0_memory=256 << 20)
    now = [1000.0]
    db = Database(str(tmp_path / "l.db"), clock=lambda: now[0])
    uuids = []
    for i in range(3):
        domid = sim.create("vm{}".format(i), 1, 64 << 20, dtype="pvh", soft=topo.cpus_of_nodes([0]), load="idle")
        uuids.append(next(d.uuid for d in sim.domains() if d.domid == domid))
        move_now(sim, db, MoveMemory(domid, uuids[-1], 1, max_pages=1000))
        if i < 2:
            sim.destroy(domid)
    journal = MoveJournal(db)
    assert len(journal.rows()) == 3
    rt = Runtime(sim, db, Settings(rebalancing=False))
    rt.cycle()
    assert len(journal.rows()) == 3            # gone, but not for an hour yet
    now[0] += MOVES_KEPT_S + 1
    sim.run(MOVES_KEPT_S + 1)  # (their age is the host clock's: the wall clock alone can step)
    rt.cycle()
    assert [r.uuid for r in journal.rows()] == [uuids[2]] and journal.status(uuids[2]).state == "done"


def test_a_schema_4_ledger_gets_the_home_move_notes_columns(tmp_path):
    """Schema 4 (one day's builds) had the notes' table without vnode and soft_before, and a
    ledger stamped 4 was never set up again: every rebalance period failed on the column."""
    import sqlite3
    from xapi_numa.state.homes import HomeMoves
    path = str(tmp_path / "l.db")
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE home_move_intent (uuid TEXT PRIMARY KEY, domid INTEGER NOT NULL, "
                "from_node INTEGER NOT NULL, to_node INTEGER NOT NULL)")
    old.execute("INSERT INTO home_move_intent VALUES ('vm-1', 3, 0, 1)")
    old.execute("PRAGMA user_version=4")
    old.commit()
    old.close()
    homes = HomeMoves(Database(path))
    assert homes.unwritten()["vm-1"].vnode is None and homes.unwritten()["vm-1"].soft_before == {}
    homes.intend("vm-2", 4, 1, 0, 2, {0: frozenset({0, 1})})
    assert homes.unwritten()["vm-2"].vnode == 2 and homes.unwritten()["vm-2"].soft_before == {0: frozenset({0, 1})}
