"""Stock Xen (no node claims): while the toolstack's own host-wide claim for a domain being
built is outstanding, the reservation row of that domain's VM was counted twice in what the
host has left: once by the claim (Xen 4.17's physinfo ``outstanding_pages``, taken off the
host's total: physinfo's ``free_pages`` and numainfo's ``memfree`` still hold the claimed
pages) and once by the row's own still-to-come bytes.  A second start on another node was
then refused with the memory free, and every node's claimable was under-stated by it.  The
row still holds its bytes on its own nodes (a host-wide claim keeps no node's pages), but
the host's total counts them once: the claim's, or the row's where that is more."""
import attrs
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.heap import build_overhead
from xapi_numa.core.actions import Reserve
from xapi_numa.core.placement import Request
from xapi_numa.core.topology import Topology
from xapi_numa.errors import NoCapacity
from xapi_numa.ops import observe, queries, reserve
from xapi_numa.ops.executor import Executor
from xapi_numa.ops.vnuma_xapi import free_for_plan
from xapi_numa.state.ledger import Ledger

G = 1 << 30
M = 1 << 20
VM = "aaaaaaaa-0000-0000-0000-00000000000a"


class StockXen(SimHypervisor):
    """The simulated host as stock Xen 4.17 offers it: claims host-wide only."""

    def capabilities(self):
        c = super().capabilities()
        return attrs.evolve(c, node_claims=False, node_claims_read=False,
                            features=dict(c.features, node_claims="unavailable"))


def _host(tmp_path):
    """Two nodes of 8G (no DMA zone), dom0's 64M on both."""
    SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 8 * G), "credit", 1,
                       dom0_vcpus=1, dom0_memory=64 << 20, dma_bits=52)
    return StockXen(str(tmp_path / "h.json")), Ledger(str(tmp_path / "l.db"))


def _building(sim, ledger, row, claim):
    """VM reserved ``row`` (bytes per node), its domain created (no page yet) and the
    toolstack's host-wide claim of ``claim`` bytes for it outstanding (xenopsd's NUMA step,
    libxl's meminit: after the domain is created, before its first page)."""
    Executor(sim, ledger.db).apply([Reserve(VM, row, 300.0)])
    domid = sim.create_shell("vm", 1, max(claim, sum(row.values())), uuid=VM)
    sim.claim(domid, claim >> 12)  # host-wide: no node named
    assert sim.claims_outstanding() == claim and all(m.claimed == 0 for m in sim.node_memory())


def test_a_start_on_another_node_is_not_refused_for_the_building_vms_memory_counted_twice(tmp_path):
    sim, ledger = _host(tmp_path)
    _building(sim, ledger, {0: 6 * G}, 6 * G)
    free1 = sim.node_memory()[1].free  # the claim keeps node 0's memory no more than node 1's
    # the host has 16G - 64M free, 6G of it claimed (and reserved) for the VM: node 1's is there
    Executor(sim, ledger.db).apply([Reserve("vm-b", {1: free1}, 300.0)])
    assert ledger.outstanding() == {0: 6 * G, 1: free1}


def test_a_claim_above_the_row_still_bounds_the_host(tmp_path):
    """Counted once, as the more of the two: a claim of 6G for a row of 4G leaves the host
    its free memory less 6G, whatever a node has left after the row."""
    sim, ledger = _host(tmp_path)
    _building(sim, ledger, {0: 4 * G}, 6 * G)
    free0, free1 = (m.free for m in sim.node_memory())
    left = free0 + free1 - 6 * G
    with pytest.raises(NoCapacity) as err:  # (node 0 alone has free0 - 4G for it)
        Executor(sim, ledger.db).apply([Reserve("vm-b", {0: left - free1 + M, 1: free1}, 300.0)])
    assert "host-wide claims" in err.value.message
    Executor(sim, ledger.db).apply([Reserve("vm-b", {0: left - free1, 1: free1}, 300.0)])


