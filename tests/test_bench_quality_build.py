"""The quality benchmark's replay builds a VM's memory as the simulator does (one model of a
build: core/xenalloc.py's build).

The replay dealt a VM's RAM in 2 MiB extents from its affinity's first node, while libxc
builds an HVM guest's RAM a whole GiB at a time where it can (meminit_hvm) and Xen deals them
from the node after the domain's last_alloc_node: a 5 GiB HVM VM striped over two nodes
landed 2.5 GiB on each in the replay and 3 GiB and 2 GiB in the simulator (and on Xen).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

from quality.policies import Decision  # noqa: E402
from quality.replay import HostState, land  # noqa: E402
from quality.trace import NODE_MEMORY, Vm  # noqa: E402

from xapi_numa.backends.sim.model import Host  # noqa: E402
from xapi_numa.core.overhead import NO_OVERHEAD, BuildOverhead  # noqa: E402
from xapi_numa.core.topology import Topology  # noqa: E402
from xapi_numa.core.units import PAGE_SHIFT  # noqa: E402

GIB = 1 << 30


def _simulated(vm: Vm, nodes: int, home) -> dict:
    """Pages per node the simulator's build of ``vm`` puts there, its affinity ``home``."""
    host = Host(Topology.uniform(nodes, 2, NODE_MEMORY), scheduler="credit2", seed=1, commandline="dma_bits=20")
    d = host.create_domain("g", vm.vcpus, vm.memory >> PAGE_SHIFT, dtype=vm.dtype, paused=True,
                           node_affinity=sum(1 << n for n in home))
    return {n: p for n, p in enumerate(d.node_pages) if p}


def test_a_striped_vm_lands_in_the_replay_as_the_simulator_builds_it():
    for vm, nodes, home in ((Vm(0, 2, 5 * GIB), 2, (0, 1)), (Vm(1, 4, 9 * GIB), 3, (0, 1, 2)),
                            (Vm(2, 4, 7 * GIB), 4, (1, 3))):
        landed = land(HostState(nodes), vm, Decision(home), NO_OVERHEAD)
        assert landed == _simulated(vm, nodes, home), (vm, landed)
    assert {n: p << PAGE_SHIFT for n, p in land(HostState(2), Vm(0, 2, 5 * GIB), Decision((0, 1)),
                                                    NO_OVERHEAD).items()} == {0: 3 * GIB - (1 << 20),
                                                                               1: 2 * GIB + (1 << 20)}


def test_the_round_of_the_guests_memory_starts_after_the_overheads_last_page():
    # 3 pages of overhead round two nodes from a new domain: nodes 1, 0, 1; the PVH guest's
    # GiBs then go to nodes 0, 1, 0 (from a new domain's start: 1, 0, 1)
    overhead = BuildOverhead(fixed_pages=3, pages_per_vcpu=0, pages_per_mib=0)
    landed = land(HostState(2), Vm(0, 1, 3 * GIB, "pvh"), Decision((0, 1)), overhead)
    assert landed == {0: 2 * GIB >> PAGE_SHIFT, 1: GIB >> PAGE_SHIFT}
