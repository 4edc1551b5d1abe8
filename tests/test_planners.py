"""Table tests of the pure planners on hand-built snapshots: no simulator, no I/O.

A 2-node host with 4 pCPUs per node (node 0: CPUs 0-3, node 1: CPUs 4-7).
"""
import attrs
import pytest

from xapi_numa.core import actions as act
from xapi_numa.core import affinity_fixup, homing, locality, reservation, settling
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.homing import PinRecord
from xapi_numa.core.policy import Policy
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology
from xapi_numa.core.vcpu_mask import VcpuMask

TOPO = Topology.uniform(2, 4, 4 << 30)
ALL = TOPO.all_cpus
N0, N1 = TOPO.cpus_of_nodes([0]), TOPO.cpus_of_nodes([1])
G = 1 << 30


def dom(domid, vcpus=2, paused=False, memory=G, uuid=None):
    return DomainInfo(domid, "vm{}".format(domid), uuid or "uuid-{}".format(domid), vcpus, memory, memory, paused)


def vcpu(domid, n, cpu, soft, hard=ALL, state="running"):
    return VcpuInfo(domid, n, cpu, state, frozenset(hard), frozenset(soft))


def snap(vcpus, time=10.0, scheduler="credit", pages=None, domains=None):
    by_dom = {}
    for v in vcpus:
        by_dom.setdefault(v.domid, []).append(v)
    doms = domains or [dom(d, len(vs)) for d, vs in sorted(by_dom.items())]
    return HostSnapshot(TOPO, time, tuple(doms), {d: tuple(vs) for d, vs in by_dom.items()}, pages or {}, scheduler)


# A (domid 1) soft node 0, C (domid 2) soft node 1; vCPU 0 of each swapped onto the other's node.
SWAPPED = [vcpu(1, 0, 4, N0), vcpu(1, 1, 1, N0), vcpu(2, 0, 0, N1), vcpu(2, 1, 5, N1)]
LONG_AGO = {(1, 0): 0.0, (2, 0): 0.0}


# --- homing --------------------------------------------------------------------------------------
def test_a_swapped_pair_is_pinned_home_under_credit1():
    pins = homing.plan(snap(SWAPPED), LONG_AGO, threshold=1.0)
    assert [(p.domid, p.vcpu, p.cpus) for p in pins] == [(1, 0, N0), (2, 0, N1)]
    assert all(isinstance(p, act.PinTemporarily) and p.original_hard == ALL for p in pins)


@pytest.mark.parametrize("case, kwargs, since", [
    ("below the threshold", {}, {(1, 0): 9.5, (2, 0): 9.5}),
    ("both VMs excluded", {"excluded": {1, 2}}, LONG_AGO),
    ("already pinned", {"pinned": {(1, 0), (2, 0)}}, LONG_AGO),
])
def test_nothing_is_pinned_when(case, kwargs, since):
    assert homing.plan(snap(SWAPPED), since, threshold=1.0, **kwargs) == [], case


def test_an_admin_hard_pin_is_left_alone():
    vs = [vcpu(1, 0, 4, N0, hard={4, 5}), vcpu(1, 1, 1, N0), vcpu(2, 0, 0, N1), vcpu(2, 1, 5, N1)]
    pins = homing.plan(snap(vs), LONG_AGO, threshold=1.0)
    assert [(p.domid, p.vcpu) for p in pins] == [(2, 0)]


