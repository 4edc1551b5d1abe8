"""Review 15n: xenopsd sizes (and builds) the shadow pool of a PVH or PV-in-PVH
guest with a multiplier of 1.0, whatever the VM's ``HVM_shadow_multiplier`` says:
compute_overhead in xenops_server_xen.ml reads the multiplier from ``Vm.HVM`` only,
and BuildPVH is given ``shadow_multiplier = 1.``.  ``place`` multiplied a PVH VM's
pool by it anyway: a 256 GiB, 32-vCPU PVH VM at 4.0 was sized 6 GiB over its build,
so a node that holds the build was passed over (or the VM refused)."""
from xapi_numa.core.placement import NodeLoads, Planner
from xapi_numa.core.topology import Topology
from xapi_numa.errors import NoCapacity
from xapi_numa.ops.place_request import request_for

GIB, MIB = 1 << 30, 1 << 20


def record(domain_type: str, multiplier: str):
    return {"VCPUs_max": "32", "memory_static_max": str(256 * GIB), "memory_dynamic_max": str(256 * GIB),
            "memory_dynamic_min": str(256 * GIB), "HVM_shadow_multiplier": multiplier,
            "domain_type": domain_type, "other_config": {"numa_mode": "preferred", "numa_nodes": "0",
                                                         "numa_on_exhaust": "fail"}, "VCPUs_params": {}}


def xenopsd_build(static_mib: int, vcpus: int, multiplier: float, internal: int, shim: int) -> int:
    """memory.ml's footprint at target = static max: the guest, 1 MiB external, the
    internal extra, the shadow pool (whole MiB, times the multiplier), 38 pages a vCPU."""
    shadow = max(1, int(-(-(256 * vcpus + 2 * static_mib) // 256) * multiplier))
    return (static_mib + internal + 1 + shadow + -(-38 * vcpus // 256) + shim) * MIB


def test_a_pvh_vm_is_sized_with_the_multiplier_xenopsd_builds_it_with():
    topo = Topology.uniform(2, 32, 300 * GIB)
    build = xenopsd_build(256 * 1024, 32, 1.0, 1, 0)  # xenopsd: 1.0 for PVH
    free = build + 64 * MIB  # node 0 holds the build, with room to spare
    placement = Planner(topo).place(NodeLoads.of([free, free]), request_for(record("pvh", "4."), topo))
    assert placement.nodes == (0,)
    assert build <= sum(b for _, b in placement.memory) <= build + 4 * MIB


def test_a_pv_in_pvh_vm_too():
    topo = Topology.uniform(2, 32, 300 * GIB)
    build = xenopsd_build(256 * 1024, 32, 1.0, 1, 23 + 256 * 1024 // 90)
    free = build + 64 * MIB
    placement = Planner(topo).place(NodeLoads.of([free, free]), request_for(record("pv_in_pvh", "4."), topo))
    assert build <= sum(b for _, b in placement.memory) <= build + 4 * MIB


def test_an_hvm_vm_keeps_its_multiplier():
    topo = Topology.uniform(2, 32, 300 * GIB)
    free = xenopsd_build(256 * 1024, 32, 1.0, 1, 0) + 64 * MIB  # short of the pool at 4.0
    try:
        Planner(topo).place(NodeLoads.of([free, free]), request_for(record("hvm", "4."), topo))
    except NoCapacity:
        return
    raise AssertionError("an HVM VM at 4.0 was placed on a node short of its shadow pool")
