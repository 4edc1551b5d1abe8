"""An HVM/PVH build asks each whole, aligned GiB of its RAM as one 1 GiB extent first.

libxc 4.17's meminit_hvm (tools/libs/guest/xg_dom_x86.c) walks the guest's RAM in gfn order:
below 4 GiB up to the MMIO hole xenopsd's xenguest leaves (256 MiB, for HVM and PVH alike),
then from 4 GiB.  Each 1 GiB-aligned whole GiB is asked as one order-18 extent; only
where no node has one does that GiB go in 2 MiB extents, and where none has those, in 4 KiB
pages.  An HVM guest's first 2 MiB (the low memory round the VGA hole) go page by page.  Each
extent is one get_free_buddy search (xen/common/page_alloc.c): striping goes round the affinity
a GiB at a time, and a GiB that no node of the affinity has whole goes to another node before
any 2 MiB is tried.  The simulator asked 2 MiB extents throughout.
"""
from xapi_numa.backends.sim.model import Host
from xapi_numa.core.topology import Topology
from xapi_numa.core.xenalloc import GIGAPAGE, SUPERPAGE, build_extents

GIB = 1 << 30
G = GIB >> 12  # pages


def _host():
    # dma_bits=20: a DMA zone of 1 MiB, so node 0's memory above it is all but that
    return Host(Topology.uniform(2, 2, 8 * GIB), scheduler="credit2", seed=2, commandline="dma_bits=20")


def test_the_extents_of_an_hvm_and_a_pvh_build_in_gfn_order():
    # 8 GiB HVM: 3.75 GiB below the hole (its first 2 MiB page by page, GiB 0 after that and the
    # part below the hole in 2 MiB), then 4.25 GiB from 4 GiB
    assert build_extents(8 * G, "hvm") == [(0x200, 1), (G - 0x200, SUPERPAGE), (2 * G, GIGAPAGE),
                                           (3 * G // 4, SUPERPAGE), (4 * G, GIGAPAGE), (G // 4, SUPERPAGE)]
    # PVH: no low pages, GiB 0 whole; the RAM below 4 GiB ends at 0xf0000000 (xenguest's pvh_setup_mem)
    assert build_extents(5 * G + 7, "pvh") == [(3 * G, GIGAPAGE), (0xF0000 - 3 * G, SUPERPAGE),
                                               (G, GIGAPAGE), (5 * G + 7 - 0xF0000 - G, SUPERPAGE)]
    assert build_extents(5 * G + 7, "pv") == [(5 * G + 7, SUPERPAGE)]  # meminit_pv: no 1 GiB extents


def test_striping_goes_round_the_affinity_a_gib_at_a_time():
    host = _host()
    d = host.create_domain("pvh", 1, 3 * G, dtype="pvh", node_affinity=0b11, paused=True)
    assert d.node_pages == [G, 2 * G], d.node_pages  # GiBs to nodes 1, 0, 1 (cycle_node from 0)


def test_a_gib_the_affinity_lacks_goes_to_another_node_before_2mib_is_tried():
    host = _host()
    host.create_domain("filler", 1, 6 * G + G // 2, dtype="pv", node_affinity=0b10, paused=True)
    assert host.free[1] == 3 * G // 2
    d = host.create_domain("pvh", 1, 2 * G, dtype="pvh", node_affinity=0b10, paused=True)
    assert d.node_pages == [G, G], d.node_pages  # node 1 had 1.5 GiB, not two whole GiBs
    assert host.free[1] == G // 2


def test_an_hvm_guest_takes_its_first_2mib_page_by_page():
    host = _host()
    d = host.create_domain("hvm", 1, G, dtype="hvm", node_affinity=0b11, paused=True)
    # 512 pages round nodes 1, 0, ...; then 511 superpages from node 1 (after node 0's last page)
    assert d.node_pages == [256 + 255 * SUPERPAGE, 256 + 256 * SUPERPAGE], d.node_pages
