"""A process killed between its claim and the ledger's write (mark_claimed) leaves the
domain's claim in Xen and the row unclaimed.  Reconcile then asked Xen for a second
claim, which Xen refuses (EINVAL: one claim per domain), every cycle; the row kept
counting its bytes beside the claim (twice), expired with its lease, and nothing
cancelled the claim's leftover when the build ended: memory kept from every other
domain until this one died.  A claim the domain already has is its build's claim: the
row is marked claimed, so that the end of the build cancels it (the killed process noted
in the row, before its claim call, that the claim is ours)."""
import pytest

from xapi_numa.ops.executor import DONE, Executor
from tests.review12_claims_model import VM, DiesAfterClaiming, Killed, reconcile, reserved_build


def test_a_claim_whose_ledger_write_was_lost_is_taken_as_the_builds(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000})
    with pytest.raises(Killed):  # the killed process's claim: it died before mark_claimed
        Executor(DiesAfterClaiming(hv), ledger.db).apply(reconcile(hv, ledger, {}))
    assert (hv.dom[5]["claim"], hv.dom[5]["node"]) == (3999, 1)
    ex = Executor(hv, ledger.db)
    again = reconcile(hv, ledger, {})
    assert [o.status for o in ex.apply(again)] == [DONE]
    assert ledger.reservation(VM).claimed and ledger.outstanding() == {}  # not counted twice
    assert hv.dom[5]["claim"] == 3999  # its total: 4000 (1 landed)
    hv.populate(5, 1, 3000)
    end = reconcile(hv, ledger, {1: 3000}, paused=False)
    ex.apply(end)
    assert ledger.reservations() == [] and hv.dom[5]["claim"] == 0
