"""A simulated shell given a vNUMA layout was built as any other guest: its memory striped over
its node affinity, whatever the vnodes said, and spilled to another node where one was short.
libxc builds a vNUMA guest from its vmemranges (Xen 4.17, tools/libs/guest/xg_dom_x86.c,
meminit_hvm / meminit_pv): range by range, each populated with XENMEMF_exact_node(its vnode's
pnode), 1 GiB extents where aligned, then 2 MiB, then 4 KiB, never from another node (a short
pnode fails the build).  Before the ranges an HVM guest's pages below the VGA hole (0xa0) are
populated with no node; the video RAM the ranges leave out QEMU populates afterwards, no node
either.  The simulator's build now does the same (xapi_numa/core/xenalloc.py, build_vnuma), and
keeps each range's gfns on its pnode."""
import errno

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core import vnuma
from xapi_numa.core.topology import Topology
from xapi_numa.errors import HypervisorError, InvalidArgument, NoCapacity

GiB, MiB, PAGE = 1 << 30, 1 << 20, 4096
TOPO = Topology.uniform(2, 2, 8 * GiB)


def host(tmp_path) -> SimHypervisor:
    return SimHypervisor.init(str(tmp_path / "h.json"), TOPO, "credit2", seed=1, dom0_vcpus=1, dom0_memory=256 * MiB)


def shell(hv, kind, memory=3 * GiB, pnodes=(0, 1), video=0, hole=vnuma.FOUR_GiB):
    """A 3-vCPU shell whose vnode 0 (2 vCPUs: 2 GiB) is on pnodes[0] and vnode 1 (1 GiB) on pnodes[1]."""
    domid = hv.create_shell("g", 3, memory, dtype=kind)
    plan = vnuma.plan_follow(TOPO, vnuma.GuestSpec(kind, 3, memory), list(pnodes))
    hv.set_vnuma(domid, plan, vnuma.memory_ranges(plan, hole, vnuma.FOUR_GiB, video))
    return domid, plan


def test_a_pvh_guest_is_built_vnode_by_vnode_each_on_its_pnode(tmp_path):
    hv = host(tmp_path)
    domid, plan = shell(hv, "pvh")
    got = hv.build(domid)
    # striped over both nodes a GiB at a time (from node 1) it would hold 2 GiB on node 1
    assert got == {0: 2 * GiB // PAGE, 1: GiB // PAGE}
    assert hv.node_pages(domid) == {0: 2 * GiB // PAGE, 1: GiB // PAGE}
    # vnode 1's gfns are on its pnode: moving some of them to node 0 frees exactly that many on node 1
    first = hv.vnuma(domid).ranges_of(1)[0].start // PAGE
    result = hv.move_pages(domid, list(range(first + 1000, first + 1100)), 0)
    assert result.moved == 100 and hv.node_pages(domid) == {0: 2 * GiB // PAGE + 100, 1: GiB // PAGE - 100}


def test_a_short_pnode_fails_the_build_rather_than_spill(tmp_path):
    hv = host(tmp_path)
    # node 1 keeps less than vnode 1's GiB free
    hv.create("filler", 1, 7 * GiB + 512 * MiB, hard=TOPO.cpus_of_nodes([1]), soft=TOPO.cpus_of_nodes([1]),
              dtype="pvh", load="idle")
    free = [n.free for n in hv.node_memory()]
    assert free[1] < GiB
    domid, _ = shell(hv, "pvh")
    free = [n.free for n in hv.node_memory()]  # (the shell holds its build's overhead already)
    with pytest.raises(NoCapacity) as err:
        hv.build(domid)
    assert "node 1" in str(err.value)
    # nothing was taken, nothing spilled to node 0
    assert [n.free for n in hv.node_memory()] == free
    assert sum(hv.node_pages(domid).values()) == 0


def test_an_hvm_guest_low_pages_and_video_ram_have_no_node(tmp_path):
    hv = host(tmp_path)
    video = 4 * MiB
    domid, _ = shell(hv, "hvm", video=video, hole=0xF0000000)
    got = hv.build(domid)
    # 0xa0 pages below the VGA hole, then the video RAM's pages, page by page round both nodes
    # (from node 1: a new domain's last_alloc_node is 0); the rest of each range on its pnode, but
    # the hole's 0x20 pages (0xa0-0xc0), which meminit_hvm leaves unpopulated
    low, hole, vram = 0xA0, 0x20, video // PAGE
    assert got == {0: (2 * GiB - video) // PAGE - low - hole + low // 2 + vram // 2,
                   1: GiB // PAGE + low // 2 + vram // 2}


def test_ranges_that_do_not_hold_the_guests_memory_are_refused_as_libxc_refuses_them(tmp_path):
    hv = host(tmp_path)
    domid, _ = shell(hv, "pvh")
    plan = vnuma.plan_follow(TOPO, vnuma.GuestSpec("pvh", 3, 2 * GiB), [0, 1])
    hv.set_vnuma(domid, plan, vnuma.memory_ranges(plan))  # 2 GiB of ranges for a 3 GiB guest
    with pytest.raises(HypervisorError) as err:
        hv.build(domid)
    assert err.value.errno == errno.EINVAL and sum(hv.node_pages(domid).values()) == 0


def test_a_node_named_for_a_vnuma_build_is_refused(tmp_path):
    hv = host(tmp_path)
    domid, _ = shell(hv, "pvh")
    with pytest.raises(InvalidArgument) as err:
        hv.build(domid, 1)
    assert err.value.field == "node" and sum(hv.node_pages(domid).values()) == 0
