"""Review: a page the guest's balloon driver gives back must leave the DMA zone's books
right.  give_back freed the frame without the zone books (Domain.dma_pages,
Heap.zone_free): a domain whose pages on a node all lie below the DMA width, giving one
back, was left holding more zone pages there than pages, the freed frame never returned to
the zone, and the state file could no longer be written (the schema refuses it)."""
from xapi_numa.backends.sim import guestmem
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology

MiB = 1 << 20


def test_a_page_given_back_from_the_zone_goes_back_to_it(tmp_path):
    # dma_bits=32 on 2 x 1 GiB: every page of the host lies below the width
    hv = SimHypervisor.init(str(tmp_path / "host.json"), Topology.uniform(2, 2, 1 << 30), "credit2", 3,
                            dom0_vcpus=2, dom0_memory=64 * MiB, dma_bits=32)
    domid = hv.create("g", 2, 64 * MiB, hard=frozenset({0, 1}), dtype="pvh", load="busy")
    with hv.store.snapshot() as host:
        d = host.domain(domid)
        node = next(n for n, p in enumerate(d.node_pages) if p)
        assert d.dma_pages == d.node_pages  # all of it in the zone
        zone_free = list(host.zone_free)
        gfn = next(g for g in range(1 << 20) if guestmem.node_lookup(guestmem.current_runs(d))(g) == node)
    hv.give_back(domid, gfn)  # writes the state file back: refused before the fix
    with hv.store.snapshot() as host:
        d = host.domain(domid)
        assert d.dma_pages[node] == d.node_pages[node]
        assert host.zone_free[node] == zone_free[node] + 1
        host.check_invariants()


def test_an_exact_node_short_of_a_superpage_in_either_pass_gets_4k_pages():
    """Review: 300 pages above the width and 300 in the zone on the exact node: no 2 MiB
    extent in either of alloc_domheap_pages' passes, so libxc populates 4 KiB pages with
    the same exact-node flag, and Xen gives all 600 (above the width, then the zone).  The
    model stopped at the superpage and refused the build (before the zone it could not:
    600 free pages always held one)."""
    from xapi_numa.core.xenalloc import SUPERPAGE, distribute
    free, zone = [600, 0], [300, 0]
    got, last = distribute(600, free, [0, 1], -1, SUPERPAGE, node=0, exact=True, zone=zone)
    assert got == {0: 600} and free == [0, 0] and zone == [0, 0] and last == 0
