"""libxl's automatic NUMA placement (Xen 4.17) as the simulator models it: table tests
on hand-built hosts, one rule of libxl_numa.c / libxl_dom.c per case."""
import pytest

from xapi_numa.backends.sim import toolstack
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.model import Host
from xapi_numa.backends.sim.toolstack import Candidate, best_candidate, compare, need_memkb, xl_create
from xapi_numa.core.topology import Topology

GiB = 1 << 30
TiB = 1 << 40
PAGES_1G = GiB >> 12


def make_host(memory, cpus_per_node=4, dom0_vcpus=1, dom0_hard=None):
    """A host with these bytes per node (CPUs per node may be a list) and a small dom0."""
    per_node = cpus_per_node if isinstance(cpus_per_node, list) else [cpus_per_node] * len(memory)
    cpu_to_node = [n for n, c in enumerate(per_node) for _ in range(c)]
    nodes = len(memory)
    distances = [[10 if i == j else 20 for j in range(nodes)] for i in range(nodes)]
    topo = Topology.from_arrays(cpu_to_node, distances, list(memory), cpu_to_socket=cpu_to_node)
    h = Host(topo, "credit2", seed=5)
    h.create_domain("Domain-0", dom0_vcpus, 1, hard=dom0_hard, load="idle")  # one page: keeps free memory exact
    return h


def set_free(h, *sizes):
    """Free memory per node, exactly (the ranking reads only ``free``; the helper
    domains' single pages would otherwise tip ties)."""
    h.free = [size >> 12 for size in sizes]


def cpus_of(h, *nodes):
    mask = 0
    for n in nodes:
        mask |= h.node_mask[n]
    return mask


def pin(h, name, vcpus, hard_nodes, node_affinity=None, soft=None):
    """A small idle domain whose vCPUs libxl counts where its hard affinity and node affinity say."""
    na = None if node_affinity is None else cpus_to_nodes(node_affinity)
    return h.create_domain(name, vcpus, 1, hard=cpus_of(h, *hard_nodes), soft=soft, load="idle",
                           node_affinity=na, paused=True)


def cpus_to_nodes(nodes):
    return sum(1 << n for n in nodes)


def place(h, vcpus=2, pages=PAGES_1G, dtype="pv"):
    best = best_candidate(h, need_memkb(pages, vcpus, dtype), vcpus)
    return None if best is None else best.nodes


# --- memory libxl asks for ----------------------------------------------------------------------
@pytest.mark.parametrize("pages,vcpus,dtype,expected_kib", [
    # target + 4*(256*vcpus + MiB) paging + 1 MiB (PV) or 2 MiB (PVH/HVM), rounded up to 2 MiB
    (PAGES_1G, 2, "pv", 1048576 + 4 * (512 + 1024) + 1024 + 1024),   # 1055744 -> 1056768
    (PAGES_1G, 2, "pvh", 1048576 + 4 * (512 + 1024) + 2048),          # 1056768 exactly
    (PAGES_1G, 1, "hvm", 1048576 + 4 * (256 + 1024) + 2048 + 1024),   # 1055744 -> 1056768
    (32768, 4, "pv", 131072 + 4 * (1024 + 128) + 1024 + 512),         # 136704 -> 137216
])
def test_memory_needed(pages, vcpus, dtype, expected_kib):
    assert need_memkb(pages, vcpus, dtype) == expected_kib
    assert expected_kib % 2048 == 0


# --- the comparison ------------------------------------------------------------------------------
def test_fewer_vcpus_wins_whatever_the_free_memory():
    h = make_host([2 * GiB, 16 * GiB])
    pin(h, "busy1", 1, [1])  # one vCPU counted on node 1 only
    assert place(h) == (0,)


def test_free_memory_decides_with_no_tolerance():
    # equal vCPU counts: 4 KiB more free memory is enough (libxl 4.17 has no tolerance)
    h = make_host([8 * GiB, 8 * GiB])
    set_free(h, 4 * GiB, 4 * GiB + 4096)
    assert place(h) == (1,)
    set_free(h, 4 * GiB + 4096, 4 * GiB)
    assert place(h) == (0,)


def test_exact_tie_keeps_the_first_candidate():
    h = make_host([8 * GiB] * 3)
    set_free(h, 4 * GiB, 4 * GiB, 4 * GiB)
    assert place(h) == (0,)
    set_free(h, 4 * GiB, 5 * GiB, 5 * GiB)
    assert place(h) == (1,)


def test_compare_is_libxl_numa_cmpf():
    a = Candidate((0,), 4, 3, 1000)
    b = Candidate((1,), 4, 3, 2000)
    assert compare(b, a) < 0 and compare(a, b) > 0          # more free memory is better
    assert compare(Candidate((1,), 4, 2, 0), a) < 0          # fewer vCPUs beats any memory
    assert compare(a, a) == 0


