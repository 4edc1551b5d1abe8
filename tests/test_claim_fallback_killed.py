"""A node claim that fell back to a host-wide one, its process killed before it marked the
row.  The row said, from before the node claim call, that our claim is on the node asked
for; the fallback's host-wide claim was recorded only by mark_claimed, which the kill
never reached.  The claim was then counted as a node claim on that node for as long as it
lasted (a later reconcile takes the claim as the build's and leaves the node as written):
where the node has less free memory than the claim holds (the ENOMEM fallback, or other
domains' pages landed there since: a host-wide claim does not keep them off it), the
part of the claim above the node's free memory was counted nowhere, and the host's
total was over-stated by it.  The row now says host-wide before the host-wide claim is
made; a kill at any point leaves the claim counted where it is, or not made at all."""
import errno

import pytest

from xapi_numa.errors import HypervisorError
from xapi_numa.ops import observe
from xapi_numa.ops.executor import DONE, GONE, Executor
from xapi_numa.state.ledger import Ledger
from tests.review12_claims_model import DOMID, PAGE, VM, DiesAfterClaiming, Killed, reconcile, reserved_build


def _fallen_back(tmp_path, cause):
    """The VM's 4000 pages reserved on node 1, its node claim refused for ``cause``."""
    hv, ledger = reserved_build(tmp_path, {1: 4000}, node_claims=cause == errno.ENOMEM)
    if cause == errno.ENOMEM:
        hv.free[1] = 1000  # taken meanwhile by an allocation with no claim
    return hv, ledger


def _host_total(hv, ledger):
    return observe.claimable_total(hv, known=observe.known_node_claims(hv, ledger))


@pytest.mark.parametrize("cause", [errno.ENOSYS, errno.ENOMEM])
def test_killed_after_the_host_wide_claim_it_is_counted_host_wide(tmp_path, cause):
    hv, ledger = _fallen_back(tmp_path, cause)
    with pytest.raises(Killed):
        Executor(DiesAfterClaiming(hv), ledger.db).apply(reconcile(hv, ledger, {}))
    assert (hv.dom[DOMID]["claim"], hv.dom[DOMID]["node"]) == (3999, None)  # Xen holds it host-wide
    hv.free[1] = min(hv.free[1], 1000)  # (ENOSYS: other domains' pages land on node 1: nothing keeps them off)
    assert _host_total(hv, ledger) == (sum(hv.free) - 3999) * PAGE
    assert ledger.node_claims_made() == [] and observe.known_node_claims(hv, ledger) == {}
    # a later reconcile takes the claim as the build's: it stays counted where Xen has it
    assert [o.status for o in Executor(hv, ledger.db).apply(reconcile(hv, ledger, {}))] == [DONE]
    assert ledger.reservation(VM).claimed and ledger.outstanding() == {}
    assert observe.known_node_claims(hv, ledger) == {}
    assert _host_total(hv, ledger) == (sum(hv.free) - 3999) * PAGE


class DiesBeforeTheHostWideClaim:
    """The hypervisor as a process sees it that is killed just before its host-wide claim."""

    def __init__(self, hv):
        self.hv = hv

    def __getattr__(self, name):
        return getattr(self.hv, name)

    def claim(self, domid, pages, node=None):
        if pages and node is None:
            raise Killed()
        self.hv.claim(domid, pages, node)


@pytest.mark.parametrize("cause", [errno.ENOSYS, errno.ENOMEM])
def test_killed_before_the_host_wide_claim_the_reservation_still_counts(tmp_path, cause):
    hv, ledger = _fallen_back(tmp_path, cause)
    with pytest.raises(Killed):
        Executor(DiesBeforeTheHostWideClaim(hv), ledger.db).apply(reconcile(hv, ledger, {}))
    assert hv.dom[DOMID]["claim"] == 0  # no claim made: the row counts the memory as before
    assert ledger.outstanding() == {1: 4000 * PAGE} and observe.known_node_claims(hv, ledger) == {}
    out = Executor(hv, ledger.db).apply(reconcile(hv, ledger, {}))  # the next reconcile claims
    assert [(o.status, o.detail) for o in out] == [(DONE, "host-wide claim")]
    assert (hv.dom[DOMID]["claim"], hv.dom[DOMID]["node"]) == (3999, None)
    assert ledger.node_claims_made() == [] and ledger.outstanding() == {}


def test_a_fallback_whose_row_went_meanwhile_makes_no_claim(tmp_path):
    """The row released between the refused node claim and the host-wide one (settled, or
    reconciled by another process): no claim is made that nothing would cancel."""
    hv, ledger = _fallen_back(tmp_path, errno.ENOSYS)
    created, real = ledger.reservation(VM).created, hv.claim

    def claim(domid, pages, node=None):
        if node is not None:  # refused, and meanwhile another process releases the row
            Ledger(ledger.path).release(VM, created=created)
            raise HypervisorError(errno.ENOSYS, "claiming on node {}".format(node))
        real(domid, pages, node)
    hv.claim = claim
    out = Executor(hv, ledger.db).apply(reconcile(hv, ledger, {}))
    assert [o.status for o in out] == [GONE] and hv.dom[DOMID]["claim"] == 0
