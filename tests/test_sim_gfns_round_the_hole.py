"""A simulated HVM/PVH guest built without a vNUMA layout had its gfns numbered from 0 with no
MMIO hole, while Xen's build leaves the hole out (Xen 4.17 tools/libs/guest/xg_dom_x86.c,
meminit_hvm: with no vmemranges it populates [0, lowmem_end) and [4 GiB, highmem_end);
tools/libs/light/libxl_dom.c, libxl__build_hvm: lowmem_end is where the MMIO hole starts,
highmem_end 4 GiB plus the RAM that did not fit below it).  A vNUMA layout's ranges use those
real guest-physical addresses, so for a guest bigger than its RAM below the hole the
simulator's gfns above the hole's start were not where the layout said: the hole's gfns were
RAM, and the layout's last gfns were not populated at all."""
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core import memory_move as pagemove
from xapi_numa.core import vnuma, xenalloc
from xapi_numa.core.topology import Topology
from xapi_numa.core.units import PAGE_SHIFT

GiB, MiB = 1 << 30, 1 << 20
TOPO = Topology.uniform(2, 2, 8 * GiB)


@pytest.mark.parametrize("kind", ["pvh", "hvm"])
def test_build_layout_puts_the_ram_past_the_holes_start_at_4_gib(kind):
    low, pages = xenalloc.LOWMEM_END[kind], 5 * GiB >> PAGE_SHIFT
    runs = xenalloc.build_layout([pages, 0], kind)
    assert sum(c for _, c, _ in runs) == pages
    assert all(f + c <= low or f >= xenalloc.HIGHMEM_START for f, c, _ in runs)
    last = runs[-1]
    assert last[0] + last[1] == xenalloc.HIGHMEM_START + pages - low
    # a guest that fits below the hole keeps its gfns from 0 on; PV has no hole
    assert xenalloc.build_layout([GiB >> PAGE_SHIFT, 0], kind)[-1][0] < low
    assert xenalloc.build_layout([pages, 0], "pv") == [(0, pages, 0)]


def test_a_layouts_range_above_4_gib_is_where_the_built_guests_gfns_are(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "h.json"), TOPO, "credit2", seed=1, dom0_vcpus=1, dom0_memory=256 * MiB)
    node0 = TOPO.cpus_of_nodes([0])
    memory = 5 * GiB
    domid = hv.create("g", 1, memory, hard=node0, soft=node0, dtype="pvh", load="idle", paused=True)
    assert hv.node_pages(domid).get(0) == memory >> PAGE_SHIFT
    plan = vnuma.plan_follow(TOPO, vnuma.GuestSpec("pvh", 1, memory), [0])
    hole = xenalloc.LOWMEM_END["pvh"] << PAGE_SHIFT
    hv.set_vnuma(domid, plan, vnuma.memory_ranges(plan, hole, vnuma.FOUR_GiB))
    ranges = hv.vnuma(domid).ranges
    assert [(r.start, r.end) for r in ranges] == [(0, hole), (vnuma.FOUR_GiB, vnuma.FOUR_GiB + memory - hole)]
    # every gfn of the layout is the guest's RAM, none of the hole's is
    classes = hv.memory_map(domid).classes
    high = ranges[1]
    assert len(classes) == high.end >> PAGE_SHIFT
    hole_gfns = classes[hole >> PAGE_SHIFT:vnuma.FOUR_GiB >> PAGE_SHIFT]
    assert set(hole_gfns) == {pagemove.NOT_RAM}
    assert pagemove.NOT_RAM not in set(classes[high.start >> PAGE_SHIFT:high.end >> PAGE_SHIFT])
    # the layout's last gfns (below the toolstack's magic pages) are populated, on the node it says
    top = high.end >> PAGE_SHIFT
    gfns = list(range(top - 4 - 256, top - 4))
    result = hv.move_pages(domid, gfns, 1)
    assert (result.released, result.moved) == (256, 256)
    assert hv.node_pages(domid) == {0: (memory >> PAGE_SHIFT) - 256, 1: 256}
