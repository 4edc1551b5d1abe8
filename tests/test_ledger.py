"""The reservation ledger: atomic reservations across processes, expiry, reconcile."""
import multiprocessing
import os
import random
import signal
import time

import attrs
import pytest

from xapi_numa.core.actions import Reserve
from xapi_numa.errors import InvalidArgument, NoCapacity, VmBusy
from xapi_numa.ops import upkeep
from xapi_numa.ops.executor import Executor
from xapi_numa.ports.hypervisor import Capabilities
from xapi_numa.state.ledger import Ledger
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology

G = 1 << 30
CAPACITY = {0: 10 * G, 1: 10 * G, 2: 10 * G, 3: 10 * G}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_reserve_checks_free_minus_outstanding(tmp_path):
    clock = Clock()
    ledger = Ledger(str(tmp_path / "l.db"), clock)
    ledger.reserve("vm-a", {0: 6 * G}, 60, lambda: CAPACITY)
    with pytest.raises(NoCapacity) as err:
        ledger.reserve("vm-b", {0: 5 * G}, 60, lambda: CAPACITY)
    assert "node 0 has 4G left" in err.value.message
    assert ledger.outstanding() == {0: 6 * G}  # the refusal changed nothing
    ledger.reserve("vm-b", {0: 4 * G, 1: 1 * G}, 60, lambda: CAPACITY)
    assert ledger.outstanding() == {0: 10 * G, 1: G}
    # re-reserving replaces the VM's own reservation instead of adding to it
    ledger.reserve("vm-a", {0: 6 * G}, 60, lambda: CAPACITY)
    assert ledger.outstanding(0) == {0: 10 * G}
    assert ledger.release("vm-a") and not ledger.release("vm-a")
    assert ledger.outstanding() == {0: 4 * G, 1: G}


def test_expiry(tmp_path):
    clock = Clock()
    ledger = Ledger(str(tmp_path / "l.db"), clock)
    ledger.reserve("vm-a", {0: 6 * G}, 30, lambda: CAPACITY)
    clock.now += 29
    assert ledger.outstanding() == {0: 6 * G}
    clock.now += 2
    assert ledger.outstanding() == {}  # expired leases do not count ...
    assert ledger.expire() == 1       # ... and are removed
    assert ledger.reservations() == []


def test_validation(tmp_path):
    ledger = Ledger(str(tmp_path / "l.db"))
    with pytest.raises(InvalidArgument) as err:
        ledger.reserve("", {0: 1}, 10, lambda: CAPACITY)
    assert err.value.field == "vm"
    with pytest.raises(InvalidArgument) as err:
        ledger.reserve("x", {0: 1}, 0, lambda: CAPACITY)
    assert err.value.field == "ttl"


UUID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def reserved(tmp_path):
    """A 2-node simulated host and a 2G reservation on node 1 for UUID."""
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * G), "credit", 1,
                             dom0_vcpus=1, dom0_memory=64 << 20)
    ledger = Ledger(str(tmp_path / "l.db"))
    ledger.reserve(UUID, {1: 2 * G}, 60, lambda: {m.node: m.claimable for m in sim.node_memory()})
    return sim, ledger, UUID


def half_built(sim, uuid):
    """A 2G domain being built, as xenopsd builds it (created empty, its maximum set), 1G of
    it landed on node 1: Xen takes a claim up to the domain's maximum only."""
    domid = sim.create_shell("vm", 1, 2 * G, uuid=uuid)
    with sim.store.transaction() as host:
        host.allocate(host.domain(domid), G >> 12, node=1, exact=True)
    return domid


def reconcile(hv, ledger):
    """What reconciling did, per VM (through the executor, as the daemon and place do)."""
    return upkeep.reservation_changes(upkeep.reconcile(hv, ledger, Executor(hv, ledger.db)))


def test_reconcile_shrinks_claims_and_drops(reserved):
    sim, ledger, uuid = reserved
    assert reconcile(sim, ledger) == {}  # no domain yet: nothing to do
    domid = half_built(sim, uuid)
    # the simulated hypervisor has per-node claims: the rest becomes a claim
    assert reconcile(sim, ledger) == {uuid: "claimed"}
    assert ledger.outstanding(node=1) == {1: 0} and ledger.outstanding() == {}  # (nodes with bytes only)
    assert [m.claimed for m in sim.node_memory()] == [0, G]
    sim.unpause(domid)
    assert reconcile(sim, ledger) == {uuid: "built: released"}
    assert ledger.reservations() == []
    assert all(m.claimed == 0 for m in sim.node_memory())


