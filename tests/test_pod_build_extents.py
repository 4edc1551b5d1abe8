"""A VM xenopsd starts below its static maximum is built with populate-on-demand: where its RAM lands.

xenguest passes libxc its static maximum as the RAM and its target as the start (xapi-idl memory.ml,
build_max_mib / build_start_mib); Xen 4.17's meminit_hvm (tools/libs/guest/xg_dom_x86.c) then asks
XENMEMF_populate_on_demand and only marks the gfns, and the memory is the PoD cache that
xc_domain_set_pod_target fills first: p2m_pod_set_cache_target (xen/arch/x86/mm/p2m-pod.c) takes it
in 2 MiB extents (single pages where none is left) with the domain's node affinity, never in 1 GiB
ones.  Until 2026-12-06 the planner judged such a VM's set as if its GiBs were asked whole: nodes
0 and 1 with 0.9 and 2.2 GiB free were found to send a GiB of a 3 GiB target to node 3.
"""
from xapi_numa.core import xenalloc
from xapi_numa.core.placement import NodeLoads, Planner
from xapi_numa.core.topology import Topology
from xapi_numa.ops.place_request import request_for

GIB, MIB, PAGE = 1 << 30, 1 << 20, 4096


def host() -> Topology:
    d = [[10, 11, 11, 21], [11, 10, 11, 21], [11, 11, 10, 21], [21, 21, 21, 10]]
    return Topology.from_arrays([c // 4 for c in range(16)], d, [32 * GIB] * 4)


def record(static_max: int, dynamic_max: int, domain_type: str = "hvm") -> dict:
    return {"VCPUs_max": "2", "memory_static_max": str(static_max), "memory_dynamic_max": str(dynamic_max),
            "memory_dynamic_min": str(dynamic_max), "HVM_shadow_multiplier": "1.", "domain_type": domain_type,
            "other_config": {"numa_mode": "strict"}, "VCPUs_params": {}}


FREE = [int(0.9 * GIB) + 32 * MIB, int(2.2 * GIB) + 32 * MIB, GIB // 2, int(1.2 * GIB)]


def test_a_pod_build_takes_2mib_extents_and_stays_on_two_nodes():
    pages = 3 * GIB // PAGE
    # the PoD cache: 2 MiB extents round nodes 0,1 (after the overhead), every start: nothing leaves them
    budget = [f // PAGE - 5000 for f in FREE]
    for last in (0, 1):
        got = xenalloc.build(pages, "pv", list(budget), [0, 1], last)[0]
        assert set(n for n, p in got.items() if p) <= {0, 1}
    # asked in GiBs (a build at its static maximum), the second whole GiB goes to node 3
    assert any(xenalloc.build(pages, "hvm", list(budget), [0, 1], last)[0].get(3) for last in (0, 1))
    for dtype in ("hvm", "pvh"):
        request = request_for(record(8 * GIB, 3 * GIB, dtype), host())
        placed = Planner(host()).place(NodeLoads.of(FREE), request)
        assert placed.nodes == (0, 1), dtype


def test_a_vm_at_its_static_maximum_still_asks_whole_gibs():
    assert request_for(record(3 * GIB, 3 * GIB), host()).dtype == "hvm"
    assert request_for(record(3 * GIB, 3 * GIB, "pvh"), host()).dtype == "pvh"
    assert request_for(record(8 * GIB, 3 * GIB, "pv"), host()).dtype == "pv"  # (PV: no PoD, 2 MiB anyway)
