"""Only a claim we made is ours to cancel.

Xen keeps one claim per domain.  A builder that claims for itself (libxl's meminit, xl's
default claim_mode, xenopsd) does so before the domain's first page; reconcile then takes
that claim as the build's, and the row is marked claimed.  The build's end cancelled the
domain's claim whoever had made it: a toolstack still populating past our reservation lost
its own claim.  Now the ledger notes, before our claim call, that the claim is ours, and
only such a claim is cancelled; so a process killed right after its claim call (before it
marked the row claimed) leaves a row that says so, and the build's end cancels the leftover
claim instead of leaving it in Xen until the domain dies."""
import pytest

from xapi_numa.core import reservation
from xapi_numa.ops.executor import DONE, Executor
from tests.review12_claims_model import Clock, DiesAfterClaiming, Killed, VM, reconcile, reserved_build


def test_the_toolstacks_own_claim_is_left_to_it_when_our_reservation_is_done(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000}, begun=False, max_pages=8000)
    hv.claim(5, 8000, 1)     # xenopsd/libxl claim for the whole domain before populating
    hv.populate(5, 1, 1)
    ex = Executor(hv, ledger.db)
    out = ex.apply(reconcile(hv, ledger, {1: 1}))
    assert [(o.status, o.detail) for o in out] == [(DONE, "the domain's claim, there already")]
    assert ledger.reservation(VM).claimed
    hv.populate(5, 1, 3999)  # what we reserved has landed; the toolstack goes on building
    ex.apply(reconcile(hv, ledger, {1: 4000}))
    assert ledger.reservations() == []
    assert hv.dom[5]["claim"] == 4000  # the toolstack's claim is still there for the rest
    assert (5, 0, None) not in hv.calls


def test_a_claim_whose_process_died_before_its_ledger_write_is_cancelled_at_the_builds_end(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000})
    with pytest.raises(Killed):
        Executor(DiesAfterClaiming(hv), ledger.db).apply(reconcile(hv, ledger, {1: 1}))
    assert (hv.dom[5]["claim"], hv.dom[5]["node"]) == (3999, 1) and not ledger.reservation(VM).claimed
    hv.populate(5, 1, 3000)  # the build ends (runs) before the next reconcile
    Executor(hv, ledger.db).apply(reconcile(hv, ledger, {1: 3001}, paused=False))
    assert ledger.reservations() == []
    assert hv.dom[5]["claim"] == 0  # the leftover claim was ours: cancelled, not kept till the domain dies


def test_a_claim_whose_process_died_is_ours_when_the_next_reconcile_takes_it(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000})
    with pytest.raises(Killed):
        Executor(DiesAfterClaiming(hv), ledger.db).apply(reconcile(hv, ledger, {1: 1}))
    ex = Executor(hv, ledger.db)
    assert [o.status for o in ex.apply(reconcile(hv, ledger, {1: 1}))] == [DONE]
    assert ledger.reservation(VM).claimed and ledger.outstanding() == {}  # not counted twice
    hv.populate(5, 1, 3000)
    ex.apply(reconcile(hv, ledger, {1: 3001}, paused=False))
    assert ledger.reservations() == [] and hv.dom[5]["claim"] == 0


class ReleasedDuringTheClaim:
    """Another process's reconcile ends the (unclaimed) row while our claim call is in Xen."""

    def __init__(self, hv, ledger):
        self.hv, self.ledger = hv, ledger

    def __getattr__(self, name):
        return getattr(self.hv, name)

    def claim(self, domid, pages, node=None):
        self.hv.claim(domid, pages, node)
        if pages:
            assert self.ledger.release(VM, created=self.ledger.reservation(VM).created, claimed=False)


def test_a_claim_whose_row_went_during_the_call_cancels_itself(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000})
    out = Executor(ReleasedDuringTheClaim(hv, ledger), ledger.db).apply(reconcile(hv, ledger, {1: 1}))
    assert [(o.status, o.detail) for o in out] == [("gone", "the reservation went meanwhile: claim cancelled")]
    assert hv.dom[5]["claim"] == 0 and ledger.reservations() == []


def test_a_ledger_claimed_before_the_owner_was_noted_cancels_those_claims_as_it_did(tmp_path):
    """A row claimed under schema 9 (which did not say whose the claim was) keeps having
    its claim cancelled at the build's end, as then."""
    import sqlite3
    from xapi_numa.state.db import SCHEMA_VERSION
    hv, ledger = reserved_build(tmp_path, {1: 4000})
    ledger.reserve("unclaimed", {0: 4096}, 300.0, lambda: {0: 1 << 40})
    ledger.mark_claimed(VM)
    ledger.close()
    old = sqlite3.connect(str(tmp_path / "l.db"))  # schema 9's reservation table
    old.executescript("""
        CREATE TABLE r9 (vm TEXT PRIMARY KEY, created REAL NOT NULL, expires REAL NOT NULL,
                         claimed INTEGER NOT NULL DEFAULT 0, owner TEXT NOT NULL DEFAULT '');
        INSERT INTO r9 SELECT vm, created, expires, claimed, owner FROM reservation;
        DROP TABLE reservation;
        ALTER TABLE r9 RENAME TO reservation;
        PRAGMA user_version=9;""")
    old.close()
    ledger = type(ledger)(str(tmp_path / "l.db"))
    assert {r.vm: (r.claimed, r.claim_ours) for r in ledger.reservations()} == {
        VM: (True, True), "unclaimed": (False, False)}
    assert ledger.db._connection().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_row_whose_claim_call_was_made_outlives_its_lease_until_the_build_ends(tmp_path):
    """The process killed after its claim call, and no reconcile within the lease (the
    daemon stopped): the row must not expire, or nothing would cancel the claim."""
    from xapi_numa.state.ledger import Ledger
    hv, ledger = reserved_build(tmp_path, {1: 4000})
    with pytest.raises(Killed):
        Executor(DiesAfterClaiming(hv), ledger.db).apply(reconcile(hv, ledger, {1: 1}))
    clock = Clock()
    clock.now = ledger.reservation(VM).expires + 3600.0
    late = Ledger(str(tmp_path / "l.db"), clock)
    assert late.expire() == 0 and late.reservation(VM) is not None
    hv.populate(5, 1, 3000)
    Executor(hv, late.db).apply(reconcile(hv, late, {1: 3001}, paused=False))
    assert late.reservations() == [] and hv.dom[5]["claim"] == 0


def test_a_row_whose_claim_call_was_made_goes_with_its_domain(tmp_path):
    hv, ledger = reserved_build(tmp_path, {1: 4000})
    with pytest.raises(Killed):
        Executor(DiesAfterClaiming(hv), ledger.db).apply(reconcile(hv, ledger, {1: 1}))
    del hv.dom[5]  # the build failed: its claim went with the domain
    r = ledger.reservation(VM)
    actions = reservation.plan_reconcile([r], {}, {}, True)
    assert [type(a).__name__ for a in actions] == ["ReleaseReservation"]
    Executor(hv, ledger.db).apply(actions)
    assert ledger.reservations() == []
