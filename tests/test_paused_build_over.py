"""A VM started paused: its reservation ends once its build is complete.

``build_over`` compared the domain's pages with the whole reservation, the build's overhead
included; the overhead (the shadow/HAP pool, Xen's per-vCPU memory) is in no page of the
domain's, and Xen gives a domain no page past its maximum, so a paused domain with all its
guest memory never reached it: the row, holding nothing, stayed until its lease ended (a
shrunk one), or for good (a claimed one, which outlives its lease), its claim kept ours.
"""
from xapi_numa.core import reservation
from xapi_numa.core.actions import CancelClaims, ReleaseReservation
from xapi_numa.ops.executor import DONE, Executor
from tests.review12_claims_model import DOMID, PAGE, VM, reconcile, reserved_build

OVERHEAD = 300  # pages: the pool and per-vCPU memory


def _apply(hv, ledger, plan):
    return [o.status for o in Executor(hv, ledger.db).apply(plan)]


def test_a_shrunk_row_of_a_vm_started_paused_ends_with_its_build(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000 + OVERHEAD}, node_claims=False, max_pages=4000)
    hv.free[1] -= OVERHEAD
    hv.populate(DOMID, 1, 3999)  # every page there (one landed at the start); it stays paused
    plan = reservation.plan_reconcile([ledger.reservation(VM)], {VM: hv.info(DOMID)}, {DOMID: {1: 4000}}, False)
    assert [(type(a), a.reason) for a in plan] == [(ReleaseReservation, "built")]
    assert _apply(hv, ledger, plan) == [DONE]
    assert ledger.reservation(VM) is None


def test_a_claimed_row_of_a_vm_started_paused_ends_with_its_build(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000 + OVERHEAD}, max_pages=4000)
    hv.free[1] -= OVERHEAD
    assert _apply(hv, ledger, reconcile(hv, ledger, {1: 1})) == [DONE]  # our claim of the rest
    assert ledger.reservation(VM).claimed and hv.dom[DOMID]["claim"] == 3999
    hv.populate(DOMID, 1, 3000)
    assert reconcile(hv, ledger, {1: 3001}) == []  # still building: the claim holds the rest
    hv.populate(DOMID, 1, 999)  # every page there; it stays paused
    plan = reconcile(hv, ledger, {1: 4000})
    assert [type(a) for a in plan] == [ReleaseReservation, CancelClaims]
    assert _apply(hv, ledger, plan) == [DONE, DONE]
    assert ledger.reservation(VM) is None and hv.dom[DOMID]["claim"] == 0


def test_a_paused_domain_short_of_its_maximum_is_still_building(tmp_path):
    """Pages still to come under the maximum: the row stays (shrunk to them)."""
    hv, ledger = reserved_build(tmp_path, {1: 4000 + OVERHEAD}, node_claims=False, max_pages=4000)
    hv.populate(DOMID, 1, 2999)
    plan = reservation.plan_reconcile([ledger.reservation(VM)], {VM: hv.info(DOMID)}, {DOMID: {1: 3000}}, False)
    assert _apply(hv, ledger, plan) == [DONE]
    assert ledger.outstanding() == {1: 1000 * PAGE}


def test_a_domain_whose_maximum_is_not_set_is_not_built(tmp_path):
    """Xen has a new domain's maximum at 0 until the toolstack sets it: no bound, then."""
    hv, ledger = reserved_build(tmp_path, {1: 4000 + OVERHEAD}, begun=False, node_claims=False, max_pages=0)
    plan = reservation.plan_reconcile([ledger.reservation(VM)], {VM: hv.info(DOMID)}, {DOMID: {}}, False)
    assert not any(isinstance(a, ReleaseReservation) for a in plan)
