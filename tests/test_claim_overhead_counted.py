"""A claimed reservation goes on counting what the claim cannot hold: the part of the
reservation above the domain's maximum (the build's overhead: shadow/HAP pool, per-vCPU
memory, which Xen does not charge to the domain's pages, so Xen refuses a claim past the
maximum).  Before, marking the row claimed zeroed its bytes, so once the claim was made
that overhead was free again to every parallel start until the build was over."""
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core import reservation
from xapi_numa.core.topology import Topology
from xapi_numa.ops import upkeep
from xapi_numa.ops.executor import Executor
from xapi_numa.state.ledger import Ledger

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


def test_the_overhead_stays_in_the_ledger_once_claimed(tmp_path):
    sim, ledger, domid = _half_built_with_overhead(tmp_path)
    upkeep.reconcile(sim, ledger, Executor(sim, ledger.db))
    r = ledger.reservation(UUID)
    assert r.claimed
    assert [m.claimed for m in sim.node_memory()] == [0, G]  # the claim holds the domain's last 1G ...
    assert ledger.outstanding() == {1: 64 * M}               # ... and the ledger the overhead
    sim.unpause(domid)                                        # the build is over: both go
    upkeep.reconcile(sim, ledger, Executor(sim, ledger.db))
    assert ledger.reservations() == [] and ledger.outstanding() == {}


def test_a_dry_run_counts_the_claim_and_the_overhead(tmp_path):
    sim, ledger, domid = _half_built_with_overhead(tmp_path)
    reservations = ledger.reservations()
    actions = upkeep.plan_reconcile(sim, reservations)
    assert reservation.outstanding(reservations, actions) == {1: G + 64 * M}
    assert upkeep.outstanding_after_reconcile(sim, ledger) == {1: G + 64 * M}


def test_a_dry_run_drops_the_overhead_of_a_build_whose_domain_is_gone(tmp_path):
    sim, ledger, domid = _half_built_with_overhead(tmp_path)
    upkeep.reconcile(sim, ledger, Executor(sim, ledger.db))
    sim.destroy(domid)  # the build failed: a reconcile releases the row, the overhead with it
    assert not any(upkeep.outstanding_after_reconcile(sim, ledger).values())
    upkeep.reconcile(sim, ledger, Executor(sim, ledger.db))
    assert ledger.outstanding() == {}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_the_overhead_counts_past_the_lease_under_the_toolstacks_own_claim(tmp_path):
    """A claimed row outlives its lease (it ends with the build); what it holds counts as
    long as it is there, whoever made the claim."""
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
    assert r.claimed and not r.claim_ours and ledger.outstanding() == {1: 64 * M}
    clock.now = r.expires + 3600.0  # a build slower than the lease (or started paused)
    assert ledger.expire() == 0 and ledger.outstanding() == {1: 64 * M}
