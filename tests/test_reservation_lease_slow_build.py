"""A reservation's lease and a build slower than it (stock Xen: no per-node claims).

Without node claims a reservation is never turned into a claim: it shrinks as the
domain's pages land, and it ended with its lease.  A large VM populated slowly (or a
slow host) was still being built when the lease ran out: the row went while the domain
had memory to come, the node's free memory looked bigger than it was, and a start placed
meanwhile was promised the pages the build was about to take.  A row whose domain grew
since the last look now keeps its lease (renewed by reconcile), up to
:data:`~xapi_numa.core.reservation.BUILD_LEASE_MAX` after the place; one whose build stops
growing lapses one lease after its last growth, as before."""
import attrs
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core import reservation
from xapi_numa.core.actions import RenewLease, ShrinkReservation
from xapi_numa.core.host import DomainInfo
from xapi_numa.core.reservation import BUILD_LEASE_MAX, Reservation
from xapi_numa.core.topology import Topology
from xapi_numa.errors import NoCapacity
from xapi_numa.ops import upkeep
from xapi_numa.ops.executor import Executor
from xapi_numa.state.ledger import Ledger
from test_claim_expiry import Clock
from test_ledger import NoClaims

G = 1 << 30
M = 1 << 20
UUID = "11111111-2222-4333-8444-555555555555"
TTL = 60.0
STEP = 128 * M  # what lands between two of xapi-numad's looks
LOOK = 20.0     # seconds between them


@pytest.fixture
def slow_build(tmp_path):
    """A 2G VM placed on node 1 (4G), its domain created empty as xenopsd does."""
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * G), "credit", 1,
                             dom0_vcpus=1, dom0_memory=64 << 20)
    clock = Clock()
    ledger = Ledger(str(tmp_path / "l.db"), clock)
    ledger.reserve(UUID, {1: 2 * G}, TTL, lambda: free(sim))
    domid = sim.create_shell("vm", 1, 2 * G, uuid=UUID)
    return NoClaims(sim), ledger, clock, domid


def free(hv):
    return {m.node: m.claimable for m in hv.node_memory()}


def land(hv, domid, nbytes):
    with hv.sim.store.transaction() as host:
        host.allocate(host.domain(domid), nbytes >> 12, node=1, exact=True)


def daemon_cycle(hv, ledger):
    """xapi-numad's upkeep: expire leases, then reconcile."""
    ledger.expire()
    return upkeep.reservation_changes(upkeep.reconcile(hv, ledger, Executor(hv, ledger.db)))


def test_a_build_still_growing_past_the_lease_keeps_its_reservation(slow_build):
    hv, ledger, clock, domid = slow_build
    landed = 0
    while clock.now < 1000.0 + 3 * TTL:  # three leases' time, the build growing all along
        clock.now += LOOK
        land(hv, domid, STEP)
        landed += STEP
        daemon_cycle(hv, ledger)
        assert ledger.outstanding() == {1: 2 * G - landed}, "the row went while the domain had memory to come"
    # a start placed now is not promised what the build is about to take
    with pytest.raises(NoCapacity):
        ledger.reserve("other", {1: free(hv)[1] - (2 * G - landed) + (1 << 12)}, TTL, lambda: free(hv))
    ledger.reserve("other", {1: free(hv)[1] - (2 * G - landed)}, TTL, lambda: free(hv))


def test_a_build_that_stops_growing_lapses_one_lease_after_its_last_growth(slow_build):
    hv, ledger, clock, domid = slow_build
    clock.now += LOOK
    land(hv, domid, STEP)
    daemon_cycle(hv, ledger)  # renewed: until LOOK + TTL
    clock.now += TTL - 1
    daemon_cycle(hv, ledger)  # nothing landed: not renewed
    assert ledger.outstanding() == {1: 2 * G - STEP}
    clock.now += 2
    daemon_cycle(hv, ledger)
    assert ledger.reservations() == [] and ledger.outstanding() == {}