def test_a_vm_settled_inside_the_hosts_guest_mask_is_no_admin_pin():
    """Settled on a host with a guest mask (CPUs 1-7 here), a VM's hard affinity is that
    mask: taken for an admin pin, it was never homed, fixed up or rebalanced again."""
    mask = frozenset(range(1, 8))
    vs = [vcpu(1, 0, 4, N0, hard=mask), vcpu(1, 1, 1, N0, hard=mask), vcpu(2, 0, 0, N1, hard=mask),
          vcpu(2, 1, 5, N1, hard=mask)]
    assert homing.plan(snap(vs), LONG_AGO, threshold=1.0) == []  # no mask known: the admin's pins
    masked = attrs.evolve(snap(vs), guest_cpus=mask)
    assert [(p.domid, p.vcpu) for p in homing.plan(masked, LONG_AGO, threshold=1.0)] == [(1, 0), (2, 0)]
    narrower = [attrs.evolve(v, hard=frozenset({4, 5})) if v.domid == 1 and v.vcpu == 0 else v for v in vs]
    pins = homing.plan(attrs.evolve(snap(narrower), guest_cpus=mask), LONG_AGO, threshold=1.0)
    assert [(p.domid, p.vcpu) for p in pins] == [(2, 0)]  # narrower than the mask: an admin's pin
    fixable = [vcpu(1, 0, 0, N0, hard=mask)]
    assert affinity_fixup.plan(snap(fixable, pages={1: {0: 10, 1: 90}})) == []
    assert affinity_fixup.plan(attrs.evolve(snap(fixable, pages={1: {0: 10, 1: 90}}), guest_cpus=mask))


def test_not_fixable_when_home_is_busy_with_vcpus_at_home():
    # vCPU 0 of A runs on node 1; every pCPU of node 0 runs a vCPU that is at home there
    vs = [vcpu(1, 0, 4, N0)] + [vcpu(3, i, i, N0) for i in range(4)]
    assert homing.plan(snap(vs), {(1, 0): 0.0}, threshold=1.0) == []


def test_credit2_pins_only_the_pair_first_then_whole_vms_once_they_bounced():
    first = homing.plan(snap(SWAPPED, scheduler="credit2"), LONG_AGO, threshold=1.0)
    assert [(p.domid, p.vcpu) for p in first] == [(1, 0), (2, 0)]
    again = homing.plan(snap(SWAPPED, scheduler="credit2"), LONG_AGO, threshold=1.0, escalate={1})
    assert [(p.domid, p.vcpu) for p in again] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert {p.reason for p in again} == {"displaced", homing.HELD_WITH_ITS_VM}


def test_bounced_is_displaced_soon_after_a_restore():
    s = snap(SWAPPED, time=10.0)
    assert homing.bounced(s, {"uuid-1": 5.0, "uuid-2": -100.0}, window=10.0) == {1}


def _pinned(domid, n, cpu, pinned_to, soft):
    return vcpu(domid, n, cpu, soft, hard=pinned_to)


def _record(domid, n, pinned_to, at=8.0):
    return PinRecord("uuid-{}".format(domid), n, domid, frozenset(pinned_to), ALL, at)


@pytest.mark.parametrize("case, vcpus, records, time, expected", [
    ("home: restored", [_pinned(1, 0, 1, N0, N0)], [_record(1, 0, N0)], 9.0, [(1, 0, ALL)]),
    ("not home yet: kept", [_pinned(1, 0, 5, N0, N0)], [_record(1, 0, N0)], 9.0, []),
    ("not home after the timeout: given up", [_pinned(1, 0, 5, N0, N0)], [_record(1, 0, N0)], 20.0, [(1, 0, ALL)]),
    ("VM gone: forgotten", [vcpu(3, 0, 0, N0)], [_record(1, 0, N0)], 9.0, [(None, 0, None)]),
    ("admin changed the hard affinity: forgotten, never overwritten",
     [_pinned(1, 0, 1, {0, 1}, N0)], [_record(1, 0, N0)], 9.0, [(None, 0, None)]),
])
def test_restores(case, vcpus, records, time, expected):
    out = homing.plan_restores(snap(vcpus, time=time), records, timeout=5.0)
    assert [(r.domid, r.vcpu, r.hard) for r in out] == expected, case


