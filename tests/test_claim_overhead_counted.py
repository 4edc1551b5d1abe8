"""A claimed reservation and the build's overhead above the domain's maximum (shadow/HAP
pool, per-vCPU memory, which Xen does not charge to the domain's pages, so no claim of the
domain's holds it).  a59b8de kept that overhead in the claimed row, counted until the build
was over; but both toolstacks allocate it before the domain's first page (a claim is made
only after it), so it is out of the free memory already and was counted twice
(tests/test_claim_overhead_allocated_first.py).  Marking the row claimed leaves it nothing
again: the claim and the free memory say it all."""
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core import reservation
from xapi_numa.core.topology import Topology
from xapi_numa.ops import upkeep
from xapi_numa.ops.executor import Executor
from xapi_numa.state.ledger import Ledger
from tests.review12_claims_model import Clock

G = 1 << 30
M = 1 << 20
UUID = "11111111-2222-4333-8444-555555555555"


def _half_built_with_overhead(tmp_path):
    """A 2-node simulated host (node claims), a 2G VM reserved with 64M of build overhead on
    node 1, its domain created (maximum 2G) and 1G of it landed on node 1."""
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * G), "credit", 1,
                             dom0_vcpus=1, dom0_memory=64 << 20)
    ledger = Ledger(str(tmp_path / "l.db"))
    ledger.reserve(UUID, {1: 2 * G + 64 * M}, 60, lambda: {m.node: m.claimable for m in sim.node_memory()})
    domid = sim.create_shell("vm", 1, 2 * G, uuid=UUID)
    with sim.store.transaction() as host:
        host.allocate(host.domain(domid), G >> 12, node=1, exact=True)
    return sim, ledger, domid


def test_the_claimed_row_counts_nothing_more(tmp_path):
    sim, ledger, domid = _half_built_with_overhead(tmp_path)
    upkeep.reconcile(sim, ledger, Executor(sim, ledger.db))
    r = ledger.reservation(UUID)
    assert r.claimed
    assert [m.claimed for m in sim.node_memory()] == [0, G]  # the claim holds the domain's last 1G ...
    assert ledger.outstanding() == {}                        # ... and the overhead is allocated already
    sim.unpause(domid)                                        # the build is over: both go
    upkeep.reconcile(sim, ledger, Executor(sim, ledger.db))
    assert ledger.reservations() == [] and ledger.outstanding() == {}


def test_a_dry_run_counts_the_claim_to_be_made(tmp_path):
    sim, ledger, domid = _half_built_with_overhead(tmp_path)
    reservations = ledger.reservations()
    actions = upkeep.plan_reconcile(sim, reservations)
    assert reservation.outstanding(reservations, actions) == {1: G}
    assert upkeep.held_after_reconcile(sim, ledger)[0] == {1: G}


def test_a_dry_run_drops_the_overhead_of_a_build_whose_domain_is_gone(tmp_path):
    sim, ledger, domid = _half_built_with_overhead(tmp_path)
    upkeep.reconcile(sim, ledger, Executor(sim, ledger.db))
    sim.destroy(domid)  # the build failed: a reconcile releases the row, the overhead with it
    assert not any(upkeep.held_after_reconcile(sim, ledger)[0].values())
    upkeep.reconcile(sim, ledger, Executor(sim, ledger.db))
    assert ledger.outstanding() == {}


def test_a_row_claimed_under_the_toolstacks_own_claim_outlives_its_lease_holding_nothing(tmp_path):
    """A claimed row outlives its lease (it ends with the build), whoever made the claim."""
    clock = Clock()
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * G), "credit", 1,
                             dom0_vcpus=1, dom0_memory=64 << 20)
    ledger = Ledger(str(tmp_path / "l.db"), clock)
    ledger.reserve(UUID, {1: 2 * G + 64 * M}, 60, lambda: {m.node: m.claimable for m in sim.node_memory()})
    domid = sim.create_shell("vm", 1, 2 * G, uuid=UUID)
    sim.claim(domid, 2 * G >> 12, 1)  # the toolstack's claim, before its first page
    with sim.store.transaction() as host:
        host.allocate(host.domain(domid), G >> 12, node=1, exact=True)
    upkeep.reconcile(sim, ledger, Executor(sim, ledger.db))
    r = ledger.reservation(UUID)
    assert r.claimed and not r.claim_ours and ledger.outstanding() == {}
    clock.now = r.expires + 3600.0  # a build slower than the lease (or started paused)
    assert ledger.expire() == 0 and ledger.outstanding() == {} and ledger.reservation(UUID).claimed
