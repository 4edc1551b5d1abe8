"""A node's free memory taken by an allocation that held no claim between the
reservation and the claim: the node claim is refused (ENOMEM) and the build went on
with no claim at all, beside builds that have theirs -- the mix the issue forbids.
xenopsd then claims host-wide (domain.ml: a failed node claim falls to the global one);
so does this now, the build keeping Xen's protection of its total."""
from xapi_numa.ops.executor import DONE, Executor
from tests.review12_claims_model import VM, reconcile, reserved_build


def test_a_node_claim_refused_for_want_of_memory_falls_back_to_a_host_wide_one(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000})
    hv.free[1] = 1000  # taken meanwhile by an allocation with no claim
    out = Executor(hv, ledger.db).apply(
        reconcile(hv, ledger, {}))
    assert [(o.status, o.detail) for o in out] == [(DONE, "host-wide claim")]
    assert (hv.dom[5]["claim"], hv.dom[5]["node"]) == (3999, None)  # its total: 4000 (1 landed)
    assert ledger.reservation(VM).claimed