def test_restore_all_at_stop_skips_what_is_no_longer_ours():
    vs = [_pinned(1, 0, 1, N0, N0), _pinned(1, 1, 5, {4}, N0)]
    out = homing.restore_all(snap(vs), [_record(1, 0, N0), _record(1, 1, N0)])
    assert [(r.domid, r.hard) for r in out] == [(1, ALL), (None, None)]


def test_restore_all_restores_a_pin_recorded_before_its_target_was_kept():
    """A pin journalled by an older xapi-numad has no pinned_to (the migration adds it empty):
    it was dropped as changed by someone else, and the vCPU stayed hard-pinned for good."""
    out = homing.restore_all(snap([_pinned(1, 0, 1, N0, N0)]), [_record(1, 0, ())])
    assert [(r.domid, r.hard) for r in out] == [(1, ALL)]
    out = homing.plan_restores(snap([_pinned(1, 0, 1, N0, N0)], time=9.0), [_record(1, 0, ())], timeout=5.0)
    assert [(r.domid, r.hard) for r in out] == [(1, ALL)]  # and in a cycle (a start that could not)


# --- the locality rule --------------------------------------------------------------------------------
@pytest.mark.parametrize("pages, homes, nodes, share", [
    ({0: 90, 1: 10}, {0}, {0, 1}, 0.9),
    ({0: 97, 1: 3}, {1}, {0}, 0.03),       # 3 % is not where the memory is
    ({}, {0}, set(), 1.0),
])
def test_memory_nodes_and_local_share(pages, homes, nodes, share):
    assert locality.memory_nodes(pages) == nodes
    assert locality.local_share(pages, homes) == pytest.approx(share)


def test_home_nodes():
    assert locality.home_nodes([vcpu(1, 0, 0, N1)], TOPO) == {1}
    assert locality.home_nodes([vcpu(1, 0, 0, ALL)], TOPO) == {0, 1}          # soft says nothing
    assert locality.home_nodes([vcpu(1, 0, 0, ALL, hard=N0)], TOPO) == {0}    # an admin hard pin


# --- affinity fix-up -------------------------------------------------------------------------------
def test_fixup_points_soft_affinity_at_the_memory():
    s = snap([vcpu(1, 0, 0, N0), vcpu(1, 1, 1, N0)], pages={1: {0: 3, 1: 97}})
    out = affinity_fixup.plan(s)
    assert [(a.vcpu, a.soft, a.hard) for a in out] == [(0, N1, None), (1, N1, None)]
    assert "97%" in out[0].reason
    # memory on both nodes (10 % is a meaningful share): soft affinity on both
    out = affinity_fixup.plan(snap([vcpu(1, 0, 0, N0)], pages={1: {0: 10, 1: 90}}))
    assert [a.soft for a in out] == [ALL]


@pytest.mark.parametrize("case, vs, pages, excluded", [
    ("memory mostly local", [vcpu(1, 0, 0, N0)], {0: 60, 1: 40}, ()),
    ("excluded (strict)", [vcpu(1, 0, 0, N0)], {0: 10, 1: 90}, (1,)),
    ("admin hard pin", [vcpu(1, 0, 0, N0, hard={0, 1, 4})], {0: 10, 1: 90}, ()),
    ("soft affinity says nothing", [vcpu(1, 0, 0, ALL)], {0: 10, 1: 90}, ()),
])
def test_fixup_leaves_alone(case, vs, pages, excluded):
    assert affinity_fixup.plan(snap(vs, pages={1: pages}), excluded) == [], case


