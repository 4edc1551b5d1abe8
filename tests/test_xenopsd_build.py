"""What xenopsd builds (xapi-idl memory.ml full_config, xenopsd/xc/domain.ml build, XenServer's xenguest):
the RAM is ``build_max_mib`` = static max less the video RAM, started at ``build_start_mib`` = the
start target less it, both in MiB as xenopsd rounds them (KiB, then MiB up); libxc 4.17's meminit_hvm
asks populate-on-demand exactly when the start is below the maximum (PVH too: Xen's
XENMEM_set_pod_target asks is_hvm_domain).  QEMU populates an HVM guest's video RAM after the build,
page by page with no node (xen_ram_alloc: extent order 0).

Two things the model had otherwise: a start target below the static max by less than a MiB was
PoD (xenopsd rounds it up to the same MiB: no PoD, built in 1 GiB extents), and the video RAM was
built as RAM in the build's extents (a 3 GiB HVM VM asked GiBs 1 and 2 whole; xenopsd's build of
3 GiB less 4 MiB asks GiB 1 whole only, the rest in 2 MiB extents)."""
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim import guestmem
from xapi_numa.core import xenalloc
from xapi_numa.core.placement import NodeLoads, Planner
from xapi_numa.core.topology import Topology
from xapi_numa.core.xenalloc import GIGAPAGE, SUPERPAGE
from xapi_numa.ops.place_request import request_for

GIB, MIB, PAGE = 1 << 30, 1 << 20, 4096
G = GIGAPAGE


def host() -> Topology:
    d = [[10, 11, 11, 21], [11, 10, 11, 21], [11, 11, 10, 21], [21, 21, 21, 10]]
    return Topology.from_arrays([c // 4 for c in range(16)], d, [32 * GIB] * 4)


def record(static_max: int, dynamic_max: int, domain_type: str = "hvm", **platform) -> dict:
    return {"VCPUs_max": "2", "memory_static_max": str(static_max), "memory_dynamic_max": str(dynamic_max),
            "memory_dynamic_min": str(dynamic_max), "HVM_shadow_multiplier": "1.", "domain_type": domain_type,
            "other_config": {"numa_mode": "strict"}, "VCPUs_params": {}, "platform": platform}


def test_a_start_target_in_the_static_max_s_last_mib_is_no_pod():
    request = request_for(record(2 * GIB, 2 * GIB - PAGE), host())
    assert (request.dtype, request.memory) == ("hvm", 2 * GIB)  # built at its static max, in 1 GiB extents
    below = request_for(record(2 * GIB, 2 * GIB - MIB, "pvh"), host())
    assert (below.dtype, below.memory) == ("pv", 2 * GIB - MIB)  # a MiB below: PoD, PVH as HVM


def test_an_hvm_build_leaves_the_video_ram_to_last_page_by_page():
    pages, video = 3 * G, 4 * MIB // PAGE
    assert xenalloc.build_extents(pages, "hvm", video) == [
        (0x200, 1), (G - 0x200, SUPERPAGE), (G, GIGAPAGE), (G - video, SUPERPAGE), (video, 1)]
    assert request_for(record(3 * GIB, 3 * GIB), host()).video == 4 * MIB  # xapi's default videoram
    assert request_for(record(3 * GIB, 3 * GIB, videoram="8"), host()).video == 8 * MIB
    assert request_for(record(3 * GIB, 3 * GIB, "pvh", videoram="8"), host()).video == 0


def test_a_strict_3gib_hvm_vm_stays_on_two_nodes_short_of_a_second_whole_gib():
    # after the overhead and GiB 0's 2 MiB extents, node 1 has no whole GiB left: asked as RAM, GiB 2
    # would leave the pair; xenopsd's build asks its 1020 MiB in 2 MiB extents, which the pair has
    free = [int(1.6 * GIB), int(1.45 * GIB), int(1.2 * GIB), GIB // 2]
    placed = Planner(host()).place(NodeLoads.of(free), request_for(record(3 * GIB, 3 * GIB), host()))
    assert placed.nodes == (0, 1)


def test_the_simulator_builds_a_shell_s_video_ram_after_its_ram(tmp_path):
    path = str(tmp_path / "h.json")
    hv = SimHypervisor.init(path, Topology.from_arrays([c // 2 for c in range(4)], [[10, 20], [20, 10]], [8 * GIB] * 2))
    domid = hv.create_shell("g", 2, 3 * GIB, dtype="hvm", video=4 * MIB)
    got = hv.build(domid)
    assert sum(got.values()) == 3 * G
    with hv.store.snapshot() as h:
        d = h.domain(domid)
        runs = guestmem.current_runs(d)
        assert runs[-1][0] + runs[-1][1] == 3 * G  # RAM from 0 (below the hole), then the video's pages
        assert sum(c for f, c, n in runs if f >= 3 * G - 1024) == 1024


def test_an_unspecified_domain_type_is_built_as_its_boot_policy_says():
    """xapi's ``domain_type`` "unspecified" (a VM from before the field) is HVM with an
    HVM_boot_policy, else PV: the video RAM was worked out so, but the build was predicted
    as HVM's whatever the boot policy (1 GiB extents for a PV guest's RAM)."""
    pv = dict(record(2 * GIB, 2 * GIB, "unspecified"), HVM_boot_policy="")
    assert (request_for(pv, host()).dtype, request_for(pv, host()).video) == ("pv", 0)
    hvm = dict(record(2 * GIB, 2 * GIB, "unspecified"), HVM_boot_policy="BIOS order")
    assert request_for(hvm, host()).dtype == "hvm" and request_for(hvm, host()).video == 4 * MIB


def test_an_unspecified_domain_type_has_the_overhead_of_the_type_its_boot_policy_says():
    """xapi sizes a VM's overhead for its domain type (memory_check's check_domain_type refuses an
    "unspecified" one: xapi resolves it from HVM_boot_policy first); the prediction sized it as an HVM
    guest's whatever the boot policy, so a PV VM from before the field was held xenopsd's extra MiB."""
    for boot, kind in (("", "pv"), ("BIOS order", "hvm")):
        unspecified = dict(record(2 * GIB, 2 * GIB, "unspecified"), HVM_boot_policy=boot)
        assert request_for(unspecified, host()).overhead == request_for(record(2 * GIB, 2 * GIB, kind), host()).overhead
