"""Xen keeps one claim per domain (host-wide or on one node) and takes the domain's
total as its argument (it stakes ``pages - tot_pages``).  A reservation on two nodes
was turned into two node claims, the second refused (EINVAL): the build went on
unclaimed while others' were claimed; and a build already under way was claimed only
its remaining pages as a total, so Xen staked that less what had landed (or refused)."""
from xapi_numa.ops.executor import DONE, Executor
from tests.review12_claims_model import PAGE, VM, reconcile, reserved_build


def test_a_reservation_on_two_nodes_is_one_host_wide_claim(tmp_path):
    hv, ledger = reserved_build(tmp_path, {0: 3000, 1: 2000})
    out = Executor(hv, ledger.db).apply(reconcile(hv, ledger, {}))
    assert [o.status for o in out] == [DONE], out
    assert hv.dom[5]["claim"] == 4999 and hv.dom[5]["node"] is None
    assert ledger.reservation(VM).claimed


def test_a_single_node_reservation_is_a_node_claim_of_the_whole(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000})
    out = Executor(hv, ledger.db).apply(reconcile(hv, ledger, {}))
    assert [o.status for o in out] == [DONE], out
    assert (hv.dom[5]["claim"], hv.dom[5]["node"]) == (3999, 1)  # its total: 4000 (1 landed)


def test_a_build_under_way_is_claimed_what_it_still_needs(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000}, begun=False)
    hv.populate(5, 1, 1500)  # the build began before reconcile ran
    actions = reconcile(hv, ledger, {1: 1500})
    out = Executor(hv, ledger.db).apply(actions)
    assert [o.status for o in out] == [DONE], out
    assert hv.dom[5]["claim"] == 2500  # 4000 reserved, 1500 landed


def test_a_domain_whose_maximum_is_not_set_yet_keeps_its_reservation(tmp_path):
    """Xen gives a new domain a maximum of 0 until the toolstack sets it (XEN_DOMCTL_max_mem):
    nothing can be claimed then, and the row must go on counting its memory (it was marked
    claimed with no claim made, leaving the build's memory to any other start)."""
    hv, ledger = reserved_build(tmp_path, {1: 4000}, begun=False, max_pages=0)
    Executor(hv, ledger.db).apply(reconcile(hv, ledger, {}))
    r = ledger.reservation(VM)
    assert not r.claimed and sum(r.nodes.values()) == 4000 * PAGE and hv.dom[5]["claim"] == 0
    hv.dom[5]["max"] = 8000  # the toolstack sets it, and the build begins: now its claim is made
    hv.populate(5, 1, 1)
    out = Executor(hv, ledger.db).apply(reconcile(hv, ledger, {}))
    assert [o.status for o in out] == [DONE], out
    assert ledger.reservation(VM).claimed and (hv.dom[5]["claim"], hv.dom[5]["node"]) == (3999, 1)