def test_fixup_keeps_soft_affinity_inside_the_hosts_guest_mask():
    """The fix-up pointed soft affinity at every CPU of the memory's node, those the host's
    guest mask (guest_VCPUs_params:mask) keeps from guests too: the rebalancer's home
    moves write only the node's CPUs inside it, and the fix-up now does the same (once
    there, it leaves the VM alone rather than write it again every pass)."""
    mask = frozenset(range(0, 6))  # CPUs 6 and 7 (node 1) are not for guests
    vs = [vcpu(1, 0, 0, N0, hard=mask), vcpu(1, 1, 1, N0, hard=mask)]
    masked = attrs.evolve(snap(vs, pages={1: {0: 3, 1: 97}}), guest_cpus=mask)
    out = affinity_fixup.plan(masked)
    assert [(a.vcpu, a.soft) for a in out] == [(0, frozenset({4, 5})), (1, frozenset({4, 5}))]
    there = [attrs.evolve(v, soft=frozenset({4, 5})) for v in vs]
    assert affinity_fixup.plan(attrs.evolve(snap(there, pages={1: {0: 3, 1: 97}}), guest_cpus=mask)) == []
    # a mask that leaves the node no CPU narrows nothing (never an empty mask), as settling's rule
    out = affinity_fixup.follow(dom(1), vs, TOPO, {1: 100}, "moved", usable=frozenset({0, 1}))
    assert [a.soft for a in out if isinstance(a, act.SetAffinity)] == [N1, N1]


def test_follow_sets_node_affinity_and_soft_affinity():
    out = affinity_fixup.follow(dom(1), [vcpu(1, 0, 0, N0)], TOPO, {0: 1, 1: 99}, "moved")
    assert out == [act.SetNodeAffinity(1, "uuid-1", frozenset({1}), "moved"),
                   act.SetAffinity(1, "uuid-1", 0, soft=N1, reason="moved")]


# --- settling -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, placed, pages, admin, nodes, hard, soft, fixed_up", [
    ("best_effort", {1}, {1: 100}, None, {1}, ALL, N1, False),
    ("best_effort", {1}, {0: 100}, None, {0}, ALL, N0, True),         # the memory decides
    # the admin's mask comes back, and the soft affinity keeps to it (as the boot pin and place's answer)
    ("best_effort", {1}, {1: 100}, {4, 5}, {1}, {4, 5}, {4, 5}, False),
    ("strict", {1}, {0: 100}, None, {1}, N1, None, False),
    ("any", {1}, {1: 100}, None, {1}, ALL, ALL, False),
    # a placed node this host lacks and memory on no node in a meaningful share: the
    # whole host, never an empty mask (Xen refuses one; strict wrote an empty hard)
    ("best_effort", {5}, {}, None, {0, 1}, ALL, ALL, False),
    ("strict", {5}, {}, None, {0, 1}, ALL, None, False),
])
def test_settling(mode, placed, pages, admin, nodes, hard, soft, fixed_up):
    vs = [vcpu(1, 0, 4, N1), vcpu(1, 1, 5, N1)]
    s = settling.plan(dom(1), vs, TOPO, Policy.parse(mode), frozenset(placed), pages,
                      VcpuMask([admin]) if admin else None)
    assert (s.nodes, s.hard, s.soft, s.fixed_up) == (nodes, frozenset(hard), soft and frozenset(soft), fixed_up)
    assert [(a.vcpu, a.hard, a.soft) for a in s.actions] == [(0, s.hard, s.soft), (1, s.hard, s.soft)]


# --- reservations --------------------------------------------------------------------------------------------
R = reservation.Reservation("uuid-1", 0.0, 100.0, False, {1: 2 * G}, {1: 2 * G})


@pytest.mark.parametrize("case, domain, pages, node_claims, expected", [
    ("not built yet", None, {}, True, []),
    ("built: released", dom(1, paused=False), {1: {1: 1000}}, True, [act.ReleaseReservation]),
    ("domain exists, per-node claims: claim the rest", attrs.evolve(dom(1, paused=True), max_memory=2 * G),
     {1: {1: (G >> 12)}}, True,
     [act.ClaimReservation]),
    ("domain exists, no node claims: shrink", attrs.evolve(dom(1, paused=True), max_memory=2 * G),
     {1: {1: (G >> 12)}}, False, [act.ShrinkReservation]),
])
def test_reconcile(case, domain, pages, node_claims, expected):
    domains = {domain.uuid: domain} if domain else {}
    out = reservation.plan_reconcile([R], domains, pages, node_claims)
    assert [type(a) for a in out] == expected, case
    if expected == [act.ClaimReservation]:
        assert out[0].pages_per_node == {1: G >> 12}        # the half not landed yet
    if expected == [act.ShrinkReservation]:
        assert out[0].outstanding == {1: G}


