"""Where the patched library is there but the hypervisor answers ENOSYS to a node claim,
the build is claimed host-wide (XenServer's fallback).  Its leftover was then
"cancelled" by a claim of 0 *on each node*, which the same hypervisor answers ENOSYS
(ignored): the host-wide claim stayed outstanding after the build, kept from every
other domain until this one died.  Xen's claim of 0 cancels the domain's one claim
whatever node it is on: one host-wide cancel does it everywhere."""
from xapi_numa.ops.executor import DONE, Executor
from tests.review12_claims_model import reconcile, reserved_build


def test_a_fallback_host_wide_claim_is_cancelled_when_the_build_ends(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000}, node_claims=False)
    ex = Executor(hv, ledger.db)
    claim = reconcile(hv, ledger, {})
    assert [(o.status, o.detail) for o in ex.apply(claim)] == [(DONE, "host-wide claim")]
    assert (hv.dom[5]["claim"], hv.dom[5]["node"]) == (3999, None)  # its total: 4000 (1 landed)
    hv.populate(5, 1, 3000)  # the guest came up with less than was reserved for it
    end = reconcile(hv, ledger, {1: 3000}, paused=False)
    assert all(o.status == DONE for o in ex.apply(end))
    assert ledger.reservations() == []
    assert hv.dom[5]["claim"] == 0, "the host-wide claim's leftover is still outstanding"
