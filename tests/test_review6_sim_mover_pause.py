"""Review 6 (pre-existing, seen while checking the above): the simulated mover's pause leaves
the guest's vCPUs running.

guestmem.move keeps a guest paused after a failed batch (a dead mover, a failed copy-back,
a failed unpause) with ``d.pause_count += 1`` (xapi_numa/backends/sim/guestmem.py: the
'die-after-release', 'lost' and 'unpause' branches) instead of ``host.pause``: the
scheduler is not told, so the paused guest's vCPUs stay ``running`` on their pCPUs (in
``sched.curr``) until the next tick, and ``Host.check_invariants`` fails with "vCPU (1, 0)
runs while not runnable".  Xen's domain_pause deschedules the vCPUs at once.
"""
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology

MiB = 1 << 20


@pytest.mark.parametrize("fault", ["die-after-release", "copy-back", "unpause"])
def test_a_guest_the_mover_leaves_paused_runs_on_no_pcpu(tmp_path, fault):
    path = str(tmp_path / "host.json")
    hv = SimHypervisor.init(path, Topology.uniform(2, 2, 1 << 30), "credit2", 3, dom0_vcpus=2, dom0_memory=64 * MiB)
    a = hv.create("a", 2, 32 * MiB, dtype="pvh", load="busy")
    hv.move_pages(a, list(range(0x200, 0x240)), 1, fault=fault)
    with hv.store.snapshot() as host:
        assert host.domain(a).pause_count == 1
        assert not any(v.running for v in host.domain(a).vcpus)
        host.check_invariants()