def test_claimable_per_node_counts_the_building_vm_once(tmp_path):
    sim, ledger = _host(tmp_path)
    _building(sim, ledger, {0: 6 * G}, 6 * G)
    free0, free1 = (m.free for m in sim.node_memory())
    assert free_for_plan(sim, None, ledger) == {0: free0 - 6 * G, 1: free1}  # a vNUMA plan's
    assert reserve.room_pages(sim, ledger) == {0: (free0 - 6 * G) >> 12, 1: free1 >> 12}  # a page mover's
    report = queries.topology_report(sim, ledger.outstanding(), observe.known_node_claims(sim, ledger),
                                     observe.claims_overlap(sim, ledger))
    assert [n["memory_claimable"] for n in report["nodes"]] == [free0 - 6 * G, free1]


def test_a_dry_run_bounds_each_node_by_the_host_less_the_claim_once(tmp_path):
    """place's dry run, a VM striped over both nodes (2G reserved on each) while its
    toolstack's claim is out, node 0 full but for that 2G: node 1 has its free memory less
    the row's 2G for other starts, not 2G less again (the host's total less the claim, and
    less the row on node 1 once more)."""
    sim, ledger = _host(tmp_path)
    Executor(sim, ledger.db).apply([Reserve(VM, {0: 2 * G, 1: 2 * G}, 300.0)])
    domid = sim.create_shell("vm", 1, 4 * G, uuid=VM)  # (its build's overhead is allocated with it)
    filler = sim.node_memory()[0].free - 2 * G - (build_overhead("pv", 1, 0, pool=False) << 12)  # (and its overhead)
    sim.create("filler", 1, filler, soft=sim.topology().cpus_of_nodes([0]), load="idle")
    free0, free1 = (m.free for m in sim.node_memory())
    assert free0 == 2 * G
    sim.claim(domid, (4 * G) >> 12)
    loads = reserve.place_and_reserve(sim, ledger, Request(vcpus=1, memory=G), dry_run=True)[2]
    assert [f - r for f, r in zip(loads.free, loads.reserved)] == [0, free1 - 2 * G]


def test_the_overlap_is_the_less_of_claim_and_row_and_leaves_our_claims_alone():
    """The pure rule: a row not claimed counts, up to its domain's claim, as after the
    reconcile's actions; a claimed row (it keeps only what its claim cannot hold) or one
    whose claim call was made does not; a VM with no domain has no claim."""
    from xapi_numa.core import reservation
    from xapi_numa.core.actions import ShrinkReservation
    from xapi_numa.core.host import DomainInfo
    rows = [reservation.Reservation("a", 0.0, 100.0, False, {0: 4 * G}, {0: 4 * G}),
            reservation.Reservation("b", 0.0, 100.0, False, {1: 2 * G}, {1: 2 * G}),
            reservation.Reservation("c", 0.0, 100.0, True, {1: G}, {1: G}),
            reservation.Reservation("d", 0.0, 100.0, False, {1: G}, {1: G}, claim_ours=True),
            reservation.Reservation("e", 0.0, 100.0, False, {1: G}, {1: G})]

    def dom(uuid, domid, claimed):
        return DomainInfo(domid, uuid, uuid, 1, 0, 8 * G, True, claimed=claimed)
    domains = {"a": dom("a", 1, 3 * G), "b": dom("b", 2, 5 * G), "c": dom("c", 3, G), "d": dom("d", 4, G)}
    assert reservation.claims_overlap(rows, domains).host_wide == 3 * G + 2 * G
    shrunk = [ShrinkReservation("b", {1: G // 2}, "pages landed")]
    assert reservation.claims_overlap(rows, domains, shrunk).host_wide == 3 * G + G // 2
    assert reservation.claims_overlap(rows, domains, now=100.0) == reservation.NO_OVERLAP  # (leases over: no row)