class NoClaims:
    """A hypervisor view without per-node claims (stock Xen 4.17)."""

    def __init__(self, sim):
        self.sim = sim

    def __getattr__(self, name):
        return getattr(self.sim, name)

    def capabilities(self):
        return attrs.evolve(self.sim.capabilities(), node_claims=False)


def test_reconcile_without_node_claims_shrinks(reserved):
    sim, ledger, uuid = reserved
    half_built(sim, uuid)
    assert reconcile(NoClaims(sim), ledger) == {uuid: "shrunk"}
    assert ledger.outstanding() == {1: G}  # 1G of the 2G has landed


# --- many processes, some killed --------------------------------------------------------------------
def _churn(path, wid, seconds):
    ledger = Ledger(path)
    rng = random.Random(wid)
    end = time.time() + seconds
    while time.time() < end:
        vm = f"w{wid}-{rng.randrange(4)}"
        want = {rng.randrange(4): rng.randrange(1, 4) * G}
        try:
            ledger.reserve(vm, want, 2.0, lambda: CAPACITY)
        except NoCapacity:
            pass
        if rng.random() < 0.5:
            ledger.release(vm)


def test_32_processes_with_sigkill_never_overcommit_and_leak_nothing(tmp_path):
    path = str(tmp_path / "l.db")
    Ledger(path).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_churn, args=(path, w, 3.0)) for w in range(32)]
    for p in procs:
        p.start()
    monitor = Ledger(path)
    victims = random.Random(7).sample(procs, 8)
    samples, saw_reservations = 0, False
    started = time.time()
    while any(p.is_alive() for p in procs):
        if victims and time.time() - started > 0.3 * (9 - len(victims)):
            os.kill(victims.pop().pid, signal.SIGKILL)
        outstanding = monitor.outstanding()
        for node, total in outstanding.items():
            assert total <= CAPACITY[node], f"node {node} over-committed: {total}"
        samples += 1
        saw_reservations = saw_reservations or bool(outstanding)
    for p in procs:
        p.join()
    assert saw_reservations, f"the monitor never saw the churn ({samples} samples)"  # not a count: no clock
    assert sum(p.exitcode == -signal.SIGKILL for p in procs) >= 1
    # whatever the killed processes held expires; reconcile finds nothing to keep
    time.sleep(2.1)
    monitor.expire()
    reconcile(_Empty(), monitor)
    assert monitor.reservations() == []
    assert monitor.outstanding() == {}


class _Empty:
    def domains(self):
        return []

    def capabilities(self):
        return Capabilities("credit2", False, {})

    def clock(self):
        return time.monotonic()


def test_a_clock_stepped_back_never_stretches_a_lease_beyond_its_ttl(tmp_path):
    now = [10000.0]
    ledger = Ledger(str(tmp_path / "l.db"), clock=lambda: now[0])
    ledger.reserve("vm-1", {0: 8 << 30}, 300.0, lambda: {0: 16 << 30})
    now[0] -= 3600.0  # the wall clock stepped back an hour
    ledger.expire()
    now[0] += 301.0
    assert ledger.expire() == 1 and ledger.outstanding() == {}


def test_a_claimed_reservation_is_neither_replaced_nor_released_by_hand(reserved):
    """Once the build holds per-node claims, the ledger's row is what cancels them when
    the build ends: a second reserve or a release by hand must leave it, say why, and
    change nothing; reconcile still ends it."""
    sim, ledger, uuid = reserved
    domid = half_built(sim, uuid)
    assert reconcile(sim, ledger) == {uuid: "claimed"}
    before = ledger.reservations()
    free = lambda: {m.node: m.claimable for m in sim.node_memory()}  # noqa: E731
    with pytest.raises(VmBusy) as err:
        ledger.reserve(uuid, {0: G}, 60, free)
    assert "claim" in err.value.message
    with pytest.raises(VmBusy):
        ledger.release(uuid)
    with pytest.raises(VmBusy):
        ledger.release(uuid, owner="")
    assert ledger.reservations() == before
    assert [m.claimed for m in sim.node_memory()] == [0, G]
    sim.unpause(domid)
    assert reconcile(sim, ledger) == {uuid: "built: released"}
    assert ledger.reservations() == [] and all(m.claimed == 0 for m in sim.node_memory())


