"""The loopback's VM.start_on reads VCPUs_params:mask as xapi and xenopsd do, and a
per-vCPU mask goes through place -> start -> settle (review of the plugin)."""
import pytest

from test_plugin import ok, run


def test_the_mask_is_read_as_xapi_reads_it():
    from xapi_loopback import _vcpu_affinity

    f = frozenset
    assert _vcpu_affinity(None, None, 2, 8) == []
    assert _vcpu_affinity("0,1,2,3", None, 2, 8) == [f({0, 1, 2, 3})] * 2
    # one list per vCPU; the vCPUs past the last list get the first
    assert _vcpu_affinity("0,1;4,5", None, 3, 8) == [f({0, 1}), f({4, 5}), f({0, 1})]
    # any piece int_of_string refuses: the whole mask is ignored (unpinned), a space too
    for bad in ("0,1;x", "0,,1", "1,2,3; 4,5,6", "", "0;"):
        assert _vcpu_affinity(bad, None, 2, 8) == [], bad
    assert _vcpu_affinity("0x4,0b101,1_0", None, 1, 16) == [f({4, 5, 10})]  # OCaml's literals
    # the host's guest mask narrows every list, or is every vCPU's when the VM has none
    assert _vcpu_affinity("0,1,4;5,6", "1,4,5,6,7", 2, 8) == [f({1, 4}), f({5, 6})]
    assert _vcpu_affinity(None, "4,5", 2, 8) == [f({4, 5})] * 2
    assert _vcpu_affinity("0,1", "4;5", 1, 8) == [f({0, 1})]  # a host mask with ';' is not read
    assert _vcpu_affinity("0,1,99", None, 1, 8) == [f({0, 1})]  # xenopsd drops CPUs the host lacks
    with pytest.raises(ValueError):  # nothing left of a vCPU's list: Xen refuses the map
        _vcpu_affinity("0,1;2", "0,1", 2, 8)


def test_a_malformed_mask_boots_unpinned_as_in_xapi(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("odd", 2, 256 << 20, vcpus_params={"mask": "0,1;two"})
    session.xenapi.VM.start_on(ref, host, False, False)
    sim, domid = server.sims[host], int(session.xenapi.VM.get_domid(ref))
    assert {v.hard for v in sim.vcpus(domid)} == {frozenset(range(8))}


def test_a_per_vcpu_mask_goes_through_place_start_and_settle(ctx):
    """The admin's per-vCPU lists (0,4 and 1,5: one CPU of each node each) with a strict
    policy on node 1: the boot pin keeps each vCPU on its own CPU of node 1, the memory is
    built there, and settling puts the admin's mask back."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("pervcpu", 2, 1 << 30, vcpus_params={"mask": "0,4;1,5"}, domain_type="pvh")
    ok(run(server, host, sid, "set_policy", {"vm": uuid, "mode": "strict", "nodes": "1"}))
    placed = ok(run(server, host, sid, "place", {"vm": uuid}))
    assert placed["nodes"] == [1]
    assert session.xenapi.VM.get_VCPUs_params(ref)["mask"] == "4;5"
    session.xenapi.VM.start_on(ref, host, False, False)
    sim, domid = server.sims[host], int(session.xenapi.VM.get_domid(ref))
    assert [v.hard for v in sim.vcpus(domid)] == [frozenset({4}), frozenset({5})]
    assert {n for n, p in sim.node_pages(domid).items() if p} == {1}
    settled = ok(run(server, host, sid, "settle", {"vm": uuid}))
    assert settled["memory_nodes"] == [1] and settled["nodes"] == [1]
    assert session.xenapi.VM.get_VCPUs_params(ref) == {"mask": "0,4;1,5"}
    assert not {"numa_saved_mask", "numa_placed_nodes"} & set(session.xenapi.VM.get_other_config(ref))
    vcpus = sim.vcpus(domid)
    # strict on node 1: each vCPU's hard affinity is its own admin list's CPU there
    assert settled["hard"] == "4-5" and [v.hard for v in vcpus] == [frozenset({4}), frozenset({5})]
