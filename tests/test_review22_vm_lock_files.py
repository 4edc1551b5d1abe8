"""Per-VM lock files beside the state database were never removed.

Every VM ever placed, settled or moved on a host left ``<db>.locks/place-UUID.lock`` or
``move-UUID.lock`` for good (removing a file another process may be opening would let two
hold "the" lock): a host starting thousands of new VMs a day gathered thousands of files a
day, while the database rows of the same VMs went after an hour.  Measured: 300 VMs moved
and gone, 0 memory-move rows left after xapi-numad's upkeep, 300 lock files.  Now a taker
checks after its flock that the path still names the file it locked (else it takes the
file there now), so a lock file nobody holds can go: xapi-numad's upkeep removes those of
VMs with no domain here, no memory-move row and no reservation."""
import os

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.ops.runtime import LOCKS_FIRST_LOOK_AFTER_S, LOCKS_LOOKED_AT_EVERY, MOVES_KEPT_S, Runtime, Settings
from xapi_numa.state import locks
from xapi_numa.state.db import Database
from xapi_numa.state.moves import DONE, MoveJournal


def _files(db_path):
    return sorted(os.listdir(locks.lock_directory(db_path)))


def test_the_lock_files_of_gone_vms_go_with_their_rows(tmp_path):
    topo = Topology.uniform(2, 4, 8 << 30)
    sim = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit", 1, dom0_vcpus=1, dom0_memory=128 << 20)
    now = [1000.0]
    db = Database(str(tmp_path / "l.db"), clock=lambda: now[0])
    rt = Runtime(sim, db, Settings())
    journal = MoveJournal(db)
    for i in range(300):  # VMs started, moved by hand, stopped: new UUIDs every time
        domid = sim.create("vm{}".format(i), 1, 128 << 20, load="idle")
        d = next(x for x in sim.domains() if x.domid == domid)
        journal.begin(d, 1, {"vm": d.name}).release()
        journal.finish(d.uuid, DONE, {"vm": d.name})
        placed = locks.vm_lock(db.path, locks.PLACE, d.uuid)  # a place of it, done
        assert placed.try_acquire()
        placed.release()
        sim.destroy(domid)
    kept = sim.create("kept", 1, 128 << 20, load="idle")
    kept_uuid = next(x.uuid for x in sim.domains() if x.domid == kept)
    held = locks.vm_lock(db.path, locks.PLACE, "gone-but-held")  # a place under way of a VM not here yet
    assert held.try_acquire()
    journal.begin(next(x for x in sim.domains() if x.domid == kept), 1, {"vm": "kept"}).release()
    assert len(_files(db.path)) == 602
    rt.cycle()  # the rows of the last hour stay, and so do their VMs' locks
    assert len(_files(db.path)) == 602
    now[0] += MOVES_KEPT_S + 1
    sim.run(LOCKS_FIRST_LOOK_AFTER_S)  # (none go before: tests/test_review25_lock_files_after_upgrade.py)
    rt.cycle()
    while rt.cycles % LOCKS_LOOKED_AT_EVERY != 1:  # (looked at once in so many cycles)
        assert len(_files(db.path)) == 602
        rt.cycle()
    assert journal.rows() and {r.uuid for r in journal.rows()} == {kept_uuid}
    assert _files(db.path) == ["move-{}.lock".format(kept_uuid), "place-gone-but-held.lock"]
    held.release()


def test_a_lock_taken_as_its_file_goes_is_taken_on_the_file_there_now(tmp_path, monkeypatch):
    db_path = str(tmp_path / "l.db")
    first = locks.vm_lock(db_path, locks.MOVE, "vm")
    assert first.try_acquire()
    real_open = locks.FileLock._open
    opened = []

    def open_then_removed(self):
        fd = real_open(self)
        if not opened:  # between the taker's open and its flock, the holder removes the file and lets go
            opened.append(fd)
            os.unlink(first.path)
            first.release()
        return fd

    monkeypatch.setattr(locks.FileLock, "_open", open_then_removed)
    second = locks.vm_lock(db_path, locks.MOVE, "vm")
    assert second.try_acquire()
    # the lock it holds is the one the path names: the next taker is refused
    assert os.path.exists(second.path) and os.fstat(second.fd).st_ino == os.stat(second.path).st_ino
    assert not locks.vm_lock(db_path, locks.MOVE, "vm").try_acquire()
    second.release()
