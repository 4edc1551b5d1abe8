"""A claim call Xen refused leaves no claim of ours: the row must not go on saying it may.

The executor notes the claim ours before its call (so that a process killed right after
it leaves that known).  When Xen refuses the call (ENOMEM: the memory went meanwhile) no
claim was made, but the note stayed: the row was then held like a claimed one, never
expiring with its lease and counting every byte it was reserved (nothing shrinks a row
that reconcile keeps trying to claim), for as long as the domain stays paused (a VM
started paused, a build stuck): memory promised to nothing, for good."""
import errno

from xapi_numa.errors import HypervisorError
from xapi_numa.ops.executor import REFUSED, Executor
from xapi_numa.state.ledger import Ledger
from tests.review12_claims_model import Clock, DOMID, PAGE, VM, XenClaims, reconcile


def _refused(tmp_path):
    clock = Clock()
    hv = XenClaims([0, 2000])  # the memory went meanwhile: neither node 1 nor the host has 3999 pages
    hv.add(DOMID, VM, max_pages=8000)
    hv.populate(DOMID, 1, 1)
    ledger = Ledger(str(tmp_path / "l.db"), clock)
    ledger.reserve(VM, {1: 4000 * PAGE}, 300.0, lambda: {0: 1 << 40, 1: 1 << 40})
    out = Executor(hv, ledger.db).apply(reconcile(hv, ledger, {1: 1}))
    assert [o.status for o in out] == [REFUSED] and hv.dom[DOMID]["claim"] == 0
    return clock, hv, ledger


def test_a_refused_claim_leaves_the_row_not_ours(tmp_path):
    _, _, ledger = _refused(tmp_path)
    assert not ledger.reservation(VM).claim_ours
    assert ledger.node_claims_made() == []  # (nor a node claim for known_node_claims to look up)


def test_a_refused_claim_row_expires_with_its_lease_while_the_domain_stays_paused(tmp_path):
    clock, _, ledger = _refused(tmp_path)
    clock.now += 3600.0
    assert ledger.outstanding() == {}
    assert ledger.expire() == 1 and ledger.reservations() == []


def test_a_claim_made_by_another_process_of_ours_as_ours_was_refused_stays_ours(tmp_path):
    """Refused, but the domain has a claim when we look again (another reconcile of ours
    made it just after Xen refused ours): the note stays, for the build's end to cancel it."""
    clock = Clock()
    hv = XenClaims([0, 2000])
    hv.add(DOMID, VM, max_pages=8000)
    hv.populate(DOMID, 1, 1)
    ledger = Ledger(str(tmp_path / "l.db"), clock)
    ledger.reserve(VM, {1: 4000 * PAGE}, 300.0, lambda: {0: 1 << 40, 1: 1 << 40})

    class OtherClaimsAfterRefusingOurs:
        def __getattr__(self, name):
            return getattr(hv, name)

        def claim(self, domid, pages, node=None):
            if pages and not hv.dom[domid]["claim"]:
                hv.free[1] += 10000  # (memory freed meanwhile: the other process's claim fits)
                hv.claim(domid, pages, 1)
                hv.free[1] -= 10000
            raise HypervisorError(errno.ENOMEM, "claim of {} pages".format(pages))
    out = Executor(OtherClaimsAfterRefusingOurs(), ledger.db).apply(reconcile(hv, ledger, {1: 1}))
    assert [o.status for o in out] == [REFUSED] and hv.dom[DOMID]["claim"] == 3999
    assert ledger.reservation(VM).claim_ours