def test_outstanding_as_reconcile_would_leave_it():
    built = dom(1, paused=False)
    actions = reservation.plan_reconcile([R], {built.uuid: built}, {1: {1: 1}}, False)
    assert reservation.outstanding([R]) == {1: 2 * G}
    assert reservation.outstanding([R], actions) == {}


def test_an_idle_pcpu_of_another_cpupool_is_no_home():
    # A (pool 1: CPUs 1-7) runs on node 1; its soft affinity node 0 has idle CPU 0 only in Pool-0
    vs = [vcpu(1, 0, 4, N0)] + [vcpu(3, i, i, N0) for i in (1, 2, 3)]
    doms = [DomainInfo(1, "vm1", "uuid-1", 1, G, G, False, cpupool=1), dom(3, 3)]
    s = attrs.evolve(snap(vs, domains=doms), pools={0: frozenset({0}), 1: frozenset(range(1, 8))})
    assert homing.plan(s, {(1, 0): 0.0}, threshold=1.0) == []
    s = attrs.evolve(s, pools={0: frozenset(), 1: ALL})
    assert [p.cpus for p in homing.plan(s, {(1, 0): 0.0}, threshold=1.0)] == [N0]


def test_room_is_counted_on_the_home_a_pin_can_hold_not_the_whole_soft_affinity():
    """A guest pool of CPUs 2-7, or a host guest mask of 1-7 (CPU 0 kept for dom0): four
    busy vCPUs homed on node 0 were all pinned to its two or three CPUs left, as their own
    soft affinity (node 0, wider than the pin) was never counted as wanting the pin."""
    dom = DomainInfo(1, "vm", "u1", 4, G, G, False, "pvh", cpupool=1)
    busy = tuple(VcpuInfo(1, i, 4 + i, "running", ALL, N0) for i in range(4))
    since = {(1, i): 0.0 for i in range(4)}
    pooled = HostSnapshot(TOPO, 10.0, (dom,), {1: busy}, scheduler="credit",
                          pools={0: frozenset({0, 1}), 1: frozenset(range(2, 8))})
    assert homing.plan(pooled, since, 1.0) == []
    mask = frozenset(range(1, 8))
    masked = HostSnapshot(TOPO, 10.0, (attrs.evolve(dom, cpupool=0),),
                          {1: tuple(attrs.evolve(v, hard=mask) for v in busy)}, scheduler="credit", guest_cpus=mask)
    assert homing.plan(masked, since, 1.0) == []
    # two busy vCPUs fit the three CPUs the mask leaves: both go home
    two = HostSnapshot(TOPO, 10.0, (attrs.evolve(dom, cpupool=0, vcpus=2),),
                       {1: tuple(attrs.evolve(v, hard=mask) for v in busy[:2])}, scheduler="credit", guest_cpus=mask)
    assert [(p.vcpu, p.cpus) for p in homing.plan(two, since, 1.0)] == [(0, N0 - {0}), (1, N0 - {0})]
    # a vCPU an admin pinned away from its soft affinity has no home a pin can hold: it
    # wants none (it was counted against every home, and held pins let go early)
    away = VcpuInfo(2, 0, 0, "running", frozenset({0}), N1)
    full = HostSnapshot(TOPO, 10.0, (attrs.evolve(dom, cpupool=0, vcpus=4), DomainInfo(2, "x", "u2", 1, G, G, False)),
                        {1: tuple(VcpuInfo(1, i, 4 + i, "running", N1, N1) for i in range(4)), 2: (away,)})
    assert not homing._overbooked_checker(full)(N1)


