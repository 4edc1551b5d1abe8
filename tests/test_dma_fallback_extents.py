"""Where a VM fits only with a DMA zone, ``dma_zone.place`` predicts where Xen puts it; it filled the
nodes byte by byte (its nodes' room, the others', then the zones), while Xen's build asks whole
extents (xenalloc): a GiB no node has above the DMA width comes from a zone (alloc_domheap_pages'
second pass) before libxc asks 2 MiB extents of the room that is left.  Node 1 with 1.5 GiB above, node 2
with 0.4 GiB and node 0 with only a 1.5 GiB zone: a 2 GiB PVH VM's first GiB is node 1's, its second
node 0's zone's, and node 2 gets nothing but its share of the overhead -- the byte fill held 0.4 GiB
there and an eighth of a GiB on node 0."""
from xapi_numa.core import dma_zone
from xapi_numa.core.placement import NodeLoads, Planner, Request
from xapi_numa.core.topology import Topology

GiB, MiB = 1 << 30, 1 << 20
TOPO = Topology.from_arrays([c // 4 for c in range(12)], [[10, 20, 20], [20, 10, 20], [20, 20, 10]], [8 * GiB] * 3)


def test_a_fallback_build_takes_a_zone_s_whole_gib_before_the_last_node_s_room():
    loads = NodeLoads([0, int(1.5 * GiB), int(0.4 * GiB)], [0] * 3, [0] * 3, dma=[int(1.5 * GiB), 0, 0])
    placed = dma_zone.place(Planner(TOPO), loads, Request(2, 2 * GiB, dtype="pvh"))
    got = placed.bytes_per_node
    # node 2 gives its share of the overhead's round only (the byte fill held 0.4 GiB there, 0.12 on node 0)
    assert placed.fallback and got[0] >= GiB and got[1] >= GiB and got[2] <= placed.overhead, got
