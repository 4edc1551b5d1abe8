import pytest
from hypothesis import given
from hypothesis import strategies as st

from xapi_numa.errors import HypervisorError, NoCapacity
from xapi_numa.core.xenalloc import SUPERPAGE, distribute
from xapi_numa.backends.sim.model import Host
from xapi_numa.core.topology import Topology

GiB_PAGES = (1 << 30) >> 12


def host(nodes=2, gib=4):
    return Host(Topology.uniform(nodes, 2, gib << 30), "credit2", seed=3)


def test_striped_over_node_affinity():
    got, last = distribute(1000, [5000, 5000, 5000], [0, 2], -1, 1)
    assert got == {0: 500, 2: 500}


def test_pv_guest_without_affinity_is_striped_over_all_nodes():
    h = host(nodes=2)
    d = h.create_domain("g", 2, GiB_PAGES, dtype="pv")
    assert d.node_pages == [GiB_PAGES // 2, GiB_PAGES // 2]


def test_soft_affinity_decides_node():
    h = host(nodes=2)
    d = h.create_domain("g", 2, GiB_PAGES, soft=0b1100)  # CPUs 2-3 = node 1
    assert d.node_pages == [0, GiB_PAGES]


def test_hard_affinity_decides_node():
    h = host(nodes=2)
    d = h.create_domain("g", 2, GiB_PAGES, hard=0b0011)
    assert d.node_pages == [GiB_PAGES, 0]


def test_node_affinity_set_by_the_toolstack_beats_vcpu_affinity():
    """libxl sets node affinity before populating memory: memory follows it, not hard affinity."""
    h = host(nodes=2)
    d = h.create_domain("g", 2, GiB_PAGES, hard=0b0011, node_affinity=0b10)  # vCPUs on node 0
    assert d.node_pages == [0, GiB_PAGES]
    assert d.node_affinity == 0b10
    # Every node of the host is not Xen's automatic node affinity: only all 64 bits of
    # MAX_NUMNODES are (domain_set_node_affinity's nodes_full), and libxl's candidate map
    # has the host's nodes only.  Explicit, it stays when the vCPUs' affinity changes.
    full = h.create_domain("f", 2, GiB_PAGES, hard=0b0011, node_affinity=0b11)
    assert full.node_affinity == 0b11 and full.node_pages[1] > 0  # striped over both, not on the vCPUs' node
    h.set_node_affinity(full.domid, None)
    assert full.node_affinity is None and h.effective_node_affinity(full) == 0b01


def test_changing_affinity_afterwards_does_not_move_memory():
    h = host(nodes=2)
    d = h.create_domain("g", 2, GiB_PAGES, soft=0b0011)
    for v in d.vcpus:
        h.set_vcpu_affinity(d.domid, v.id, None, 0b1100)
    assert d.node_pages == [GiB_PAGES, 0]


def test_full_node_falls_back_to_others():
    h = host(nodes=2, gib=2)
    d = h.create_domain("g", 2, 3 * GiB_PAGES, soft=0b0011, dtype="hvm")
    # node 0 keeps its DMA zone (a quarter of its 2 GiB, Xen's default width) and gives GiB 0 (2 MiB
    # extents: the first GiB holds the low pages); GiBs 1 and 2 are asked as 1 GiB extents
    # (meminit_hvm) and node 0 has only 512 MiB left above its zone: both go to node 1
    assert d.node_pages == [GiB_PAGES, 2 * GiB_PAGES]


def test_exact_node_fails_instead_of_falling_back():
    h = host(nodes=2, gib=1)
    d = h.create_domain("g", 1, 16, paused=True)
    d.max_pages = 2 * GiB_PAGES
    with pytest.raises(NoCapacity):
        h.allocate(d, GiB_PAGES, node=0, exact=True)
    assert d.tot_pages == 16


def test_superpages_for_translated_guests():
    got, _ = distribute(4 * SUPERPAGE, [10 * SUPERPAGE, 10 * SUPERPAGE], [0, 1], -1, SUPERPAGE)
    assert got == {0: 2 * SUPERPAGE, 1: 2 * SUPERPAGE}


def test_claims_of_others_are_respected():
    h = host(nodes=2, gib=1)
    a = h.create_domain("a", 1, 16, paused=True)
    a.max_pages = 2 * GiB_PAGES
    h.claim(a.domid, 2 * GiB_PAGES - 1024)
    with pytest.raises(NoCapacity):
        h.create_domain("b", 1, GiB_PAGES)
    # the claimant itself can use its claim
    h.allocate(a, GiB_PAGES)
    assert a.claim == 2 * GiB_PAGES - 1024 - 16 - GiB_PAGES


def test_claim_validation():
    h = host()
    a = h.create_domain("a", 1, 1024, paused=True)
    with pytest.raises(HypervisorError) as err:
        h.claim(a.domid, 10)  # not above tot_pages
    assert err.value.errno_name == "EINVAL"
    with pytest.raises(HypervisorError) as err:
        h.claim(99, 10)
    assert err.value.errno_name == "ESRCH" and "no such domain" in err.value.message


def test_node_claims():
    h = host(nodes=2, gib=1)
    a = h.create_domain("a", 1, 16, paused=True)
    a.max_pages = GiB_PAGES
    h.claim(a.domid, GiB_PAGES - 4096, node=0)  # the domain's total, as Xen takes it: it has 16
    assert h.outstanding()[0] == GiB_PAGES - 4096 - 16
    b = h.create_domain("b", 1, GiB_PAGES // 2, soft=0b0011, dtype="hvm")
    # node 0 is claimed by a: b's memory goes to node 1 despite its affinity
    assert b.node_pages[1] >= GiB_PAGES // 2 - 4096
    h.claim(a.domid, 0, node=0)
    assert h.outstanding() == [0, 0]


@given(st.lists(st.integers(min_value=1, max_value=3 * SUPERPAGE), min_size=1, max_size=12),
       st.sampled_from(["pv", "hvm", "pvh"]), st.integers(0, 3))
def test_pages_conserved_and_never_above_node_size(sizes, dtype, affinity_bits):
    h = Host(Topology.uniform(3, 1, 8 << 20), "credit", seed=1)  # 3 nodes x 2048 pages
    for i, pages in enumerate(sizes):
        soft = None if affinity_bits == 0 else affinity_bits
        try:
            h.create_domain(f"d{i}", 1, pages, soft=soft, dtype=dtype, paused=True)
        except NoCapacity:
            pass
        h.check_invariants()
    for n, size in enumerate(h.size):
        assert sum(d.node_pages[n] for d in h.domains.values()) <= size
