"""A claim made, then the ledger's write (mark_claimed) failing -- the state database
busy past its timeout, a full disk: the executor raised out with the claim left in Xen
and the row unclaimed.  Nothing then cancels it if the build ends before the next
reconcile (ended() cancels only for a claimed row), and meanwhile the row counts its
bytes beside the claim.  The claim made here must be cancelled before the error goes up."""
import pytest

from xapi_numa.errors import StateError
from xapi_numa.ops.executor import Executor
from tests.review12_claims_model import VM, reconcile, reserved_build


def _claim_with_the_ledger_busy(hv, ledger) -> None:
    """Reconcile's claim, its ledger write failing (the database busy past its timeout)."""
    ex = Executor(hv, ledger.db)

    def busy(*_args, **_kw):
        raise StateError("database is locked")

    ex.ledger.mark_claimed = busy
    with pytest.raises(StateError):
        ex.apply(reconcile(hv, ledger, {}))


def test_a_claim_whose_ledger_write_fails_is_cancelled(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000})
    _claim_with_the_ledger_busy(hv, ledger)
    assert not ledger.reservation(VM).claimed
    assert hv.dom[5]["claim"] == 0, "the claim stays in Xen with no claimed row to cancel it"


def test_an_adopted_claim_is_not_cancelled_when_the_ledger_write_fails(tmp_path):
    """(the claim there already is not this call's to cancel)"""
    hv, ledger = reserved_build(tmp_path, {1: 4000})
    hv.claim(5, 4000, 1)
    _claim_with_the_ledger_busy(hv, ledger)
    assert hv.dom[5]["claim"] == 3999  # its total: 4000 (1 landed)
