"""A build whose pages landed partly outside its reservation's nodes (the node was short
when xenguest populated, Xen spilled the extents to the next node) still needs only
what was reserved, less what has landed anywhere.  The claim's total was the domain's
pages plus what is missing *per reserved node*, so the spilled pages were counted twice:
Xen staked more than the build will ever take (kept from every other start until the
build ends), the dry run counted it too, and on a tight host the claim was refused."""
from xapi_numa.core import reservation
from xapi_numa.ops.executor import DONE, Executor
from tests.review12_claims_model import PAGE, VM, reconcile, reserved_build


def _spilled(tmp_path, free):
    hv, ledger = reserved_build(tmp_path, {0: 4000}, free=free, begun=False)
    hv.populate(5, 1, 1000)  # landed on node 1, not the reserved node 0
    actions = reconcile(hv, ledger, {1: 1000})
    return hv, ledger, actions


def test_the_claim_is_what_the_build_still_needs(tmp_path):
    hv, ledger, actions = _spilled(tmp_path, [100000, 100000])
    assert reservation.outstanding([ledger.reservation(VM)], actions) == {0: 3000 * PAGE}
    assert [o.status for o in Executor(hv, ledger.db).apply(actions)] == [DONE]
    assert hv.dom[5]["claim"] == 3000  # 4000 reserved, 1000 landed (elsewhere)


def test_a_tight_host_still_takes_the_claim(tmp_path):
    hv, ledger, actions = _spilled(tmp_path, [3500, 1000])
    out = Executor(hv, ledger.db).apply(actions)
    assert [o.status for o in out] == [DONE], out
    assert ledger.reservation(VM).claimed and hv.dom[5]["claim"] == 3000
