"""xapi-numad's upkeep removed the lock files of VMs long gone in its very first cycle.

That is when a place or release of the version before an upgrade may still be running: that
code takes a VM's lock without checking that the lock's path still names the file it opened,
so a file removed under it was held beside the new file of the next caller, and both placed the
VM at once.  The first removal now waits, on the host's clock from the daemon's start, as long
as such a call can take (:data:`~xapi_numa.ops.runtime.LOCKS_FIRST_LOOK_AFTER_S`)."""
import os

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.ops.runtime import LOCKS_FIRST_LOOK_AFTER_S, LOCKS_LOOKED_AT_EVERY, Runtime, Settings
from xapi_numa.state import locks
from xapi_numa.state.db import Database


def _cycles_to_the_next_look(rt) -> None:
    rt.cycle()
    while rt.cycles % LOCKS_LOOKED_AT_EVERY != 1:
        rt.cycle()


def test_the_first_removal_waits_for_the_calls_of_the_version_before(tmp_path):
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 8 << 30), "credit", 1,
                             dom0_vcpus=1, dom0_memory=128 << 20)
    db = Database(str(tmp_path / "l.db"))
    rt = Runtime(sim, db, Settings())
    lock = locks.vm_lock(db.path, locks.PLACE, "0c0c0c0c-0000-4000-8000-0000000000aa")
    assert lock.try_acquire()  # an older version's place of a VM not here: its file, let go for an instant
    lock.release()
    rt.cycle()  # the daemon's first cycle: the lock files' first look was in it
    assert os.path.exists(lock.path), "a lock file went while a call of the version before may be opening it"
    sim.run(LOCKS_FIRST_LOOK_AFTER_S - 1.0)
    _cycles_to_the_next_look(rt)
    assert os.path.exists(lock.path)
    sim.run(1.0)
    _cycles_to_the_next_look(rt)
    assert not os.path.exists(lock.path), "the lock file of a VM long gone stayed"
