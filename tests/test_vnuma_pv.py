"""PV guests were refused vNUMA ("Xen 4.17 builds vNUMA only for translated guests").  Xen 4.17
builds and holds one for them too: XEN_DOMCTL_setvnumainfo checks no guest type
(xen/common/domctl.c, vnuma_init), nor does XENMEM_get_vnumainfo (xen/common/memory.c); libxc's
meminit_pv populates each vmemrange with XENMEMF_exact_node of its vnode's pnode
(tools/libs/guest/xg_dom_x86.c); libxl lays a PV guest's vnodes end to end from 0 -- a PV
pseudo-physical map has no MMIO hole (tools/libs/light/libxl_vnuma.c,
libxl__vnuma_build_vmemrange_pv_generic) -- and sets the layout with xc_domain_setvnuma, the
call ``vnuma --apply`` makes (libxl_dom.c, libxl__build_pv).  Nothing in the hypervisor reads
the layout at build time, so setting it on a built PV domain before it first runs, as --apply
does, leaves Xen holding what libxl would have set."""
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.core import vnuma, xenalloc
from xapi_numa.core.topology import Topology

GiB, MiB, PAGE = 1 << 30, 1 << 20, 4096
TOPO = Topology.uniform(2, 2, 8 * GiB)


def test_a_pv_shell_given_a_layout_is_built_vnode_by_vnode_with_no_hole(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "h.json"), TOPO, "credit2", seed=1, dom0_vcpus=1, dom0_memory=256 * MiB)
    memory = 6 * GiB
    domid = hv.create_shell("g", 2, memory, dtype="pv")
    plan = vnuma.plan_follow(TOPO, vnuma.GuestSpec("pv", 2, memory), [0, 1])
    ranges = vnuma.memory_ranges(plan, xenalloc.ram_end_below_4g("pv"), vnuma.FOUR_GiB)
    # one range a vnode, end to end from 0: vnode 1's runs on across 4 GiB
    assert [(r.start, r.end, r.vnode) for r in ranges] == [(0, 3 * GiB, 0), (3 * GiB, 6 * GiB, 1)]
    hv.set_vnuma(domid, plan, ranges)
    assert hv.build(domid) == {0: 3 * GiB // PAGE, 1: 3 * GiB // PAGE}
    assert hv.vnuma(domid).ranges == ranges and hv.vnuma(domid).pnodes == (0, 1)


def _host(tmp_path, monkeypatch):
    host = str(tmp_path / "h.json")
    assert main(["sim", "init", host, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "8G"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    return SimHypervisor(host)


def test_apply_sets_a_built_pv_guests_layout_end_to_end_from_0(tmp_path, capsys, monkeypatch):
    hv = _host(tmp_path, monkeypatch)
    node0 = TOPO.cpus_of_nodes([0])
    domid = hv.create("g", 2, 5 * GiB, hard=node0, soft=node0, dtype="pv", load="idle", paused=True)
    capsys.readouterr()
    rc = main(["vnuma", "g", "--vcpus", "2", "--memory", "5G", "--type", "pv", "--apply", "--no-xapi", "--json"])
    assert rc == 0, capsys.readouterr().err
    layout = hv.vnuma(domid)
    assert layout.pnodes == (0,) and [(r.start, r.end) for r in layout.ranges] == [(0, 5 * GiB)]


@pytest.mark.parametrize("extra", [["--hole-start", "0xf0000000"], ["--videoram", "4"]])
def test_a_hole_or_video_ram_for_a_pv_guest_is_refused_naming_the_flag(tmp_path, capsys, monkeypatch, extra):
    hv = _host(tmp_path, monkeypatch)
    domid = hv.create("g", 2, GiB, dtype="pv", load="idle", paused=True)
    capsys.readouterr()
    rc = main(["vnuma", "g", "--vcpus", "2", "--memory", "1G", "--type", "pv", "--apply", "--no-xapi"] + extra)
    err = capsys.readouterr().err
    assert rc == 2 and "error: {}: ".format(extra[0]) in err and "pv guest has no" in err, err
    assert "Traceback" not in err and hv.vnuma(domid) is None
