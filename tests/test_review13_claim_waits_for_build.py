"""A domain builder may claim for itself: libxl's (xl's default ``claim_mode=1``) claims
its domain's total at the start of ``meminit_hvm``/``meminit_pv`` and fails the build when
Xen refuses (tools/libs/guest/xg_dom_x86.c), and Xen keeps one claim per domain.  A claim
of ours made between the toolstack's max_mem and that point made the builder's refused
(EINVAL): the VM failed to start.  A reservation is now turned into a claim only once the
domain has pages (the builder has made its own claim, if it makes one, which is then taken
as the build's); until then the unclaimed row goes on counting its memory."""
from xapi_numa.ops.executor import DONE, Executor
from tests.review12_claims_model import PAGE, VM, reconcile, reserved_build


def test_no_claim_before_the_builder_has_begun_then_its_claim_is_the_builds(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000}, begun=False, max_pages=8000)
    Executor(hv, ledger.db).apply(reconcile(hv, ledger, {}))
    r = ledger.reservation(VM)
    assert hv.calls == [] and not r.claimed and sum(r.nodes.values()) == 4000 * PAGE  # still counting
    hv.claim(5, 4000)  # the builder's own claim (libxl's meminit): not refused
    hv.populate(5, 1, 100)
    out = Executor(hv, ledger.db).apply(reconcile(hv, ledger, {1: 100}))
    assert [(o.status, o.detail) for o in out] == [(DONE, "the domain's claim, there already")], out
    assert ledger.reservation(VM).claimed and ledger.outstanding() == {}  # not counted twice
    assert hv.dom[5]["claim"] == 3900


def test_a_builder_that_does_not_claim_gets_ours_once_its_pages_come(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000}, begun=False, max_pages=8000)
    hv.populate(5, 1, 100)  # (xenopsd's builder, say, with no claim of its own)
    out = Executor(hv, ledger.db).apply(reconcile(hv, ledger, {1: 100}))
    assert [(o.status, o.detail) for o in out] == [(DONE, "claim on node 1")], out
    assert (hv.dom[5]["claim"], hv.dom[5]["node"]) == (3900, 1) and ledger.reservation(VM).claimed
