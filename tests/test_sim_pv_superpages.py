"""A PV build takes 2 MiB extents first, as an HVM/PVH one does, then 4 KiB pages.

libxc 4.17's meminit_pv (tools/libs/guest/xg_dom_x86.c) populates each vmemrange's whole
2 MiB superpages with xc_domain_populate_physmap at SUPERPAGE_2MB_SHIFT, then the rest one
page at a time.  Each extent is one get_free_buddy search (xen/common/page_alloc.c): the
affinity's nodes with a whole 2 MiB free, then the other nodes; a node of the affinity with
only part of one left is passed over.  The simulator populated PV memory page by page, so it
filled that node to its last page before spilling.
"""
from xapi_numa.backends.sim.model import Host
from xapi_numa.core.topology import Topology

GIB = 1 << 30
PAGES_PER_GIB = GIB >> 12


def _host_with_node1_left_600_pages():
    host = Host(Topology.uniform(3, 2, GIB), scheduler="credit2", seed=5)
    host.create_domain("filler", 1, PAGES_PER_GIB - 600, node_affinity=0b010, dtype="pvh", paused=True)
    assert host.free[1] == 600
    return host


def test_a_pv_superpage_passes_over_a_node_with_part_of_one():
    host = _host_with_node1_left_600_pages()
    d = host.create_domain("pv", 1, 1024, node_affinity=0b010, dtype="pv", paused=True)
    # the first 2 MiB from node 1; the second finds 88 pages there and goes to node 0
    assert d.node_pages == [512, 512, 0], d.node_pages
    assert host.free[1] == 88


def test_a_pv_tail_below_2mib_goes_page_by_page():
    host = _host_with_node1_left_600_pages()
    d = host.create_domain("pv", 1, 600, node_affinity=0b010, dtype="pv", paused=True)
    assert d.node_pages == [0, 600, 0], d.node_pages  # one superpage and 88 pages: node 1 holds them all
