"""Homing tables: swaps undone as pairs (both schedulers), room at home, and under
credit2 whole VMs held while the load averages settle (core/homing.py's docstring).

The host: tests/homing_tables.py (2 nodes of 4 pCPUs).
"""
import pytest

from homing_tables import ALL, N0, N1, snap, vcpu
from xapi_numa.core import demand, homing
from xapi_numa.core.demand import CREDIT2_SETTLE
from xapi_numa.core.homing import HELD_WITH_ITS_VM, HOLD_MAX, PinRecord


# A (1) soft node 0, C (2) soft node 1, 2 vCPUs each: vCPU 0 of each on the other's node.
SWAPPED = [vcpu(1, 0, 4, N0), vcpu(1, 1, 1, N0), vcpu(2, 0, 0, N1), vcpu(2, 1, 5, N1)]


def keys(actions):
    return [(a.domid, a.vcpu) for a in actions]


@pytest.mark.parametrize("scheduler", ["credit", "credit2"])
def test_a_swap_is_undone_as_a_pair_even_when_one_side_is_young(scheduler):
    # A's vCPU is due; C's, on A's home, was displaced a moment ago: both go at once
    since = {(1, 0): 0.0, (2, 0): 9.9}
    assert keys(homing.plan(snap(SWAPPED, scheduler=scheduler), since, threshold=1.0)) == [(1, 0), (2, 0)]
    assert homing.plan(snap(SWAPPED, scheduler=scheduler), {(1, 0): 9.9, (2, 0): 9.9}, threshold=1.0) == []


@pytest.mark.parametrize("scheduler", ["credit", "credit2"])
def test_no_pin_when_more_vcpus_want_home_than_it_has_pcpus(scheduler):
    # 5 vCPUs want node 0 (4 pCPUs), one of them runs on node 1 where a pCPU is free
    # at home? no: node 0 is full, but pCPU 3 runs a displaced vCPU of C, a swap
    vs = ([vcpu(1, i, i, N0) for i in range(3)] + [vcpu(1, 3, 4, N0), vcpu(1, 4, 5, N0)]
          + [vcpu(2, 0, 3, N1)])
    since = {(1, 3): 0.0, (1, 4): 0.0, (2, 0): 0.0}
    assert keys(homing.plan(snap(vs, scheduler=scheduler), since, threshold=1.0)) == [(2, 0)]


def test_credit2_holds_whole_vms_while_its_load_averages_settle():
    pins = homing.plan(snap(SWAPPED), {(1, 0): 0.0, (2, 0): 0.0}, threshold=1.0, settling=True)
    assert keys(pins) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert [p.reason for p in pins] == ["displaced", HELD_WITH_ITS_VM, "displaced", HELD_WITH_ITS_VM]
    assert [p.cpus for p in pins] == [N0, N0, N1, N1]


def test_credit2_holds_a_vm_pushed_out_again_while_pins_of_ours_hold_it():
    vs = SWAPPED + [vcpu(1, 2, 2, N0, hard=N0)]
    pins = homing.plan(snap(vs), {(1, 0): 0.0, (2, 0): 0.0}, threshold=1.0, pinned={(1, 2)})
    assert keys(pins) == [(1, 0), (1, 1), (2, 0), (2, 1)]


def kinds(actions):
    return [(type(a).__name__, a.domid, a.vcpu) for a in actions]


def test_credit2_re_picks_a_lagging_vms_displaced_vcpus_and_holds_the_steady_vm_whole():
    # A (1) was unpaused a moment ago (its load averages lag), C (2) kept running
    out = homing.plan(snap(SWAPPED), {(1, 0): 0.0, (2, 0): 0.0}, threshold=1.0, settling=True, lagging={1})
    assert kinds(out) == [("SetAffinity", 1, 0), ("PinTemporarily", 2, 0), ("PinTemporarily", 2, 1)]
    assert (out[0].hard, out[0].soft, out[0].reason) == (ALL, None, homing.REPICK)  # its own hard affinity


def test_credit2_leaves_the_stragglers_of_a_lagging_vm_re_picked_a_moment_ago_to_the_balancer():
    out = homing.plan(snap(SWAPPED), {(1, 0): 0.0, (2, 0): 0.0}, threshold=1.0, settling=True,
                      lagging={1}, repicked={1})
    assert kinds(out) == [("PinTemporarily", 2, 0), ("PinTemporarily", 2, 1)]


def test_credit1_pins_a_lagging_vms_vcpus_as_any_others():
    out = homing.plan(snap(SWAPPED, scheduler="credit"), {(1, 0): 0.0, (2, 0): 0.0}, threshold=1.0,
                      lagging={1}, repicked={1})
    assert kinds(out) == [("PinTemporarily", 1, 0), ("PinTemporarily", 2, 0)]


@pytest.mark.parametrize("case, before, after, rose", [
    ("first look", None, {1: 8}, set()),
    ("unpaused", {1: 0, 2: 8}, {1: 8, 2: 8}, {1}),
    ("paused: demand fell", {1: 8, 2: 8}, {1: 8, 2: 0}, set()),
    ("a guest started", {1: 8}, {1: 8, 2: 8}, {2}),
    ("less than a quarter of its vCPUs", {1: 7, 2: 8}, {1: 8, 2: 8}, set()),
])
def test_demand_rose(case, before, after, rose):
    vs = [vcpu(d, i, 0, N0) for d in (1, 2) for i in range(8)]
    assert demand.demand_rose(before, after, snap(vs)) == rose, case


