"""A VM confined by a CPU mask (its own VCPUs_params:mask, the host's guest mask: ``Request.within``)
still has its build overhead taken round every node with CPUs: xenopsd's build_pre sizes the
shadow/HAP pool before it applies the vCPUs' hard affinity.  Until 2026-12-08 the planner counted the
free memory of nodes outside the mask as none for the overhead's shares too, so the shares Xen takes
there were reserved on the chosen node, and a VM whose node had room for its RAM and its own share
only was refused.  The expected figures are the build's own (xenalloc: the overhead page by page round
every node with CPUs, then the RAM on the chosen node), independently of the planner's arithmetic.
"""
import pytest

from xapi_numa.core import xenalloc
from xapi_numa.core.overhead import BuildOverhead
from xapi_numa.core.placement import NodeLoads, Planner, Request
from xapi_numa.core.policy import Policy
from xapi_numa.core.topology import Topology
from xapi_numa.errors import NoCapacity

G, M, PAGE = 1 << 30, 1 << 20, 4096


def host(nodes: int = 4):
    """``nodes`` nodes of 4 CPUs and 32 GiB, one socket."""
    d = [[10 if i == j else 20 for j in range(nodes)] for i in range(nodes)]
    return Topology.from_arrays([c // 4 for c in range(4 * nodes)], d, [32 * G] * nodes)


def overhead_pages(vcpus: int, memory: int) -> int:
    return BuildOverhead().bytes_for(vcpus, memory) // PAGE


def built(free, node, vcpus, memory, dtype="hvm"):
    """Pages per node the build takes: the overhead round every node with CPUs, then the RAM on ``node``."""
    pages = [f // PAGE for f in free]
    taken, last = xenalloc.take_overhead(overhead_pages(vcpus, memory), pages, list(range(len(free))))
    ram, _ = xenalloc.build(memory // PAGE, dtype, pages, [node], last)
    return [taken.get(n, 0) + ram.get(n, 0) for n in range(len(free))]


@pytest.mark.parametrize("mode", ["best_effort", "preferred", "strict"])
@pytest.mark.parametrize("within", [{0}, {0, 1}])
def test_a_masked_vm_is_reserved_on_every_node_what_its_build_takes_there(mode, within):
    free = [8 * G, 16 * G, 16 * G, 16 * G]
    policy = Policy(mode, (0,)) if mode != "best_effort" else Policy(mode)
    placed = Planner(host()).place(NodeLoads.of(free, None, [0] * 4), Request(4, 4 * G, policy, within=within))
    (node,) = placed.nodes
    assert node in within
    held = dict(placed.memory)
    assert [held.get(n, 0) // PAGE for n in range(4)] == built(free, node, 4, 4 * G)


def test_a_masked_vm_whose_node_has_room_for_its_share_only_is_placed():
    """Node 0, the only one the mask reaches, has room for the RAM and a quarter of the overhead
    (what the build takes there), not the whole of it: the build fits, so the planner places it."""
    o = overhead_pages(2, 4 * G)
    free = [4 * G + (o // 4 + 16) * PAGE, 16 * G, 16 * G, 16 * G]
    assert built(free, 0, 2, 4 * G)[0] <= free[0] // PAGE
    for mode in ("best_effort", "strict"):
        placed = Planner(host()).place(NodeLoads.of(free, None, [0] * 4), Request(2, 4 * G, Policy(mode),
                                                                                  within={0}))
        assert placed.nodes == (0,), mode
        assert all(b <= f for (_, b), f in zip(placed.memory, free)), mode  # none held past what it has


def test_a_node_outside_the_mask_short_of_its_share_has_it_held_on_the_chosen_node():
    o = overhead_pages(2, 4 * G)
    free = [16 * G, 16 * G, (o // 8) * PAGE, 16 * G]  # node 2 (outside the mask) short of its quarter
    placed = Planner(host()).place(NodeLoads.of(free, None, [0] * 4), Request(2, 4 * G, within={0}))
    held = dict(placed.memory)
    assert held.get(2, 0) == 0  # nothing held past what node 2 has
    assert sum(held.values()) // PAGE == 4 * G // PAGE + o
    for n in (1, 3):  # the other nodes outside the mask hold their quarter
        assert o // 4 <= held[n] // PAGE <= o // 4 + 1


def test_a_masked_vm_over_its_nodes_is_refused_only_without_room_for_its_ram_and_shares():
    o = overhead_pages(2, 4 * G)
    free = [2 * G + (o // 4) * PAGE, 2 * G - 64 * M, 16 * G, 16 * G]
    with pytest.raises(NoCapacity):  # nodes 0 and 1 lack 64 MiB of the RAM
        Planner(host()).place(NodeLoads.of(free, None, [0] * 4), Request(2, 4 * G, within={0, 1}))