def test_a_build_growing_for_ever_holds_its_memory_no_longer_than_the_cap(slow_build):
    hv, ledger, clock, domid = slow_build
    page = 1 << 12
    while clock.now < 1000.0 + BUILD_LEASE_MAX - LOOK:
        clock.now += LOOK
        land(hv, domid, page)  # a page a look: growing, never built
        daemon_cycle(hv, ledger)
        assert ledger.reservations()
    clock.now = 1000.0 + BUILD_LEASE_MAX
    land(hv, domid, page)
    daemon_cycle(hv, ledger)
    assert ledger.reservations() == []


def test_the_planner_renews_only_a_row_whose_domain_grew_and_is_not_built():
    r = Reservation(UUID, 1000.0, 1060.0, False, {1: 2 * G}, {1: 2 * G}, lease=TTL, seen_pages=1000)
    grown = DomainInfo(5, "vm", UUID, 1, 2000 << 12, 2 * G, True)
    pages = {5: {1: 2000}}
    plan = reservation.plan_reconcile([r], {UUID: grown}, pages, False, now=1050.0)
    assert [type(a) for a in plan] == [ShrinkReservation, RenewLease]
    assert plan[1] == RenewLease(UUID, 1000.0, 1110.0, 2000, "still being built")
    same = attrs.evolve(grown, memory=1000 << 12)  # nothing landed since the last look
    assert [type(a) for a in reservation.plan_reconcile([r], {UUID: same}, {5: {1: 1000}}, False, now=1050.0)] == [
        ShrinkReservation]
    # no clock given (a dry run's own view): nothing renewed
    assert [type(a) for a in reservation.plan_reconcile([r], {UUID: grown}, pages, False)] == [ShrinkReservation]
    # the cap: never past BUILD_LEASE_MAX after the place
    now = 1000.0 + BUILD_LEASE_MAX - 10
    late = reservation.plan_reconcile([attrs.evolve(r, expires=now + 5)], {UUID: grown}, pages, False, now=now)
    assert late[1].expires == 1000.0 + BUILD_LEASE_MAX
    # a lease run out is not brought back, nor is a claimed row's renewed (it outlives its lease)
    for row in (attrs.evolve(r, expires=1050.0), attrs.evolve(r, claimed=True), attrs.evolve(r, claim_ours=True)):
        assert not [a for a in reservation.plan_reconcile([row], {UUID: grown}, pages, False, now=1050.0)
                    if isinstance(a, RenewLease)]


def test_a_schema_12_row_keeps_its_lease_as_placed(tmp_path):
    """A row written before leases were renewed: its lease is what it was placed with."""
    import sqlite3

    path = str(tmp_path / "l.db")
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE reservation (vm TEXT PRIMARY KEY, created REAL NOT NULL, expires REAL NOT NULL, "
                "claimed INTEGER NOT NULL DEFAULT 0, owner TEXT NOT NULL DEFAULT '', claim_ours INTEGER NOT NULL "
                "DEFAULT 0, claim_domid INTEGER NOT NULL DEFAULT -1, claim_node INTEGER NOT NULL DEFAULT -1)")
    old.execute("INSERT INTO reservation (vm, created, expires) VALUES (?, 1000.0, 1060.0)", (UUID,))
    old.execute("PRAGMA user_version=12")
    old.commit()
    old.close()
    clock = Clock()
    row = Ledger(path, clock).reservation(UUID)
    assert (row.lease, row.ttl, row.seen_pages) == (TTL, TTL, 0)


def test_a_renewed_lease_made_in_the_future_keeps_one_lease_from_now(slow_build):
    """The wall clock stepped back past the place: a renewed row keeps its lease as placed
    from now, not all it had been renewed by."""
    hv, ledger, clock, domid = slow_build
    for _ in range(3):
        clock.now += LOOK
        land(hv, domid, STEP)
        daemon_cycle(hv, ledger)
    assert ledger.reservation(UUID).expires == clock.now + TTL
    clock.now = 500.0
    ledger.expire()
    assert ledger.reservation(UUID).expires == 500.0 + TTL
