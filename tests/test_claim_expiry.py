"""A claimed reservation lives as long as its claim: a lease running out never leaves a
per-node claim behind (a VM started paused, a build slower than the TTL)."""
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.actions import ReleaseReservation
from xapi_numa.core.host import DomainInfo
from xapi_numa.core.reservation import Reservation, plan_reconcile
from xapi_numa.core.topology import Topology
from xapi_numa.ops import upkeep
from xapi_numa.ops.executor import Executor
from xapi_numa.state.ledger import Ledger

G = 1 << 30
UUID = "11111111-2222-4333-8444-555555555555"
TTL = 4.0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def claimed(tmp_path):
    """A paused domain still building, its reservation on node 1 turned into a claim."""
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * G), "credit", 1,
                             dom0_vcpus=1, dom0_memory=64 << 20)
    clock = Clock()
    ledger = Ledger(str(tmp_path / "l.db"), clock)
    ledger.reserve(UUID, {1: 2 * G}, TTL, lambda: {m.node: m.claimable for m in sim.node_memory()})
    domid = sim.create_shell("vm", 1, 2 * G, uuid=UUID)  # as xenopsd builds: empty, its maximum set
    with sim.store.transaction() as host:
        host.allocate(host.domain(domid), G >> 12, node=1, exact=True)  # 1G of it landed
    assert reconcile(sim, ledger) == {UUID: "claimed"}
    assert claims(sim) == [0, G]
    return sim, ledger, clock, domid


def reconcile(hv, ledger):
    return upkeep.reservation_changes(upkeep.reconcile(hv, ledger, Executor(hv, ledger.db)))


def claims(sim):
    return [m.claimed for m in sim.node_memory()]


def daemon_cycle(sim, ledger):
    """xapi-numad's upkeep order: expire leases, then reconcile."""
    ledger.expire()
    return reconcile(sim, ledger)


def test_a_claimed_reservation_outlives_its_lease_until_the_build_ends(claimed):
    sim, ledger, clock, domid = claimed
    clock.now += TTL + 1
    daemon_cycle(sim, ledger)
    assert [r.vm for r in ledger.reservations()] == [UUID]  # its claim still stands
    sim.unpause(domid)
    assert daemon_cycle(sim, ledger) == {UUID: "built: released"}
    assert ledger.reservations() == []
    assert claims(sim) == [0, 0]  # nothing left behind


def test_another_reserve_expiring_leases_keeps_a_claimed_one(claimed):
    sim, ledger, clock, domid = claimed
    clock.now += TTL + 1
    ledger.reserve("other", {0: G}, 60, lambda: {m.node: m.claimable for m in sim.node_memory()})
    assert sorted(r.vm for r in ledger.reservations()) == sorted([UUID, "other"])
    sim.unpause(domid)
    reconcile(sim, ledger)
    assert claims(sim) == [0, 0]


def test_a_claimed_reservation_goes_with_its_domain(claimed):
    sim, ledger, clock, domid = claimed
    clock.now += TTL + 1
    sim.destroy(domid)  # the hypervisor dropped its claims with it
    assert daemon_cycle(sim, ledger) == {UUID: "domain gone: released"}
    assert ledger.reservations() == []
    assert claims(sim) == [0, 0]


def test_plan_reconcile_releases_a_claimed_reservation_without_a_domain():
    claimed_one = Reservation(UUID, 1.0, 5.0, True, {1: 0}, {1: 2 * G})
    unclaimed = Reservation("not-started", 1.0, 5.0, False, {1: G}, {1: G})
    running = {"x": DomainInfo(7, "x", "x", 1, G, G, False)}
    assert plan_reconcile([claimed_one, unclaimed], running, {7: {}}, True) == [
        ReleaseReservation(UUID, 1.0, "domain gone", True)]  # an unclaimed one is left to expiry


def test_the_reservations_table_says_a_claimed_reservation_lasts_until_its_build_ends():
    from xapi_numa.cli.placing import _expires_in

    assert _expires_in({"expires": 0.0, "claimed": True}) == "at build end"
    assert _expires_in({"expires": 0.0, "claimed": False}) == "0s"
