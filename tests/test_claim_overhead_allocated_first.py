"""The build's overhead is out of Xen's free memory before the domain's first page, so a
claimed reservation must not go on counting it.

Both toolstacks allocate it first: xenopsd's build_pre (ocaml/xenopsd/xc/domain.ml) calls
domain_max_vcpus (Xen's per-vCPU memory) and shadow_allocation_set (the shadow/HAP pool)
before its claim and before xenguest populates the guest; libxl's libxl__build_pre sets
the paging pool (libxl__arch_domain_create -> xc_set_paging_mempool_size) before
libxl__build_hvm.  Xen takes the pool with MEMF_no_owner (hap.c, shadow/common.c): out of
the free pages, never in the domain's tot_pages.  A reservation is turned into a claim
only once the domain has a page, so by then the overhead is allocated: the row kept it
(since a59b8de) and counted it a second time, and for a VM started paused (the build
never "over": the domain's pages never reach a reservation that includes the overhead),
for good, since fe99982 (a claimed row past its lease goes on counting)."""
from xapi_numa.ops.executor import DONE, Executor
from xapi_numa.state.ledger import Ledger
from tests.review12_claims_model import Clock, DOMID, PAGE, VM, XenClaims, reconcile

OVERHEAD = 300  # pages: the pool and per-vCPU memory


def _claimed_with_the_pool_taken(tmp_path):
    clock = Clock()
    hv = XenClaims([100000, 100000])
    hv.add(DOMID, VM, max_pages=4000)
    ledger = Ledger(str(tmp_path / "l.db"), clock)
    ledger.reserve(VM, {1: (4000 + OVERHEAD) * PAGE}, 300.0, lambda: {0: 1 << 40, 1: 1 << 40})
    hv.free[1] -= OVERHEAD        # build_pre: the pool, out of the free pages, in no tot_pages
    hv.populate(DOMID, 1, 1)      # the first page: a claim of ours may be made now
    out = Executor(hv, ledger.db).apply(reconcile(hv, ledger, {1: 1}))
    assert [o.status for o in out] == [DONE] and hv.dom[DOMID]["claim"] == 3999
    return clock, hv, ledger


def test_a_claimed_row_does_not_count_the_overhead_already_allocated(tmp_path):
    _, _, ledger = _claimed_with_the_pool_taken(tmp_path)
    assert ledger.reservation(VM).claimed
    assert ledger.outstanding() == {}  # free (less the pool) and the claim say it all


def test_a_vm_started_paused_holds_nothing_past_its_lease(tmp_path):
    clock, hv, ledger = _claimed_with_the_pool_taken(tmp_path)
    hv.populate(DOMID, 1, 3999)   # every page there; the VM stays paused (start_paused)
    Executor(hv, ledger.db).apply(reconcile(hv, ledger, {1: 4000}))
    clock.now += 24 * 3600.0
    assert ledger.outstanding() == {}