def test_free_memory_difference_wraps_like_a_c_int():
    # (int)(best.free - new.free): a difference of 2 TiB or more in KiB wraps, so the
    # second node, with 2.5 TiB more free, does not beat the first.
    h = make_host([TiB // 2, 3 * TiB])
    assert place(h) == (0,)
    # under 2 TiB the comparison is the plain one
    h = make_host([TiB // 2, 2 * TiB])
    assert place(h) == (1,)


def test_candidate_free_memory_is_summed_in_32_bits():
    h = make_host([3 * TiB, 3 * TiB], cpus_per_node=1)
    set_free(h, 3 * TiB, 3 * TiB)
    two = toolstack.candidates_of_size(h, 2, [0, 1], h.online, [0, 0])
    assert two[0].free_memkb == (6 * TiB // 1024) % (1 << 32) == 2 * TiB // 1024
    # so a 2-vCPU guest (needs both 1-CPU nodes) asking for 3 TiB finds no candidate
    assert place(h, vcpus=2, pages=(3 * TiB) >> 12) is None


# --- how vCPUs are counted -------------------------------------------------------------------------
def test_dom0_counts_where_it_is_pinned():
    h = make_host([8 * GiB, 4 * GiB], dom0_vcpus=2, dom0_hard=0b1111)  # dom0 on node 0's CPUs
    pin(h, "other", 1, [0, 1], node_affinity=[1])
    # node 0: dom0's 2; node 1: other's 1 -> node 1, although node 0 has more free memory
    assert place(h) == (1,)
    counts = toolstack.vcpus_on_nodes(h, h.online, 0)
    assert counts == [2, 1]


def test_hard_affinity_counts_not_soft():
    h = make_host([4 * GiB, 8 * GiB])
    # hard on node 1, soft on node 0: hard AND soft is empty, so Xen's node affinity
    # follows hard (node 1) and libxl counts the vCPUs there
    pin(h, "odd", 3, [1], soft=cpus_of(h, 0))
    assert toolstack.vcpus_on_nodes(h, h.online, 0)[:2] == [1, 4]  # dom0's one vCPU everywhere
    assert place(h) == (0,)


def test_node_affinity_limits_where_a_vcpu_counts():
    h = make_host([4 * GiB, 4 * GiB, 4 * GiB])
    pin(h, "wide", 2, [0, 1, 2], node_affinity=[0, 2])
    # each vCPU counts once on node 0 and once on node 2 (not on 1, outside its node affinity)
    assert toolstack.vcpus_on_nodes(h, h.online, 0) == [3, 1, 3]
    assert place(h) == (1,)


def test_a_vcpu_counts_once_per_node_and_on_each_node_of_a_set():
    h = make_host([4 * GiB, 4 * GiB, 4 * GiB, 4 * GiB], cpus_per_node=2)
    pin(h, "pair", 1, [0, 1])           # 1 vCPU, hard over nodes 0-1: counts on both
    pin(h, "far", 1, [2], node_affinity=[2])
    counts = toolstack.vcpus_on_nodes(h, h.online, 0)
    assert counts == [2, 2, 2, 1]
    set_free(h, *[4 * GiB] * 4)
    # a 3-vCPU guest needs 2 nodes of 2 CPUs: {0,1} counts 4, {2,3} counts 3, {0,3}/{1,3} count 3
    assert place(h, vcpus=3) == (0, 3)


def test_paused_domains_and_the_new_domain_count():
    h = make_host([4 * GiB, 4 * GiB])
    pin(h, "paused", 1, [0], node_affinity=[0])  # created paused
    assert toolstack.vcpus_on_nodes(h, h.online, 5) == [1 + 1 + 5, 1 + 5]
    assert place(h) == (1,)


# --- candidate generation --------------------------------------------------------------------------
def test_smallest_size_from_cpus_per_node():
    h = make_host([4 * GiB] * 4, cpus_per_node=2)
    set_free(h, *[4 * GiB] * 4)
    assert place(h, vcpus=3) == (0, 1)          # ceil(3/2) = 2 nodes, lexicographic first of the ties
    assert place(h, vcpus=5) == (0, 1, 2)


def test_uneven_nodes_start_from_one_node():
    h = make_host([4 * GiB, 4 * GiB], cpus_per_node=[4, 6])
    assert place(h, vcpus=5) == (1,)            # node 1 alone has 6 CPUs
    assert place(h, vcpus=7) == (0, 1)


def test_memory_overhead_can_disqualify_a_node():
    # node 0 has exactly the guest's memory free, but not libxl's extra; node 1 is tight too
    target = PAGES_1G
    h = make_host([(target << 12) + 4096, (target << 12) + (16 << 20)])
    pin(h, "busy1", 2, [1], node_affinity=[1])  # node 1 would lose on vCPUs
    set_free(h, target << 12, (target << 12) + (16 << 20))
    assert need_memkb(target, 2, "pv") * 1024 == (target << 12) + (8 << 20)
    assert place(h, vcpus=2, pages=target) == (1,)


def test_more_nodes_only_when_no_smaller_set_fits():
    h = make_host([2 * GiB, 2 * GiB, 2 * GiB])
    pin(h, "load", 3, [0], node_affinity=[0])
    set_free(h, 1 * GiB, 1 * GiB, 1 * GiB)
    assert place(h, pages=PAGES_1G // 2) == (1,)          # one node fits: fewest vCPUs, first of ties
    assert place(h, pages=3 * PAGES_1G // 2) == (1, 2)    # none does: the best pair
    set_free(h, 1 * GiB, 1 * GiB, 2 * GiB)
    assert place(h, pages=3 * PAGES_1G // 2) == (2,)      # node 2 alone, though pairs have more memory


def test_no_placement_on_one_node_or_more_than_16():
    assert place(make_host([4 * GiB])) is None
    assert place(make_host([256 << 20] * 16, cpus_per_node=1), vcpus=1, pages=1024) is not None
    assert place(make_host([256 << 20] * 17, cpus_per_node=1), vcpus=1, pages=1024) is None


def test_no_candidate_when_nothing_fits():
    assert place(make_host([GiB, GiB]), pages=4 * PAGES_1G) is None
    assert place(make_host([4 * GiB, 4 * GiB], cpus_per_node=1), vcpus=3, pages=1024) is None


# --- what libxl does with the result -----------------------------------------------------------------
def test_placement_sets_node_affinity_and_soft_affinity():
    h = make_host([4 * GiB, 8 * GiB])
    d = xl_create(h, "g", 2, PAGES_1G // 4, None, None, "idle", "pvh", False, None)
    assert d.node_affinity == 0b10                      # explicit, not automatic
    assert all(v.soft == cpus_of(h, 1) and v.hard == h.online for v in d.vcpus)
    assert d.node_pages == [0, PAGES_1G // 4]


def test_hard_affinity_does_not_restrict_the_search():
    # libxl 4.17 checks hard AND pool is not empty, then searches the whole pool:
    # a guest pinned to node 0 gets node 1 as node affinity and soft affinity,
    # and its memory lands there.
    h = make_host([4 * GiB, 8 * GiB])
    d = xl_create(h, "pinned", 2, PAGES_1G // 4, cpus_of(h, 0), None, "idle", "pv", False, None)
    assert d.node_affinity == 0b10
    assert all(v.hard == cpus_of(h, 0) and v.soft == cpus_of(h, 1) for v in d.vcpus)
    assert d.node_pages == [0, PAGES_1G // 4]


def test_soft_affinity_given_means_no_placement():
    h = make_host([4 * GiB, 8 * GiB])
    d = xl_create(h, "soft0", 2, PAGES_1G // 4, None, cpus_of(h, 0), "idle", "pv", False, None)
    assert d.node_affinity is None
    assert d.node_pages == [PAGES_1G // 4, 0]


def test_no_candidate_leaves_the_domain_alone():
    h = make_host([4 * GiB, 4 * GiB], cpus_per_node=1)
    d = xl_create(h, "wide", 3, PAGES_1G // 4, None, None, "idle", "pv", False, None)  # 3 vCPUs, 2 CPUs
    assert d.node_affinity is None and all(v.soft == h.online for v in d.vcpus)
    assert d.node_pages[0] > 0 and d.node_pages[1] > 0  # striped


def test_a_candidate_of_every_node_is_an_explicit_node_affinity():
    """libxl's candidate map has the host's nodes only, never all 64 bits of MAX_NUMNODES
    that Xen's domain_set_node_affinity takes for "automatic": it stays explicit (the
    model took it for automatic, so a later soft-affinity change moved it)."""
    h = make_host([GiB, GiB])
    d = xl_create(h, "big", 2, (3 * GiB // 2) >> 12, None, None, "idle", "pv", False, None)
    assert d.node_affinity == 0b11 and all(v.soft == h.online for v in d.vcpus)
    assert d.node_pages[0] > 0 and d.node_pages[1] > 0  # striped


def test_auto_placement_is_no_longer_off_by_dom0(tmp_path):
    """Through the port: dom0 pinned to node 0 steers an auto-placed guest to node 1
    even with more free memory on node 0 (the old ranking ignored dom0)."""
    topo = Topology.uniform(2, 2, 4 * GiB)
    sim = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit2", 1, dom0_vcpus=2, dom0_memory=64 << 20)
    sim.set_vcpu_affinity(0, 0, hard=frozenset({0, 1}))
    sim.set_vcpu_affinity(0, 1, hard=frozenset({0, 1}))
    domid = sim.create("auto", 1, 256 << 20)
    assert sim.node_pages(domid)[1] == (256 << 20) >> 12
    assert sim.node_affinity(domid) == {1}
