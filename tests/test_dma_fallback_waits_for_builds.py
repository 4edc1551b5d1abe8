"""A start whose only room is a DMA zone waits for the builds under way (a boot storm).

Xen gives a build no DMA page while any node has free memory above its zone, and Xen
cannot see our reservations: a start placed on a zone while another start's build had
not landed yet got, when built first, the memory reserved for that other start (free
above the zone, in Xen's view), which then spilled off its node.  ``make bench``'s boot
storm showed it (1 of 32 starts spilled, about one storm in four).  Now such a start
waits (``reserve.BUILDS_WAIT``) until the builds it would take from have landed, then
gets what is left above the zones and the zone; past the wait it is refused
(``RoomReserved``, NUMA_NO_CAPACITY)."""
import time

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.heap import build_overhead
from xapi_numa.core.placement import Request
from xapi_numa.core.topology import Topology
from xapi_numa.errors import RoomReserved
from xapi_numa.ops import reserve
from xapi_numa.state.ledger import Ledger

GiB, MiB = 1 << 30, 1 << 20
A, B = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"


@pytest.fixture
def full_above_the_zone(tmp_path):
    """Node 0: nothing free above its zone (512M); node 1: 256M free."""
    hv = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 2 * GiB))
    topo = hv.topology()
    room = [m.room for m in hv.node_memory()]
    overhead = build_overhead("pv", 1, 0, pool=False) << 12  # each filler's: Xen's per-vCPU memory, on its node
    hv.create("fill-0", 1, room[0] - overhead, hard=topo.cpus_of_nodes([0]), load="idle", auto_numa=False)
    hv.create("fill-1", 1, room[1] - 256 * MiB - overhead, hard=topo.cpus_of_nodes([1]), load="idle",
              auto_numa=False)
    assert [m.room >> 20 for m in hv.node_memory()] == [0, 256]
    return hv, Ledger(str(tmp_path / "l.db")), topo


def test_a_zone_start_waits_for_the_build_whose_room_xen_would_give_it(full_above_the_zone, monkeypatch):
    hv, ledger, topo = full_above_the_zone
    a, _, _ = reserve.place_and_reserve(hv, ledger, Request(1, 200 * MiB), A)
    assert a.nodes == (1,) and not a.fallback
    built = {}

    def build_a():  # A's toolstack builds it: during B's wait if B waits, else after B's build
        if not built:
            built["a"] = hv.create("a", 1, 200 * MiB, hard=a.hard or a.soft, uuid=A, load="idle", auto_numa=False)
    waits = []
    monkeypatch.setattr(time, "sleep", lambda seconds: waits.append(seconds) or build_a())
    b, _, _ = reserve.place_and_reserve(hv, ledger, Request(1, 200 * MiB), B)
    assert b.fallback, b
    domid_b = hv.create("b", 1, 200 * MiB, hard=b.hard or b.soft, uuid=B, load="idle", auto_numa=False)
    build_a()
    pages_a = hv.node_pages(built["a"])
    assert set(n for n, p in pages_a.items() if p) == {1}, pages_a  # A got all of its node's memory
    pages_b = {n: p << 12 for n, p in hv.node_pages(domid_b).items() if p}
    # and B landed where it was reserved (which holds its build's overhead too)
    assert set(pages_b) == set(b.bytes_per_node) and all(pages_b[n] <= b.bytes_per_node[n] for n in pages_b), \
        (pages_b, b.bytes_per_node)
    assert waits  # (it waited for A's build)


def test_past_its_wait_such_a_start_is_refused_and_reserves_nothing(full_above_the_zone, monkeypatch):
    hv, ledger, topo = full_above_the_zone
    reserve.place_and_reserve(hv, ledger, Request(1, 200 * MiB), A)  # ... whose build never comes
    clock = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    with pytest.raises(RoomReserved) as err:
        reserve.place_and_reserve(hv, ledger, Request(1, 200 * MiB), B)
    assert err.value.code == "NUMA_NO_CAPACITY" and "builds are under way" in err.value.message
    assert clock[0] >= reserve.BUILDS_WAIT
    assert [r.vm for r in ledger.reservations()] == [A]


def test_a_dry_run_answers_as_once_the_builds_under_way_have_landed(full_above_the_zone, monkeypatch):
    """A dry run (a pool ranking its hosts, ``place dry_run=true``, a vNUMA plan) gives the
    placement the start will get once the builds under way have landed, rather than refuse:
    refused there, a pool start passed the host over and never reached the place that
    waits (review rD)."""
    hv, ledger, topo = full_above_the_zone
    reserve.place_and_reserve(hv, ledger, Request(1, 200 * MiB), A)  # (not built yet)
    dry, _, _ = reserve.place_and_reserve(hv, ledger, Request(1, 200 * MiB), B, dry_run=True)
    assert dry.fallback and set(dry.bytes_per_node) == {0, 1}, dry
    assert dry.bytes_per_node[1] <= 56 * MiB  # node 1's room that A does not hold, then node 0's zone
    monkeypatch.setattr(reserve, "BUILDS_WAIT", 0.0)
    with pytest.raises(RoomReserved):  # while the start itself waits for A's build (here: no time)
        reserve.place_and_reserve(hv, ledger, Request(1, 200 * MiB), B)
