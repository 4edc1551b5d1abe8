"""Reservations and half-made home-move notes of an earlier boot were acted on in the new one.

Temporary pins say the boot they were made in (schema 14); reservations and home-move notes
did not.  A host that lost power kept them, and after the boot:

* a reservation of a start under way then (a lease of an hour, or a row whose claim call was
  made: those never lapse) was still taken for the VM's build: when the VM started again
  without a place (plain start, auto-start), its new domain was given a claim on the node the
  old place had chosen, whatever node its builder was filling; a VM not started again held its
  memory against every start of the new boot until its lease ran out;
* a home-move note of a domain of the old boot was mended on the VM's new domain: its vCPUs'
  soft affinity, set in the new boot, written back to what the old domain had before the move.

Both now say their boot (schema 15): a reservation of another boot is released at the next
reconcile (its claims went with the boot), a note of another boot is dropped, never mended.
Rows that do not say (written before) are judged as before."""

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.actions import Reserve
from xapi_numa.core.topology import Topology
from xapi_numa.ops import upkeep
from xapi_numa.ops.executor import DONE, Executor
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMoves
from xapi_numa.state.ledger import Ledger

BEFORE, AFTER = "0c0c0c0c-0000-4000-8000-00000000000a", "0c0c0c0c-0000-4000-8000-00000000000b"
X, Y = "0c0c0c0c-0000-4000-8000-0000000000aa", "0c0c0c0c-0000-4000-8000-0000000000bb"
GIB = 1 << 30


def _host(tmp_path, monkeypatch):
    topo = Topology.uniform(2, 4, 4 * GIB)
    sim = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit", 1, dom0_vcpus=1, dom0_memory=128 << 20)
    monkeypatch.setattr(SimHypervisor, "boot_id", lambda self: BEFORE)
    return sim, topo


def _rebooted(monkeypatch, boot=AFTER):
    monkeypatch.setattr(SimHypervisor, "boot_id", lambda self: boot)


def _placed_before_the_power_loss(sim, tmp_path):
    """X placed on node 0 for an hour (its build to come), in the boot BEFORE."""
    db = Database(str(tmp_path / "l.db"))
    out = Executor(sim, db).apply([Reserve(X, {0: 2 * GIB}, 3600.0)])
    assert [o.status for o in out] == [DONE]
    return db


def test_a_vm_started_again_without_a_place_gets_no_claim_from_the_old_boots_reservation(tmp_path, monkeypatch):
    sim, _ = _host(tmp_path, monkeypatch)
    db = _placed_before_the_power_loss(sim, tmp_path)
    _rebooted(monkeypatch)
    # X auto-started in the new boot with no place: its builder fills node 1
    domid = sim.create_shell("X", 2, 2 * GIB, uuid=X)
    with sim.store.transaction() as host:
        host.allocate(host.domain(domid), 1000, 1)
    upkeep.reconcile(sim, Ledger(db=db), Executor(sim, db))
    d = sim.domain(domid, named=False)
    assert d.claimed == 0, "the new domain was given a claim ({} bytes) from the old boot's place".format(d.claimed)
    assert Ledger(db=db).reservations() == []


def test_a_reservation_of_the_old_boot_holds_no_memory_against_the_new_boots_starts(tmp_path, monkeypatch):
    sim, _ = _host(tmp_path, monkeypatch)
    db = _placed_before_the_power_loss(sim, tmp_path)
    _rebooted(monkeypatch)
    ledger = Ledger(db=db)
    upkeep.reconcile(sim, ledger, Executor(sim, db))  # (every place reconciles first, as every cycle)
    out = Executor(sim, db).apply([Reserve(Y, {0: 5 * GIB // 2}, 300.0)])
    assert [o.status for o in out] == [DONE], out
    assert [r.vm for r in ledger.reservations()] == [Y]


def test_a_dry_run_counts_a_reservation_of_the_old_boot_as_the_reconcile_leaves_it(tmp_path, monkeypatch):
    sim, _ = _host(tmp_path, monkeypatch)
    db = _placed_before_the_power_loss(sim, tmp_path)
    _rebooted(monkeypatch)
    assert upkeep.held_after_reconcile(sim, Ledger(db=db))[0].get(0, 0) == 0
    assert [r.vm for r in Ledger(db=db).reservations()] == [X]  # (a dry run changes nothing)


def test_a_reservation_of_this_boot_is_kept(tmp_path, monkeypatch):
    sim, _ = _host(tmp_path, monkeypatch)
    db = _placed_before_the_power_loss(sim, tmp_path)  # (xapi-numad restarted, no reboot)
    upkeep.reconcile(sim, Ledger(db=db), Executor(sim, db))
    assert [r.vm for r in Ledger(db=db).reservations()] == [X]


def _noted_before_the_power_loss(sim, topo, tmp_path, monkeypatch, boot_after):
    """X (domid D) homed on node 0, its home move to node 1 noted and one vCPU's soft affinity
    written when the power went; in the next boot X runs as domain D again, its vCPUs' soft
    affinity set anew: vCPU 0 on node 1's CPUs, vCPU 1 on node 0's."""
    node0, node1 = topo.parse_cpus("node:0"), topo.parse_cpus("node:1")
    domid = sim.create("X", 2, 256 << 20, soft=node0, uuid=X, load="idle")
    db = Database(str(tmp_path / "l.db"))
    HomeMoves(db, BEFORE).intend(X, domid, 0, 1, None, {0: node0, 1: node0})
    _rebooted(monkeypatch, boot_after)
    sim.set_vcpu_affinity(domid, 0, soft=node1)
    return domid, db, node0, node1


def test_a_home_move_note_of_the_old_boot_is_not_mended_on_the_new_domain(tmp_path, monkeypatch):
    sim, topo = _host(tmp_path, monkeypatch)
    domid, db, node0, node1 = _noted_before_the_power_loss(sim, topo, tmp_path, monkeypatch, AFTER)
    rt = Runtime(sim, db, Settings())
    rt.cycle()
    assert [v.soft for v in sim.vcpus(domid)] == [node1, node0], "the new boot's soft affinity was written over"
    assert HomeMoves(db, AFTER).unwritten() == {}


def test_a_home_move_note_of_this_boot_is_still_mended(tmp_path, monkeypatch):
    sim, topo = _host(tmp_path, monkeypatch)
    domid, db, node0, node1 = _noted_before_the_power_loss(sim, topo, tmp_path, monkeypatch, BEFORE)
    rt = Runtime(sim, db, Settings())
    rt.cycle()
    assert [v.soft for v in sim.vcpus(domid)] == [node0, node0]