def test_placed_nodes_are_ascii_digits_only():
    """'\u00b2' is a digit to str.isdigit() and then int() refused it: settle crashed."""
    from xapi_numa.ops.boot_pin import placed_nodes
    assert placed_nodes({"numa_placed_nodes": "0,\u00b2,1"}) == frozenset({0, 1})


def test_settling_gives_each_vcpu_its_own_admin_mask_back():
    vs = [vcpu(1, 0, 4, N1), vcpu(1, 1, 5, N1)]
    s = settling.plan(dom(1), vs, TOPO, Policy.parse("best_effort"), frozenset({1}), {1: 100},
                      VcpuMask([{4}, {5, 6}]))
    assert [(a.vcpu, a.hard) for a in s.actions] == [(0, frozenset({4})), (1, frozenset({5, 6}))]
    assert s.hard == frozenset({4, 5, 6})


def test_settling_a_strict_vm_keeps_each_vcpus_admin_mask_within_its_nodes():
    """strict on node 1 with the admin's per-vCPU mask 4;5: each vCPU stays on its own CPU,
    never widened to the whole node (the mask was lost once)."""
    vs = [vcpu(1, 0, 4, N1), vcpu(1, 1, 5, N1)]
    s = settling.plan(dom(1), vs, TOPO, Policy.parse("strict", "1"), frozenset({1}), {1: 100},
                      VcpuMask([{4}, {5}]))
    assert [(a.vcpu, a.hard) for a in s.actions] == [(0, frozenset({4})), (1, frozenset({5}))]
    assert s.hard == frozenset({4, 5})
    # a vCPU whose own mask has no CPU on the node keeps the mask's CPUs there
    s = settling.plan(dom(1), vs, TOPO, Policy.parse("strict", "1"), frozenset({1}), {1: 100},
                      VcpuMask([{0}, {5, 6}]))
    assert [(a.vcpu, a.hard) for a in s.actions] == [(0, frozenset({5, 6})), (1, frozenset({5, 6}))]


def _vm_record(other_config, mask):
    return {"other_config": other_config, "VCPUs_params": {"mask": mask} if mask else {}, "VCPUs_max": "2",
            "memory_static_max": str(G), "domain_type": "hvm"}


@pytest.mark.parametrize("other_config, mask, within, refused", [
    # a list the policy binds with none of its nodes in reach is refused
    ({"numa_mode": "strict", "numa_nodes": "2", "numa_on_exhaust": "fail"}, "0,1", None, True),
    ({"numa_mode": "strict", "numa_nodes": "2,0"}, "0,1", {0}, False),
    ({"numa_mode": "preferred", "numa_nodes": "2", "numa_on_exhaust": "fail"}, "0,1", None, True),
    # otherwise the mask is a bound beside the policy, which stays the VM's own
    ({"numa_mode": "preferred", "numa_nodes": "2,1"}, "0,1,4", {0, 1}, False),
    ({}, "4,5", {1}, False),
    ({}, ",".join(map(str, range(12))), None, False),  # every node: no bound
])
def test_an_admin_mask_bounds_the_nodes_and_never_replaces_the_policy(other_config, mask, within, refused):
    from xapi_numa.core.policy import Policy
    from xapi_numa.errors import InvalidArgument
    from xapi_numa.ops.place_request import request_for
    topo = Topology.uniform(3, 4, 8 * G)
    if refused:
        with pytest.raises(InvalidArgument) as err:
            request_for(_vm_record(other_config, mask), topo)
        assert err.value.field == "VCPUs_params:mask" and "none of the policy's nodes 2" in str(err.value)
        return
    request = request_for(_vm_record(other_config, mask), topo)
    assert request.within == (frozenset(within) if within is not None else None)
    assert request.policy == Policy.from_other_config(other_config)


