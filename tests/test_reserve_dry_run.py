"""A dry run counts reservations as a reconcile would leave them: one that a reconcile
turns into a claim still holds its memory (the claim is not in the free figures yet)."""
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.actions import ClaimReservation
from xapi_numa.core.placement import Request
from xapi_numa.core.reservation import Reservation, outstanding
from xapi_numa.core.topology import Topology
from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.ops.reserve import place_and_reserve
from xapi_numa.state.ledger import Ledger

G = 1 << 30
UUID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def building(tmp_path):
    """2 nodes x 8G; a paused 2G domain on node 0 with 2G reserved for it on node 1."""
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 8 * G), "credit2", 1)
    sim.create("g", 2, 2 * G, soft=frozenset(range(4)), paused=True, uuid=UUID)
    ledger = Ledger(str(tmp_path / "l.db"))
    placement, reservation, _ = place_and_reserve(sim, ledger, Request(2, 2 * G), UUID)
    assert placement.nodes == (1,) and reservation is not None and not reservation.claimed
    return sim, ledger


def test_dry_run_and_real_placement_agree_on_a_reservation_about_to_be_claimed(building):
    sim, ledger = building
    request = Request(1, 6 * G)
    dry, _, dry_loads = place_and_reserve(sim, ledger, request, dry_run=True)
    real, reservation, real_loads = place_and_reserve(sim, ledger, request)
    assert ledger.reservation(UUID).claimed  # the real one reconciled first
    assert reservation is not None
    assert dry.nodes == real.nodes and dry.memory == real.memory
    assert dry_loads.available() == real_loads.available()


def test_outstanding_counts_a_pending_claim_where_it_will_be():
    r = Reservation(UUID, 1.0, 100.0, False, {0: G, 1: 2 * G}, {0: G, 1: 2 * G})
    # node 0's share has landed, 512M of node 1's: the claim is for the rest
    claim = ClaimReservation(UUID, 5, {1: (G + G // 2) >> PAGE_SHIFT})
    assert outstanding([r], [claim]) == {1: G + G // 2}
