"""Under xapi, xenopsd builds a PVH guest with XenServer's xenguest (XCP-ng 8.3 / XenServer 8.4, Xen
4.17), whose pvh_setup_mem leaves the same 256 MiB MMIO hole below 4 GiB as its HVM build
(HVM_BELOW_4G_MMIO_LENGTH): RAM below 4 GiB ends at 0xf0000000, the rest from 4 GiB.  The model had
libxl's PVH hole (from the ACPI tables at 0xfc000000), so a 4 GiB PVH VM's layout, its build's extents
and ``vnuma --apply``'s default --hole-start were 192 MiB off."""
from xapi_numa.core import xenalloc
from xapi_numa.core.xenalloc import GIGAPAGE, HIGHMEM_START, SUPERPAGE, build_extents, build_layout

G = GIGAPAGE


def test_pvh_ram_below_4g_ends_where_xenguest_leaves_the_hole():
    assert xenalloc.ram_end_below_4g("pvh") == 0xF0000000 == xenalloc.ram_end_below_4g("hvm")


def test_a_4gib_pvh_build_puts_256mib_above_4g():
    pages = 4 * G
    below = 0xF0000
    assert build_extents(pages, "pvh") == [(3 * G, GIGAPAGE), (below - 3 * G, SUPERPAGE),
                                           (pages - below, SUPERPAGE)]
    runs = build_layout([pages], "pvh")
    assert runs == [(0, below, 0), (HIGHMEM_START, pages - below, 0)]
