"""A reservation is checked against the room above Xen's DMA zone unless its placement
could only be made with the zones.  The ledger's check counted the zones for every
reservation: a start that placed on node 0 from loads a racing start had just made
stale was promised node 0's zone, which its build never gets before every other node
is full, and its memory spilled to node 1 (16 concurrent starts, 1 spread in the
pool test, once the simulator had the zone)."""
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core import dma_zone
from xapi_numa.core.actions import Reserve
from xapi_numa.core.placement_values import NodeLoads, Placement
from xapi_numa.core.policy import Policy
from xapi_numa.core.topology import Topology
from xapi_numa.errors import NoCapacity
from xapi_numa.ops.executor import DONE, Executor
from xapi_numa.state.ledger import Ledger

GiB, MiB = 1 << 30, 1 << 20


@pytest.fixture
def host(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "host.json"), Topology.uniform(2, 4, 2 * GiB))
    ledger = Ledger(str(tmp_path / "l.db"))
    return hv, ledger, Executor(hv, ledger.db)


def test_a_reservation_past_the_room_is_refused_unless_it_needs_the_zones(host):
    hv, ledger, executor = host
    memory = hv.node_memory()[0]
    assert memory.dma_free > 0 and memory.room < memory.claimable
    past_room = memory.room + 64 * MiB  # within what node 0 has with its zone
    with pytest.raises(NoCapacity):
        executor.apply([Reserve("a", {0: past_room}, 60.0)])
    assert ledger.reservations() == []
    assert [o.status for o in executor.apply([Reserve("a", {0: past_room}, 60.0, zones=True)])] == [DONE]


def test_only_a_placement_beyond_the_room_takes_the_zones():
    loads = NodeLoads([1000, 1000], [200, 0], [0, 0], [300, 0])
    within = Placement((0,), ((0, 800),), frozenset(), None, False, "", Policy())
    beyond = Placement((0,), ((0, 801),), frozenset(), None, True, "", Policy())
    assert not dma_zone.takes_zones(loads, within) and dma_zone.takes_zones(loads, beyond)
