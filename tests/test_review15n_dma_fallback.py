"""Review 15n: where a VM fits the host only with a DMA zone, ``dma_zone.place`` reserved
its memory on the chosen node, zone included.  Xen gives that build no DMA page before
every node is out of the rest (alloc_domheap_pages tries above the zone on the node
affinity's nodes, then on every other node, and only then the zone): the build takes
the other nodes' room first.  The reservation left that room to other starts, which
were then placed on memory this build takes (and its own reservation stayed
outstanding on the chosen node for memory that never lands there).  Since 2026-12-06 the
prediction is the build's own (xenalloc): extent by extent, so a whole GiB no node has above
the width comes from a zone before 2 MiB extents of the room left; a PV build (2 MiB extents
only) takes every node's room first."""
import pytest

from xapi_numa.core.placement import NodeLoads, Planner, Request
from xapi_numa.core.topology import Topology
from xapi_numa.core import dma_zone
from xapi_numa.errors import RoomReserved

GIB, MIB = 1 << 30, 1 << 20
PLANNER = Planner(Topology.uniform(2, 8, 16 * GIB))


def test_the_reservation_takes_every_nodes_room_before_a_dma_zone():
    # node 0: 1 GiB of room and a 3 GiB zone; node 1: 2 GiB of room; the VM needs about 3 GiB
    loads = NodeLoads([1 * GIB, 2 * GIB], [0, 0], [0, 0], dma=[3 * GIB, 0])
    placed = dma_zone.place(PLANNER, loads, Request(2, 3 * GIB, dtype="pv"))
    per_node = placed.bytes_per_node
    total = sum(per_node.values())
    assert total > 3 * GIB  # the whole build, as before
    # node 1's room in whole 2 MiB extents: Xen takes them before node 0's zone; node 0 its room, then its zone
    assert 2 * GIB - 2 * MIB < per_node.get(1, 0) <= 2 * GIB and per_node[0] == total - per_node[1]
    # an HVM build asks GiBs 1 and 2 whole: node 1 has one, the other comes from node 0's zone
    hvm = dma_zone.place(PLANNER, loads, Request(2, 3 * GIB)).bytes_per_node
    assert hvm[0] > 2 * GIB - 4 * MIB and GIB < hvm[1] < GIB + 64 * MIB


def test_a_second_start_is_not_placed_on_room_the_first_build_takes():
    loads = NodeLoads([1 * GIB, 2 * GIB], [0, 0], [0, 0], dma=[3 * GIB, 0])
    first = dma_zone.place(PLANNER, loads, Request(2, 3 * GIB, dtype="pv"))
    reserved = [first.bytes_per_node.get(n, 0) for n in (0, 1)]
    after = NodeLoads(loads.free, reserved, loads.vcpus, dma=loads.dma)
    # node 1's room is the first build's, but Xen cannot see that: a second build made
    # before the first has landed would get node 1's room before any zone (its own
    # reservation said node 0's zone, and the first build then spilled: a boot storm
    # showed it).  It waits for the first build instead...
    with pytest.raises(RoomReserved) as err:
        dma_zone.place(PLANNER, after, Request(1, 512 * MIB))
    assert "above the DMA zone on node 0" in err.value.message and err.value.code == "NUMA_NO_CAPACITY"
    # ... and once that build has landed (node 1's room and node 0's taken, its reservation
    # gone), it gets node 0's zone
    landed = NodeLoads([0, 0], [0, 0], loads.vcpus, dma=[3 * GIB - (reserved[0] - 1 * GIB), 0])
    second = dma_zone.place(PLANNER, landed, Request(1, 512 * MIB))
    assert second.bytes_per_node.get(1, 0) == 0 and second.bytes_per_node[0] > 512 * MIB


def test_the_reservation_covers_other_nodes_only_as_far_as_needed():
    # a CPU mask keeps the choice on node 0, whose room and zone hold the VM; Xen still
    # spills to node 1's room (4 GiB) first, and never reaches the zone
    loads = NodeLoads([1 * GIB, 4 * GIB], [0, 0], [0, 0], dma=[3 * GIB, 0])
    placed = dma_zone.place(PLANNER, loads, Request(2, 3 * GIB, within=frozenset({0})))
    per_node = placed.bytes_per_node
    assert placed.nodes == (0,)
    assert 1 * GIB - 2 * MIB < per_node[0] <= 1 * GIB and 2 * GIB < per_node[1] < 4 * GIB


def test_such_a_placement_says_it_is_a_fallback_and_never_shows_negative_headroom():
    """Its memory goes beyond its nodes: pool tools rank it below a host that holds the VM
    on its chosen nodes (a fallback), and `place`'s headroom said -1 GiB (review 15n)."""
    from xapi_numa.ops.place_answer import describe

    loads = NodeLoads([1 * GIB, 1 * GIB], [0, 0], [0, 0], dma=[3 * GIB, 0])
    placed = dma_zone.place(PLANNER, loads, Request(2, 3 * GIB))
    assert placed.fallback
    assert describe(PLANNER, placed, None, loads, host_cpus=None, mask=None, dtype="hvm",
                    target=3 * GIB)["headroom"] >= 0