@pytest.mark.parametrize("own, host, said", [
    ("4,5", None, "nodes 1 (those the VM's own mask (VCPUs_params:mask) reaches) have"),
    (None, frozenset({4, 5}), "nodes 1 (those the host's guest mask (guest_VCPUs_params:mask) reaches) have"),
    ("4;5", frozenset(range(2, 12)), "nodes 1 (those the VM's own mask (VCPUs_params:mask) reaches) have"),
    # each alone reaches nodes 0 and 1 of 3: both narrowed them
    ("0,4", frozenset(range(0, 8)), "nodes 0-1 (those the VM's own mask (VCPUs_params:mask) and the host's guest "
                                    "mask (guest_VCPUs_params:mask) reach) have"),
    # each alone reaches every node; only together do they leave node 1 alone: both are named
    ("0,4,8", frozenset({1, 4, 9}), "nodes 1 (those the VM's own mask (VCPUs_params:mask) and the host's guest "
                                    "mask (guest_VCPUs_params:mask) reach) have"),
])
def test_a_refusal_for_room_names_the_masks_that_narrowed_the_nodes(own, host, said):
    """It said "(the CPU mask's)" where the host's guest mask alone had narrowed the nodes."""
    from xapi_numa.core.placement import NodeLoads, Planner
    from xapi_numa.errors import NoCapacity
    from xapi_numa.ops.place_request import request_for
    topo = Topology.uniform(3, 4, 8 * G)
    record = dict(_vm_record({}, own), memory_static_max=str(20 * G))  # more than two nodes hold
    request = request_for(record, topo, host)
    with pytest.raises(NoCapacity) as err:
        Planner(topo).place(NodeLoads([8 * G] * 3, [0] * 3, [0] * 3), request)
    assert said in str(err.value), str(err.value)


def test_settling_and_the_boot_pin_give_a_vcpu_the_same_cpus_and_keep_to_the_host_mask():
    """Settling narrowed only its hard affinity to the host's guest mask (soft stayed on the
    nodes' CPUs, some kept from guests), and applied the masks in the other order: a vCPU
    whose own mask has no CPU in the host mask kept its own CPU (outside the host mask),
    where the boot pin gave it the host mask's CPUs on the nodes."""
    from xapi_numa.core.vcpu_cpus import vcpu_cpus
    host = frozenset({5, 6, 7})  # CPU 4 (node 1) and node 0 are kept from guests
    mask = VcpuMask([{4}, {5, 6}])
    vs = [vcpu(1, 0, 4, N1), vcpu(1, 1, 5, N1)]
    pin = vcpu_cpus(TOPO, [1], host, mask)
    assert [pin.for_vcpu(v) for v in (0, 1)] == [frozenset({5, 6})] * 2  # vCPU 0: the mask's CPUs in the host's
    strict = settling.plan(dom(1), vs, TOPO, Policy.parse("strict", "1"), frozenset({1}), {1: 100}, mask, host)
    assert [a.hard for a in strict.actions] == [pin.for_vcpu(0), pin.for_vcpu(1)]
    loose = settling.plan(dom(1), vs, TOPO, Policy.parse("best_effort"), frozenset({1}), {1: 100}, mask, host)
    assert [a.soft for a in loose.actions] == [pin.for_vcpu(0), pin.for_vcpu(1)]  # inside the host mask
    whole = vcpu_cpus(TOPO, TOPO.node_ids, host, mask)
    assert [a.hard for a in loose.actions] == [whole.for_vcpu(0), whole.for_vcpu(1)] == [frozenset({5, 6})] * 2
    unmasked = settling.plan(dom(1), vs, TOPO, Policy.parse("best_effort"), frozenset({1}), {1: 100}, None, host)
    assert all(a.soft == host and a.hard == host for a in unmasked.actions)
    anywhere = settling.plan(dom(1), vs, TOPO, Policy.parse("any"), frozenset({1}), {1: 100}, None, host)
    assert all(a.soft == host and a.hard == host for a in anywhere.actions)