def test_a_claimed_reservation_whose_domain_is_gone_is_replaced(reserved):
    """A VM whose build was claimed and whose domain has gone since starts again:
    reconcile (which place runs first) drops the row, so the new reserve goes in."""
    sim, ledger, uuid = reserved
    domid = half_built(sim, uuid)
    assert reconcile(sim, ledger) == {uuid: "claimed"}
    sim.destroy(domid)
    assert reconcile(sim, ledger) == {uuid: "domain gone: released"}
    ledger.reserve(uuid, {0: G}, 60, lambda: {m.node: m.claimable for m in sim.node_memory()})
    assert ledger.outstanding() == {0: G}


def test_a_claim_racing_a_settle_never_leaves_claims_without_a_row(reserved):
    """The daemon planned a claim from an unclaimed row; the plugin's settle released that
    row; the claim then went in: claims with no row to cancel them.  Now the claim finds
    its reservation gone and is not made (or, gone after the claim call, cancels itself:
    tests/test_claim_ownership.py); and a release planned on an unclaimed row
    does not take the row once it is claimed."""
    from xapi_numa.core import reservation
    sim, ledger, uuid = reserved
    half_built(sim, uuid)
    claim = upkeep.plan_reconcile(sim, ledger.reservations())
    dom = next(d for d in sim.domains() if d.uuid == uuid)
    release = reservation.plan_settled_release(ledger.reservation(uuid), dom, True)
    assert [o.status for o in Executor(sim, ledger.db).apply(release)] == ["done"]
    outcomes = Executor(sim, ledger.db).apply(claim)
    assert [o.status for o in outcomes] == ["gone"]
    assert upkeep.reservation_changes(outcomes) == {uuid: "claim not made: the reservation went meanwhile"}
    assert ledger.reservations() == [] and all(m.claimed == 0 for m in sim.node_memory())
    # the other order: the claim first, then the release planned before it
    ledger.reserve(uuid, {1: 2 * G}, 60, lambda: {m.node: m.claimable for m in sim.node_memory()})
    release = reservation.plan_settled_release(ledger.reservation(uuid), dom, True)
    assert upkeep.reservation_changes(upkeep.reconcile(sim, ledger, Executor(sim, ledger.db))) == {uuid: "claimed"}
    assert [o.status for o in Executor(sim, ledger.db).apply(release)] == ["gone"]
    assert ledger.reservation(uuid).claimed  # kept: it is what cancels the claims when the build ends


def test_a_host_wide_claim_bounds_what_a_reservation_may_take_on_any_node(reserved):
    """A start reserved memory a host-wide claim (another build's, on stock Xen) already
    held: accepted here, refused later by Xen."""
    from xapi_numa.ops.reserve import node_loads
    sim, ledger, uuid = reserved
    ledger.release(uuid)
    domid = sim.create("building", 1, 64 << 20, paused=True, auto_numa=False)
    left = sum(m.free >> 12 for m in sim.node_memory())
    with sim.store.transaction() as host:  # its maximum set before its memory lands, as xenopsd does
        host.domain(domid).max_pages = 1 << 30
    sim.claim(domid, (64 << 20 >> 12) + left - (G >> 12))  # the host keeps 1G
    assert max(node_loads(sim, {}).free) <= G
    with pytest.raises(NoCapacity):
        Executor(sim, ledger.db).apply([Reserve("vm-b", {1: 2 * G}, 60)])
    # each node alone has the host's 1G: two starts of 3/4 G on two nodes are one too many
    Executor(sim, ledger.db).apply([Reserve("vm-c", {0: 3 * G // 4}, 60)])
    with pytest.raises(NoCapacity) as err:
        Executor(sim, ledger.db).apply([Reserve("vm-d", {1: 3 * G // 4}, 60)])
    assert "host-wide claims" in err.value.message and ledger.outstanding() == {0: 3 * G // 4}
