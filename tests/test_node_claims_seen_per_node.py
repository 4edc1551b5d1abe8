"""Per-node claims seen on their nodes where the hypervisor does not say.

XenServer's patched Xen takes claims on one node, but nothing libxenuma calls reads
them back per node (numainfo gives size and free; physinfo and the domain records give
the claims' totals only): the Xen adapter reported every node's ``claimed`` as 0, so
placement and the ledger's check counted another build's claimed memory as free on
its node (only the host's total was bounded).  The ledger knows which node it claimed
on, and the domain's record says how much of that claim is left: those are taken off
their nodes now.  (The simulated host reads its claims per node and says so.)"""
import attrs
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.actions import Reserve
from xapi_numa.core.placement_values import Request
from xapi_numa.core.policy import Policy
from xapi_numa.core.topology import Topology
from xapi_numa.errors import NoCapacity
from xapi_numa.ops import observe, queries, upkeep
from xapi_numa.ops.executor import Executor
from xapi_numa.ops.reserve import node_loads, place_and_reserve, room_pages
from xapi_numa.ops.vnuma_xapi import free_for_plan
from xapi_numa.state.ledger import Ledger

G = 1 << 30
UUID = "11111111-2222-4333-8444-555555555555"


class PatchedXen:
    """The simulated host as the Xen adapter sees XenServer's patched Xen: node claims
    made, not read back per node."""

    def __init__(self, sim):
        self.sim = sim

    def __getattr__(self, name):
        return getattr(self.sim, name)

    def node_memory(self):
        return [attrs.evolve(m, claimed=0) for m in self.sim.node_memory()]

    def capabilities(self):
        return attrs.evolve(self.sim.capabilities(), node_claims_read=False)


@pytest.fixture
def claimed_on_node_1(tmp_path):
    """2 nodes of 4G; a 2G VM reserved on node 1, 1G of it landed, its last 1G claimed there."""
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * G), "credit", 1,
                             dom0_vcpus=1, dom0_memory=64 << 20)
    xen = PatchedXen(sim)
    ledger = Ledger(str(tmp_path / "l.db"))
    Executor(xen, ledger.db).apply([Reserve(UUID, {1: 2 * G}, 60)])
    domid = sim.create_shell("vm", 1, 2 * G, uuid=UUID)
    with sim.store.transaction() as host:
        host.allocate(host.domain(domid), G >> 12, node=1, exact=True)
    assert upkeep.reservation_changes(upkeep.reconcile(xen, ledger, Executor(xen, ledger.db))) == {UUID: "claimed"}
    assert [m.claimed for m in sim.node_memory()] == [0, G]  # (Xen has it on node 1)
    return sim, xen, ledger, domid


def test_the_simulated_host_reads_its_claims_per_node(claimed_on_node_1):
    sim, xen, ledger, domid = claimed_on_node_1
    assert sim.capabilities().node_claims_read
    assert observe.known_node_claims(sim, ledger) == {}  # nothing to add: it says so itself


def test_placement_does_not_count_a_node_claim_as_free_on_its_node(claimed_on_node_1):
    sim, xen, ledger, domid = claimed_on_node_1
    free_1 = sim.node_memory()[1].free
    assert observe.known_node_claims(xen, ledger) == {1: G}
    known = observe.known_node_claims(xen, ledger)
    assert node_loads(xen, {}, known=known).free[1] == free_1 - G == node_loads(sim, {}).free[1]
    assert room_pages(xen, ledger)[1] == room_pages(sim, ledger)[1]
    report = queries.topology_report(xen, ledger.outstanding(), known)
    assert report["nodes"][1]["memory_claimed"] == G and report["memory_claimed_host_wide"] == 0
    assert report == queries.topology_report(sim, ledger.outstanding())
    assert free_for_plan(xen, None, ledger)[1] == free_for_plan(sim, None, ledger)[1]  # a vNUMA plan's too
    # a VM of node 1's free memory less 512M, node 1 first: only what the claim leaves goes there
    request = Request(1, free_1 - (512 << 20), policy=Policy.parse("preferred", "1,0"))
    for dry_run in (True, False):
        placement, _, _ = place_and_reserve(xen, ledger, request, "vm-b", dry_run=dry_run)
        assert 0 < placement.bytes_per_node[1] <= free_1 - G < sum(placement.bytes_per_node.values())


def test_the_ledger_refuses_a_start_the_node_claim_leaves_no_room_for(claimed_on_node_1):
    sim, xen, ledger, domid = claimed_on_node_1
    left = sim.node_memory()[1].free - G  # what node 1 has after the claim on it
    with pytest.raises(NoCapacity):
        Executor(xen, ledger.db).apply([Reserve("vm-b", {1: left + (256 << 20)}, 60)])
    Executor(xen, ledger.db).apply([Reserve("vm-b", {1: left}, 60)])


def test_the_claim_left_is_what_counts_as_the_build_goes_on(claimed_on_node_1):
    sim, xen, ledger, domid = claimed_on_node_1
    with sim.store.transaction() as host:
        host.allocate(host.domain(domid), (G // 2) >> 12, node=1, exact=True)
    assert observe.known_node_claims(xen, ledger) == {1: G // 2}
    sim.unpause(domid)
    upkeep.reconcile(xen, ledger, Executor(xen, ledger.db))
    assert observe.known_node_claims(xen, ledger) == {}
