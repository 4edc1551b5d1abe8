"""A claim made, then the ledger's write (mark_claimed) failing -- the state database
busy past its timeout, a full disk: the executor raised out with the claim left in Xen
and the row unclaimed.  Nothing then cancels it if the build ends before the next
reconcile (ended() cancels only for a claimed row), and meanwhile the row counts its
bytes beside the claim.  The claim made here must be cancelled before the error goes up."""
import pytest

from xapi_numa.core import reservation
from xapi_numa.errors import StateError
from xapi_numa.ops.executor import Executor
from xapi_numa.state.ledger import Ledger
from tests.review12_claims_model import PAGE, XenClaims

VM = "11111111-2222-4333-8444-555555555555"


def test_a_claim_whose_ledger_write_fails_is_cancelled(tmp_path):
    hv = XenClaims([100000, 100000])
    hv.add(5, VM)
    hv.populate(5, 1, 1)  # the build has begun (claims wait for it: a builder's own claim comes first)
    ledger = Ledger(str(tmp_path / "l.db"))
    ledger.reserve(VM, {1: 4000 * PAGE}, 300.0, lambda: {0: 1 << 40, 1: 1 << 40})
    ex = Executor(hv, ledger.db)

    def busy(*_args, **_kw):
        raise StateError("database is locked")

    ex.ledger.mark_claimed = busy
    actions = reservation.plan_reconcile([ledger.reservation(VM)], {VM: hv.info(5)}, {5: {}}, True)
    with pytest.raises(StateError):
        ex.apply(actions)
    assert not ledger.reservation(VM).claimed
    assert hv.dom[5]["claim"] == 0, "the claim stays in Xen with no claimed row to cancel it"


def test_an_adopted_claim_is_not_cancelled_when_the_ledger_write_fails(tmp_path):
    """(the claim there already is not this call's to cancel)"""
    hv = XenClaims([100000, 100000])
    hv.add(5, VM)
    hv.populate(5, 1, 1)  # the build has begun (claims wait for it: a builder's own claim comes first)
    ledger = Ledger(str(tmp_path / "l.db"))
    ledger.reserve(VM, {1: 4000 * PAGE}, 300.0, lambda: {0: 1 << 40, 1: 1 << 40})
    hv.claim(5, 4000, 1)
    ex = Executor(hv, ledger.db)

    def busy(*_args, **_kw):
        raise StateError("database is locked")

    ex.ledger.mark_claimed = busy
    actions = reservation.plan_reconcile([ledger.reservation(VM)], {VM: hv.info(5)}, {5: {}}, True)
    with pytest.raises(StateError):
        ex.apply(actions)
    assert hv.dom[5]["claim"] == 3999  # its total: 4000 (1 landed)
