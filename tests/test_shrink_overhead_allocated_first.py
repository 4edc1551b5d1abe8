"""A reservation that shrinks rather than claims (no node claims: stock Xen) and the
build's overhead: both toolstacks allocate the overhead (the shadow/HAP pool, Xen's
per-vCPU memory) before the domain's first page, out of the free memory and in no page
of the domain's (tests/test_claim_overhead_allocated_first.py says where).  The shrink
kept it in the row (what is still to come was the reservation less the pages landed), so
from the first page to the end of the build it was counted twice: out of the free figures
and in the ledger; for a VM started paused, until its lease ended.  A claimed row leaves
it out (the claim holds no more than the domain's maximum); a shrunk one now does too."""
from xapi_numa.core import reservation
from xapi_numa.ops.executor import Executor
from xapi_numa.state.ledger import Ledger
from tests.review12_claims_model import Clock, DOMID, PAGE, VM, XenClaims

OVERHEAD = 300  # pages: the pool and per-vCPU memory


def _shrink(hv, ledger, landed, paused=True, planned="ShrinkReservation"):
    """Reconcile's plan (no node claims) applied; what its dry run counted."""
    rows = ledger.reservations()
    plan = reservation.plan_reconcile(rows, {VM: hv.info(DOMID, paused)}, {DOMID: landed}, False)
    assert [type(a).__name__ for a in plan] == [planned]
    Executor(hv, ledger.db).apply(plan)
    return reservation.outstanding(rows, plan)


def _building(tmp_path, reserved, landed):
    """Domain 5 (maximum 4000 pages) of ``VM`` reserved ``reserved`` pages per node (its
    4000 and the overhead), the overhead allocated, ``landed`` pages on node 1."""
    clock = Clock()
    hv = XenClaims([100000, 100000], node_claims=False)
    hv.add(DOMID, VM, max_pages=4000)
    ledger = Ledger(str(tmp_path / "l.db"), clock)
    ledger.reserve(VM, {n: p * PAGE for n, p in reserved.items()}, 300.0, lambda: {0: 1 << 40, 1: 1 << 40})
    for node, pages in reserved.items():  # build_pre: the overhead, out of the free pages, in no tot_pages
        hv.free[node] -= pages - (4000 if node == 1 else 0)
    if landed:
        hv.populate(DOMID, 1, landed)
    return clock, hv, ledger


def test_a_shrunk_row_does_not_count_the_overhead_already_allocated(tmp_path):
    _, hv, ledger = _building(tmp_path, {1: 4000 + OVERHEAD}, 1000)
    dry_run = _shrink(hv, ledger, {1: 1000})
    assert ledger.outstanding() == {1: 3000 * PAGE}  # the guest's pages still to come, nothing more
    assert dry_run == {1: 3000 * PAGE}  # (a dry run of the same reconcile counts the same)


def test_a_vm_started_paused_holds_nothing_once_its_pages_are_there(tmp_path):
    clock, hv, ledger = _building(tmp_path, {1: 4000 + OVERHEAD}, 4000)
    # every page there; the VM stays paused (start_paused): its build is over (test_paused_build_over)
    _shrink(hv, ledger, {1: 4000}, planned="ReleaseReservation")
    assert ledger.outstanding() == {}
    clock.now += 299.0  # (not only once its lease ends)
    assert ledger.outstanding() == {}


def test_the_overhead_shared_round_the_nodes_is_taken_off_each(tmp_path):
    """A VM placed on node 1: the overhead goes round both nodes (xenopsd sizes the pool
    before it sets the VM's affinity), its share reserved on node 0 too."""
    _, hv, ledger = _building(tmp_path, {0: OVERHEAD // 2, 1: 4000 + OVERHEAD // 2}, 1000)
    _shrink(hv, ledger, {1: 1000})
    left = ledger.outstanding()
    assert 3000 * PAGE <= left[1] <= 3001 * PAGE and left.get(0, 0) <= PAGE  # (a page kept for rounding)


def test_before_the_first_page_the_row_is_left_whole(tmp_path):
    """With no page yet, the overhead may still be to come: nothing is taken off."""
    _, hv, ledger = _building(tmp_path, {1: 4000 + OVERHEAD}, 0)
    plan = reservation.plan_reconcile([ledger.reservation(VM)], {VM: hv.info(DOMID)}, {DOMID: {}}, False)
    Executor(hv, ledger.db).apply(plan)
    assert ledger.outstanding() == {1: (4000 + OVERHEAD) * PAGE}


def test_a_maximum_above_the_reservation_takes_nothing_off(tmp_path):
    """A domain whose maximum leaves no room for an overhead in the reservation (set above
    the guest's memory): what is still to come is kept whole, never too little."""
    _, hv, ledger = _building(tmp_path, {1: 4000 + OVERHEAD}, 1000)
    hv.dom[DOMID]["max"] = 8000
    _shrink(hv, ledger, {1: 1000})
    assert ledger.outstanding() == {1: (3000 + OVERHEAD) * PAGE}


def test_a_toolstack_claim_before_the_first_page_says_the_overhead_is_out(tmp_path):
    """Stock Xen: the toolstack claims the guest's pages host-wide (libxl's meminit,
    xenopsd's NUMA step) after it allocated the overhead and before the first page.  The
    row was left whole there (no page yet), so the overhead was counted twice, out of the
    free figures and in the ledger, from that claim to the first page."""
    _, hv, ledger = _building(tmp_path, {1: 4000 + OVERHEAD}, 0)
    hv.claim(DOMID, 4000, None)  # the toolstack's claim: no page of the domain's yet
    dry_run = _shrink(hv, ledger, {})
    assert ledger.outstanding() == {1: 4000 * PAGE}  # the guest's pages, nothing more
    assert dry_run == {1: 4000 * PAGE}