@pytest.mark.parametrize("case, kwargs, scheduler", [
    ("credit1 never holds whole VMs", {"settling": True}, "credit"),
    ("credit2, settled and nothing held", {}, "credit2"),
])
def test_only_the_pair_is_pinned_when(case, kwargs, scheduler):
    out = homing.plan(snap(SWAPPED, scheduler=scheduler), {(1, 0): 0.0, (2, 0): 0.0}, threshold=1.0, **kwargs)
    assert keys(out) == [(1, 0), (2, 0)], case


def test_credit2_does_not_hold_a_vm_whose_home_has_no_room():
    # C has 5 busy vCPUs for node 1's 4 pCPUs (one waits): holding all of it, or even
    # its displaced one, would queue them at home while a pCPU of node 0 idles
    vs = ([vcpu(1, 0, 4, N0), vcpu(1, 1, 1, N0), vcpu(2, 0, 0, N1)]
          + [vcpu(2, i, 4 + i, N1) for i in range(1, 4)] + [vcpu(2, 4, 7, N1, state="runnable")])
    out = homing.plan(snap(vs), {(1, 0): 0.0, (2, 0): 0.0}, threshold=1.0, settling=True)
    assert keys(out) == [(1, 0), (1, 1)]
    vs[-1] = vcpu(2, 4, 7, N1, state="blocked")  # it has room once that one blocks
    out = homing.plan(snap(vs), {(1, 0): 0.0, (2, 0): 0.0}, threshold=1.0, settling=True)
    assert keys(out) == [(1, 0), (1, 1)] + [(2, i) for i in range(5)]


def _pinned(domid, n, cpu, to, soft):
    return vcpu(domid, n, cpu, soft, hard=to)


def _record(domid, n, to, at):
    return PinRecord("uuid-{}".format(domid), n, domid, frozenset(to), ALL, at)


HOME = [_pinned(1, 0, 1, N0, N0), _pinned(2, 0, 4, N1, N1)]


@pytest.mark.parametrize("case, scheduler, time, changed_at, vcpus, paused, restored", [
    ("credit1: undone once home", "credit", 9.0, 8.5, HOME, (), [1, 2]),
    ("credit2: held, the newest pin is too young", "credit2", 8.0 + CREDIT2_SETTLE - 1, None, HOME, (), []),
    ("credit2: held, demand changed lately", "credit2", 17.0, 15.0, HOME, (), []),
    ("credit2: held, a held VM is displaced again", "credit2", 17.0, None,
     HOME + [vcpu(1, 1, 5, N0)], (), []),
    ("credit2: undone once settled", "credit2", 8.0 + CREDIT2_SETTLE, 1.0, HOME, (), [1, 2]),
    ("credit2: a paused VM's pins hold nothing", "credit2", 9.0, 8.5, HOME, (2,), [2]),
    ("credit2: never held longer than HOLD_MAX", "credit2", 8.0 + HOLD_MAX, 8.0 + HOLD_MAX, HOME, (), [1, 2]),
])
def test_restores(case, scheduler, time, changed_at, vcpus, paused, restored):
    records = [_record(1, 0, N0, 3.0), _record(2, 0, N1, 8.0)]
    out = homing.plan_restores(snap(vcpus, time=time, scheduler=scheduler, paused=paused), records,
                               timeout=5.0, demand_changed_at=changed_at)
    assert sorted({r.domid for r in out if r.hard == ALL}) == restored, case


def test_not_home_is_given_up_after_the_timeout_even_while_settling():
    records = [_record(1, 0, N0, 3.0)]
    out = homing.plan_restores(snap([_pinned(1, 0, 5, N0, N0)], time=8.5), records, timeout=5.0,
                               demand_changed_at=8.0)
    assert [(r.domid, r.hard) for r in out] == [(1, ALL)] and "given up" in out[0].reason


@pytest.mark.parametrize("case, before, after, changed", [
    ("first look", None, {1: 8}, False),
    ("steady", {1: 8, 2: 8}, {1: 8, 2: 7}, False),
    ("a quarter of a VM's vCPUs", {1: 8, 2: 8}, {1: 8, 2: 6}, True),
    ("paused", {1: 8, 2: 8}, {1: 8, 2: 0}, True),
    ("a guest started", {1: 8}, {1: 8, 2: 8}, True),
])
def test_demand_changed(case, before, after, changed):
    vs = [vcpu(d, i, 0, N0) for d in (1, 2) for i in range(8)]
    assert demand.demand_changed(before, after, snap(vs)) is changed, case


def test_demand_counts_running_and_runnable_vcpus_of_guests():
    vs = [vcpu(0, 0, 0, ALL), vcpu(1, 0, 1, N0), vcpu(1, 1, 2, N0, state="runnable"),
          vcpu(1, 2, 3, N0, state="blocked")]
    assert demand.demand(snap(vs)) == {1: 2}


@pytest.mark.parametrize("scheduler, changed_at, expected", [
    ("credit2", 10.0 - CREDIT2_SETTLE + 0.5, True),
    ("credit2", 10.0 - CREDIT2_SETTLE, False),
    ("credit2", None, False),
    ("credit", 9.5, False),
])
def test_is_settling(scheduler, changed_at, expected):
    assert demand.is_settling(snap(SWAPPED, scheduler=scheduler), changed_at) is expected
