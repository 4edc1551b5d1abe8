"""A new domain's first allocation with no node named starts at the node after node 0.

Xen 4.17: alloc_domain_struct (xen/arch/x86/domain.c) clears the new struct domain, and
nothing sets d->last_alloc_node before the first allocation, so it is 0.  get_free_buddy
(xen/common/page_alloc.c) starts a request naming no node at cycle_node(last_alloc_node,
node affinity): the first node of the affinity after node 0, wrapping round.  A domain striped
over nodes 0 and 1 gets its first extent from node 1, so an odd number of extents leaves node 1
the extra one.  The simulator started such a domain at the affinity's first node (node 0).
"""
from xapi_numa.backends.sim.model import Host
from xapi_numa.core.topology import Topology

GIB = 1 << 30


def _host():
    return Host(Topology.uniform(3, 2, 8 * GIB), scheduler="credit2", seed=3)


def test_a_striped_domain_starts_after_node_0():
    host = _host()
    d = host.create_domain("guest", 1, 3 * 512, dtype="pvh", node_affinity=0b011, paused=True)
    assert d.node_pages[:2] == [512, 1024], d.node_pages  # extents to nodes 1, 0, 1
    assert d.last_alloc_node == 1


def test_cycle_node_from_0_skips_node_0_only_when_another_follows():
    host = _host()
    one = host.create_domain("only0", 1, 3, dtype="pv", node_affinity=0b001, paused=True)
    assert one.node_pages == [3, 0, 0]  # next_node(0) is past the mask: first_node, node 0
    upper = host.create_domain("upper", 1, 3, dtype="pv", node_affinity=0b110, paused=True)
    assert upper.node_pages == [0, 2, 1], upper.node_pages  # next_node(0) = 1: nodes 1, 2, 1
