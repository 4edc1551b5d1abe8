"""Homing under credit2 when unevenness lasts: a VM pushed out again soon after its pins
were undone is held home longer, while its home has room (homing.holds_longer); and a
pin to a home the rebalancer has since moved is undone at once.

The host: tests/homing_tables.py (2 nodes of 4 pCPUs).
"""
import pytest

from homing_tables import ALL, N0, N1, snap, vcpu
from xapi_numa.core import homing
from xapi_numa.core.homing import BOUNCED_HOLD_MAX, HOLD_MAX, PinRecord


def records(at):
    return [PinRecord("uuid-1", n, 1, N0, ALL, at) for n in range(2)]


# VM 1 held home on node 0 (both vCPUs pinned there, running); VM 2 busy on node 0 too,
# VM 3 on node 1: node 0 has 4 runnable vCPUs on 4 pCPUs, node 1 has 2 (credit2 pushes)
HELD = [vcpu(1, 0, 0, N0, hard=N0), vcpu(1, 1, 1, N0, hard=N0), vcpu(2, 0, 2, N0), vcpu(2, 1, 3, N0),
        vcpu(3, 0, 4, N1), vcpu(3, 1, 5, N1)]
# a third busy VM on node 0: 6 vCPUs want its 4 pCPUs, the scheduler's spreading is right
CROWDED = HELD + [vcpu(4, 0, 6, N0), vcpu(4, 1, 7, N0)]


def restored(vcpus, time, bounced, paused=(), scheduler="credit2"):
    out = homing.plan_restores(snap(vcpus, time, scheduler, paused), records(0.0), timeout=5.0,
                               demand_changed_at=None, bounced_vms=bounced)
    return sorted({r.domid for r in out if r.hard == ALL})


@pytest.mark.parametrize("case, vcpus, time, bounced, paused, scheduler, undone", [
    ("not bounced: undone once settled", HELD, 10.0, (), (), "credit2", [1]),
    ("bounced: held past settling", HELD, 10.0, ("uuid-1",), (), "credit2", []),
    ("bounced: held past HOLD_MAX", HELD, HOLD_MAX + 1, ("uuid-1",), (), "credit2", []),
    ("bounced: never longer than BOUNCED_HOLD_MAX", HELD, BOUNCED_HOLD_MAX, ("uuid-1",), (), "credit2", [1]),
    ("bounced, but its home is overbooked", CROWDED, 10.0, ("uuid-1",), (), "credit2", [1]),
    ("bounced, but paused", HELD, 10.0, ("uuid-1",), (1,), "credit2", [1]),
    ("credit1 holds nothing", HELD, 10.0, ("uuid-1",), (), "credit", [1]),
])
def test_a_bounced_vm_is_held_while_its_home_has_room(case, vcpus, time, bounced, paused, scheduler, undone):
    assert restored(vcpus, time, bounced, paused, scheduler) == undone, case


def test_overbooked_counts_pinned_vcpus_too():
    # VM 1's pinned vCPUs count as wanting node 0: 4 wanting, not overbooked; 6 is
    assert not homing._overbooked_checker(snap(HELD, 1.0))(N0)
    assert homing._overbooked_checker(snap(CROWDED, 1.0))(N0)


def test_a_pin_to_a_home_that_moved_is_undone_at_once():
    # the rebalancer moved VM 1's home to node 1 (soft affinity) while homing held it on node 0
    moved = [vcpu(1, 0, 0, N1, hard=N0), vcpu(1, 1, 1, N1, hard=N0), vcpu(3, 0, 4, N1)]
    out = homing.plan_restores(snap(moved, 2.0), records(0.0), timeout=5.0, bounced_vms=("uuid-1",))
    assert [(r.domid, r.vcpu, r.hard) for r in out] == [(1, 0, ALL), (1, 1, ALL)]
    assert all(r.reason == "its home moved" for r in out)


def test_pushed_out_for_good_only_when_demand_stood_still_since_the_restore():
    # VM 1 displaced 3 s after its pins were undone at 5.0
    s = snap([vcpu(1, 0, 4, N0), vcpu(1, 1, 1, N0)], 8.0)
    restored = {"uuid-1": 5.0}

    def for_good(window, changed):
        return homing.pushed_out_for_good(s, homing.bounced(s, restored, window), restored, changed)
    assert for_good(10.0, None) == {1}
    assert for_good(10.0, 2.0) == {1}
    # demand changed after the restore (a pause): lag, not lasting unevenness
    assert for_good(10.0, 6.0) == set()
    # undone too long ago: not a bounce at all
    assert for_good(2.0, None) == set()
