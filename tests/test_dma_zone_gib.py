"""A GiB no node has above Xen's DMA width comes from a DMA zone: the build check counts that.

Xen 4.17's alloc_domheap_pages (xen/common/page_alloc.c) asks each extent above the DMA width on
every node first (get_free_buddy: the affinity, then the others), and only then, with
populate_physmap setting no MEMF_no_dma, in every zone down to the DMA ones, in the same node
order.  libxc's meminit_hvm asks the next size down only when both fail.  So where no node has a
whole GiB above the width but node 0's DMA zone has one, the GiB goes there, off a set of nodes
that had the room in 2 MiB extents.  Until 2026-12-06 the planner's check saw no zone (the
simulator's build did): a strict 3 GiB PVH VM was put on nodes 1,2 (1.6 GiB free each) and Xen
put its third GiB in node 0's DMA zone.
"""
from xapi_numa.core import xenalloc
from xapi_numa.core.placement import NO_OVERHEAD, NodeLoads, Planner, Request
from xapi_numa.core.policy import Policy
from xapi_numa.core.topology import Topology

G, M, PAGE = 1 << 30, 1 << 20, 4096
ABOVE = [200 * M, int(1.6 * G), int(1.6 * G)]
GIB_LESS = G - 2 * M  # a DMA zone with no whole GiB


def host() -> Topology:
    return Topology.from_arrays([c // 4 for c in range(12)], [[10, 20, 20], [20, 10, 11], [20, 11, 10]],
                                [32 * G] * 3)


def landed(nodes, dma):
    """Where Xen's build of the VM over ``nodes`` puts its RAM, from every start (xenalloc, zones known)."""
    free = [(a + d) // PAGE for a, d in zip(ABOVE, dma)]
    out = set()
    for last in nodes:
        got, _ = xenalloc.build(3 * G // PAGE, "pvh", list(free), list(nodes), last, zone=[d // PAGE for d in dma])
        out.update(n for n, p in got.items() if p)
    return out


def test_a_strict_vm_is_not_put_where_xen_takes_a_gib_from_a_dma_zone_off_its_nodes():
    dma = [2 * G, 0, 0]
    assert landed([1, 2], dma) == {0, 1, 2}  # the third GiB: node 0's zone
    placed = Planner(host(), NO_OVERHEAD).place(NodeLoads(ABOVE, [0] * 3, [0] * 3, dma),
                                                Request(2, 3 * G, Policy("strict"), dtype="pvh"))
    assert landed(placed.nodes, dma) <= set(placed.nodes)
    held = dict(placed.memory)
    assert sum(held.values()) == 3 * G and held.get(0, 0) >= G  # held where it lands, the zone's GiB too


def test_without_a_zone_gib_the_set_keeps_it():
    dma = [GIB_LESS, 0, 0]
    assert landed([1, 2], dma) == {1, 2}  # no whole GiB anywhere: libxc asks 2 MiB extents
    placed = Planner(host(), NO_OVERHEAD).place(NodeLoads(ABOVE, [0] * 3, [0] * 3, dma),
                                                Request(2, 3 * G, Policy("strict"), dtype="pvh"))
    assert placed.nodes == (1, 2)

