"""A toolstack's own node claim for a VM we reserved, on a host that reads claims per node.

xenopsd on XenServer 9 claims on a node for the domain it builds (its NUMA step, before
the first page).  Where the hypervisor reports each node's claimed pages (the simulated
host), that claim was counted twice on its node: once as the node's claimed pages and
once as our reservation row for the same VM (not marked claimed: the claim is not ours).
A 6G VM reserved and claimed on node 0 left node 0 its free memory less 12G: a second
start that fitted what was truly left was refused, and a page mover, a vNUMA plan and
``topology`` saw no room there.  The claim can be told from ours: it is the claim of the
domain whose UUID is the row's VM, the row says whether we made a claim, and the host
says which node the claim is on.  The node now counts the claim and the row once (the
more of the two).  Where the claims are not read per node (the Xen adapter on XenServer's
patched Xen) the toolstack's claim is seen host-wide and counted once in the host's total,
as before."""
import attrs
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core import reservation
from xapi_numa.core.actions import Reserve
from xapi_numa.core.host import DomainInfo
from xapi_numa.core.placement import Request
from xapi_numa.core.topology import Topology
from xapi_numa.errors import NoCapacity
from xapi_numa.ops import observe, queries, reserve
from xapi_numa.ops.executor import Executor
from xapi_numa.ops.vnuma_xapi import free_for_plan
from xapi_numa.state.ledger import Ledger
from test_node_claims_seen_per_node import PatchedXen as NodeClaimsNotRead

G = 1 << 30
M = 1 << 20
VM = "aaaaaaaa-0000-4000-8000-00000000000a"


class PatchedXen(NodeClaimsNotRead):
    """... whose domain records do not say which node a claim is on either."""

    def domains(self):
        return [attrs.evolve(d, claim_node=None) for d in self.sim.domains()]

    def domain(self, domid, named=True):
        d = self.sim.domain(domid, named)
        return None if d is None else attrs.evolve(d, claim_node=None)


@pytest.fixture(params=["per node", "host-wide"])
def building(request, tmp_path):
    """Two nodes of 8G; VM reserved 6G on node 0, its domain created (no page yet) and the
    toolstack's claim of 6G on node 0 out.  The host as read per node, or as the Xen adapter."""
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 8 * G), "credit", 1,
                             dom0_vcpus=1, dom0_memory=64 << 20, dma_bits=52)
    hv = sim if request.param == "per node" else PatchedXen(sim)
    ledger = Ledger(str(tmp_path / "l.db"))
    Executor(hv, ledger.db).apply([Reserve(VM, {0: 6 * G}, 300.0)])
    domid = sim.create_shell("vm", 1, 6 * G, uuid=VM)
    sim.claim(domid, (6 * G) >> 12, 0)  # xenopsd's NUMA step, on the node our pin names
    assert sim.node_memory()[0].claimed == 6 * G and sim.domain(domid).claim_node == 0
    return sim, hv, ledger, domid


def _left_on_node_0(sim):
    return sim.node_memory()[0].free - 6 * G  # node 0's free memory less the VM's 6G, once


def test_a_start_that_fits_what_the_claim_and_the_row_leave_is_reserved(building):
    sim, hv, ledger, _ = building
    left = _left_on_node_0(sim)
    with pytest.raises(NoCapacity):
        Executor(hv, ledger.db).apply([Reserve("vm-b", {0: left + M}, 300.0)])
    Executor(hv, ledger.db).apply([Reserve("vm-b", {0: left}, 300.0)])


def test_every_figure_of_the_node_counts_the_vm_once(building):
    sim, hv, ledger, _ = building
    left = _left_on_node_0(sim)
    assert reserve.room_pages(hv, ledger)[0] == left >> 12  # a page mover's
    assert free_for_plan(hv, None, ledger)[0] == left  # a vNUMA plan's
    loads = reserve.place_and_reserve(hv, ledger, Request(vcpus=1, memory=G), dry_run=True)[2]
    assert loads.free[0] - loads.reserved[0] == left  # a place's dry run
    report = queries.topology_report(hv, ledger.outstanding(), observe.known_node_claims(hv, ledger),
                                     observe.claims_overlap(hv, ledger))
    assert report["nodes"][0]["memory_claimable"] == left


def test_once_pages_land_the_dry_run_counts_the_claim_it_will_adopt_once(building):
    """The first page landed, no reconcile yet: the planned claim is the toolstack's, there
    already (the reconcile adopts it, the row keeping only what it cannot hold)."""
    sim, hv, ledger, domid = building
    with sim.store.transaction() as host:
        host.allocate(host.domain(domid), (G // 2) >> 12, node=0, exact=True)
    left = _left_on_node_0(sim) + G // 2  # (free is less by the page landed, the claim by as much)
    assert reserve.room_pages(hv, ledger)[0] == left >> 12
    loads = reserve.place_and_reserve(hv, ledger, Request(vcpus=1, memory=G), dry_run=True)[2]
    assert loads.free[0] - loads.reserved[0] == left
    reserve.place_and_reserve(hv, ledger, Request(vcpus=1, memory=left), "vm-b")  # (reconciles first)


def test_the_overlap_is_per_node_where_the_claims_node_is_seen():
    """The pure rule: a claim seen on a node overlaps what the row holds on that node only;
    a claim on no node (or whose node is not read) overlaps the row's total, host-wide."""
    rows = [reservation.Reservation("a", 0.0, 100.0, False, {0: 2 * G, 1: 2 * G}, {0: 2 * G, 1: 2 * G}),
            reservation.Reservation("b", 0.0, 100.0, False, {1: 3 * G}, {1: 3 * G}),
            reservation.Reservation("c", 0.0, 100.0, False, {0: G}, {0: G})]

    def dom(uuid, domid, claimed, node):
        return DomainInfo(domid, uuid, uuid, 1, 0, 8 * G, True, claimed=claimed, claim_node=node)
    domains = {"a": dom("a", 1, 4 * G, 0), "b": dom("b", 2, G, 1), "c": dom("c", 3, 5 * G, None)}
    assert reservation.claims_overlap(rows, domains, on_nodes=True) == reservation.ClaimOverlap(
        G, {0: 2 * G, 1: G})
    assert reservation.claims_overlap(rows, domains) == reservation.ClaimOverlap(4 * G + G + G)
