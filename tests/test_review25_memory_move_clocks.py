"""Memory-move rows were timed by the wall clock of the process that wrote them, and said no boot.

* The rebalancer took a vNUMA layout for known right while no vnode move's row was stamped later
  than its read: a wall clock stepped back between its read and another process's vnode move
  made that move look older, and the stale layout stayed.  The row is now compared whole.
* The hour an ended move stays in the journal was told by the wall clock: a step forward cut it
  short.  Rows are stamped with the host's clock (dom0's monotonic one) and its boot (schema 16).
* A mover's running row of an earlier boot (the power lost mid-move) still held the pages it
  planned against every place and reservation, and left the VM's new domain out of homing and
  rebalancing, until something recovered it; and its recovery acted on the VM's new domain.  Its
  mover and its domain went with that boot: it holds nothing now, and its recovery only ends it."""
import time

from test_rebalance_vnodes import build_host

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.ops import move_memory, move_recovery, reserve
from xapi_numa.ops.runtime import MOVES_KEPT_S, Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import MoveJournal

MiB = 1 << 20
BEFORE, AFTER = "0c0c0c0c-0000-4000-8000-00000000000a", "0c0c0c0c-0000-4000-8000-00000000000b"


def test_a_vnode_move_another_process_made_under_a_wall_clock_set_back_is_read_again(tmp_path):
    hv, domid = build_host(tmp_path)
    path = str(tmp_path / "l.db")
    rt = Runtime(hv, Database(path), Settings())
    uuid = next(d.uuid for d in hv.domains() if d.domid == domid)
    hv.run(1.0)
    rt.cycle()
    assert rt.rebalancer.layout(uuid).pnodes == (0, 0)
    # the admin moves vnode 1 to node 1 from the CLI, after NTP set the wall clock back ten minutes
    stepped = Database(path, clock=_wall_clock_stepped(-600.0))
    move_memory.run(hv, stepped, move_memory.prepare(hv, str(domid), 1, vnode=1))
    for _ in range(3):  # (a rebalancer's look every 2 s)
        hv.run(1.0)
        rt.cycle()
    assert rt.rebalancer.layout(uuid).pnodes == hv.vnuma(domid).pnodes == (0, 1)


def _wall_clock_stepped(seconds: float):
    return lambda: time.time() + seconds


def _host(tmp_path, monkeypatch, boot=BEFORE):
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 2 << 30), "credit2", 1,
                             dom0_vcpus=1, dom0_memory=128 * MiB)
    sim.create("vm", 2, 256 * MiB, soft=frozenset({0, 1, 2, 3}), dtype="pvh", load="busy")
    monkeypatch.setattr(SimHypervisor, "boot_id", lambda self: boot)
    return sim, str(tmp_path / "l.db")


def _moved_then_gone(sim, path):
    """The VM's memory moved to node 1 by hand, then the VM shut down: its row is history."""
    db = Database(path)
    d = next(x for x in sim.domains() if x.name == "vm")
    move_memory.run(sim, db, move_memory.prepare(sim, "vm", 1))
    sim.destroy(d.domid)
    assert MoveJournal(db).status(d.uuid).state == "done"
    return d.uuid


def _forgotten_by_the_daemon(sim, path, wall_step: float) -> bool:
    rt = Runtime(sim, Database(path, clock=_wall_clock_stepped(wall_step)), Settings(rebalancing=False))
    uuid = MoveJournal(Database(path)).rows()[0].uuid
    rt.cycle()
    return MoveJournal(Database(path)).status(uuid) is None


def test_a_wall_clock_stepped_forward_cuts_no_hour_of_history_short(tmp_path, monkeypatch):
    sim, path = _host(tmp_path, monkeypatch)
    _moved_then_gone(sim, path)
    sim.run(5.0)  # five seconds later on the host's clock, NTP steps the wall clock two hours forward
    assert not _forgotten_by_the_daemon(sim, path, 2 * MOVES_KEPT_S), "an ended move went after 5 s"


def test_a_wall_clock_stepped_back_keeps_no_row_past_its_hour(tmp_path, monkeypatch):
    sim, path = _host(tmp_path, monkeypatch)
    _moved_then_gone(sim, path)
    sim.run(MOVES_KEPT_S + 60)  # an hour and a minute on the host's clock; the wall clock set back an hour
    assert _forgotten_by_the_daemon(sim, path, -MOVES_KEPT_S), "an ended move stayed past its hour"


def test_a_row_of_an_earlier_boot_is_told_by_its_wall_clock_stamp(tmp_path, monkeypatch):
    sim, path = _host(tmp_path, monkeypatch)
    _moved_then_gone(sim, path)
    monkeypatch.setattr(SimHypervisor, "boot_id", lambda self: AFTER)
    assert not _forgotten_by_the_daemon(sim, path, 60.0)
    assert _forgotten_by_the_daemon(sim, path, MOVES_KEPT_S + 60)


def _died_with_the_boot(sim, path):
    """A move to node 1 claimed (its row running, its pages planned) when the host lost power."""
    plan, lock = move_memory.claim(sim, Ledger(path), "vm", 1)
    lock.release()  # (the mover went with the boot)
    return plan.domain


def test_a_movers_row_of_an_earlier_boot_holds_no_room_nor_the_vm(tmp_path, monkeypatch):
    sim, path = _host(tmp_path, monkeypatch)
    free = reserve.room_pages(sim, Ledger(path))[1]
    d = _died_with_the_boot(sim, path)
    assert reserve.room_pages(sim, Ledger(path))[1] < free  # (in its own boot: its pages are still to come)
    monkeypatch.setattr(SimHypervisor, "boot_id", lambda self: AFTER)
    sim.destroy(d.domid)
    sim.create("vm", 2, 256 * MiB, soft=frozenset({0, 1, 2, 3}), dtype="pvh", load="busy", uuid=d.uuid)
    assert reserve.room_pages(sim, Ledger(path))[1] == free, "a start in the new boot was refused the old move's room"
    rt = Runtime(sim, Database(path), Settings())
    assert rt.moves.moving() == [], "the VM's new domain was left alone as one being moved"


def test_the_recovery_of_a_movers_row_of_an_earlier_boot_leaves_the_new_domain_alone(tmp_path, monkeypatch):
    sim, path = _host(tmp_path, monkeypatch)
    d = _died_with_the_boot(sim, path)
    monkeypatch.setattr(SimHypervisor, "boot_id", lambda self: AFTER)
    sim.destroy(d.domid)
    sim.create("vm", 2, 256 * MiB, soft=frozenset({0, 1, 2, 3}), dtype="pvh", load="busy", uuid=d.uuid)
    asked = []
    real = SimHypervisor.recover_move
    monkeypatch.setattr(SimHypervisor, "recover_move", lambda self, domid: asked.append(domid) or real(self, domid))
    said, = move_recovery.pending(sim, MoveJournal.of_host(Database(path), sim))  # (what a dry run says)
    assert "it was moving VM vm in an earlier boot of the host" in said, said
    Runtime(sim, Database(path), Settings(rebalancing=False)).upkeep()
    row = MoveJournal(Database(path)).status(d.uuid)
    assert row.state == "interrupted" and row.report["error"].endswith("its mover went with an earlier boot of the host")
    assert asked == [], "recovery acted on the VM's new domain"
