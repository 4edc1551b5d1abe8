"""Review 11 (simulator against Xen 4.17): a populate that names a node, without
XENMEMF_exact_node, spills over in node order from that node, not round robin.

xen/common/page_alloc.c, get_free_buddy: every extent starts at the node the caller named
(MEMF_node); when it has no room, the search goes on with next_node() from there through
the domain's node affinity (from first_node() of the affinity if the named node is not in
it), then through the other online nodes.  last_alloc_node is only the start for requests
naming no node (cycle_node).  So the overflow fills the next node before touching the one
after it.  The model striped the overflow round robin over the affinity from the domain's
last_alloc_node, as for a request naming no node (the simulator's build(), xenguest's
-mem_pnode).
"""
from xapi_numa.backends.sim.model import Host
from xapi_numa.core.topology import Topology

GIB = 1 << 30
PAGES_PER_GIB = GIB >> 12


def _host_with_node0_nearly_full():
    """Node 0 left 1024 pages above Xen's DMA width (its zone, below it, is taken last)."""
    host = Host(Topology.uniform(3, 2, GIB), scheduler="credit2", seed=5)
    host.create_domain("filler", 1, PAGES_PER_GIB - host.zone_size[0] - 1024, node_affinity=0b001, dtype="hvm")
    assert host.free[0] - host.zone_free[0] == 1024 and host.zone_free[0] == host.zone_size[0] > 0
    return host


def test_the_overflow_of_a_named_node_fills_the_next_node_first():
    host = _host_with_node0_nearly_full()
    d = host.create_domain("guest", 1, 4096, dtype="hvm", paused=True, populate=False)
    got = host.allocate(d, 4096, node=0)
    # extents of 512: node 0's two, then next_node(0) = 1 for every other one
    assert got == {0: 1024, 1: 3072}, got
    assert d.last_alloc_node == 1


def test_a_named_node_outside_the_affinity_spills_from_the_affinitys_first_node():
    host = _host_with_node0_nearly_full()
    d = host.create_domain("guest", 1, 4096, dtype="hvm", paused=True, populate=False, node_affinity=0b110)
    d.last_alloc_node = 1  # a request naming no node would start at node 2 (cycle_node)
    got = host.allocate(d, 4096, node=0)
    assert got == {0: 1024, 1: 3072}, got
