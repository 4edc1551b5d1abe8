"""A lease renewal (or any reconcile step) applies to the very reservation it was planned on.

Reconcile plans on the rows it read, then applies the plan; meanwhile the reservation
may be released, run out, or be replaced by another owner's (the VM placed again).  A
renewal planned then must neither bring back a row that went, nor keep one whose lease
ran out meanwhile, nor extend the other owner's new row; nor may the plan's other steps
change that new row."""
from xapi_numa.core.actions import RenewLease, ShrinkReservation
from xapi_numa.ops import upkeep
from xapi_numa.ops.executor import Executor
from test_reservation_lease_slow_build import LOOK, STEP, TTL, UUID, G, free, land, slow_build  # noqa: F401


def _planned(hv, ledger, domid):
    """A reconcile's plan, not applied yet, for a build that grew since the last look."""
    ledger.clock.now += LOOK
    land(hv, domid, STEP)
    plan = upkeep.plan_reconcile(hv, ledger.reservations(), now=ledger.clock())
    assert [type(a) for a in plan] == [ShrinkReservation, RenewLease]
    return plan


def _apply(hv, ledger, plan):
    return {type(o.action).__name__: o.status for o in Executor(hv, ledger.db).apply(plan)}


def test_a_renewal_does_not_bring_back_a_released_reservation(slow_build):
    hv, ledger, clock, domid = slow_build
    plan = _planned(hv, ledger, domid)
    assert ledger.release(UUID)
    assert _apply(hv, ledger, plan)["RenewLease"] == "gone"
    assert ledger.reservation(UUID) is None and ledger.outstanding() == {}


def test_a_renewal_does_not_keep_a_lease_that_ran_out_meanwhile(slow_build):
    hv, ledger, clock, domid = slow_build
    plan = _planned(hv, ledger, domid)
    clock.now = ledger.reservation(UUID).expires  # (not dropped yet: nobody expired it)
    assert _apply(hv, ledger, plan)["RenewLease"] == "gone"
    assert ledger.expire() == 1 and ledger.reservation(UUID) is None


def test_nothing_planned_on_a_replaced_reservation_changes_the_new_owners(slow_build):
    hv, ledger, clock, domid = slow_build
    plan = _planned(hv, ledger, domid)
    assert ledger.release(UUID)
    clock.now += 1
    ledger.reserve(UUID, {1: 2 * G}, TTL, lambda: free(hv), owner="another place")
    new = ledger.reservation(UUID)
    # (the shrink planned on the old row, 2G less what had landed, took 128M off the new one's)
    applied = _apply(hv, ledger, plan)
    assert ledger.reservation(UUID) == new and ledger.outstanding() == {1: 2 * G}
    assert applied == {"ShrinkReservation": "gone", "RenewLease": "gone"}
