"""``xapi-numa rebalance --dry-run`` creates and changes nothing, and shows the mending first.

A dry run opened the state database as xapi-numad does: where there was none it created
one (and its directory), a file the admin never asked for.  And it skipped what a daemon
does first in a period: the writes that mend a home move a killed daemon left half made
(its note in the database, ``home_move_intent``), so its list left out the writes the
daemon would make and the VM they hold back."""
import json
import os

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.core import rebalance_moves
from xapi_numa.core.actions import SetAffinity, SetNodeAffinity
from xapi_numa.core.topology import Topology
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMoves

GiB = 1 << 30


def _host(tmp_path, monkeypatch):
    path = str(tmp_path / "h.json")
    sim = SimHypervisor.init(path, Topology.uniform(2, 4, 8 * GiB), "credit2", 1)
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + path)
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    return sim, path


def test_a_dry_run_creates_no_state_database(tmp_path, monkeypatch, capsys):
    sim, path = _host(tmp_path, monkeypatch)
    n0 = sim.topology().cpus_of_nodes([0])
    for name in "ABC":
        sim.create(name, 2, GiB, soft=n0, load="busy", dtype="pvh")
    sim.run(4.0)
    ledger = str(tmp_path / "ledger.db")
    before = sorted(os.listdir(str(tmp_path)))
    assert main(["rebalance", "--dry-run", "--samples", "1", "--json", "--ledger", ledger]) == 0
    out = json.loads(capsys.readouterr().out)
    assert any(a["action"] == "SetNodeAffinity" for a in out["actions"]), out  # it did weigh the host
    assert sorted(os.listdir(str(tmp_path))) == before
    assert main(["rebalance", "--dry-run", "--samples", "1"]) == 0  # the sim's own default: beside its file
    assert "no state database" in capsys.readouterr().out
    assert sorted(os.listdir(str(tmp_path))) == before


def _left_half_made(sim, db_path):
    """A daemon killed between a home move's writes: VM A (2 vCPUs, homed on node 0) noted as
    moving to node 1, vCPU 0's soft affinity written, vCPU 1's not."""
    topo = sim.topology()
    n0, n1 = topo.cpus_of_nodes([0]), topo.cpus_of_nodes([1])
    domid = sim.create("A", 2, GiB, soft=n0, load="idle", dtype="pvh")
    sim.run(2.0)
    d = next(x for x in sim.domains() if x.domid == domid)
    HomeMoves(Database(db_path)).intend(d.uuid, domid, 0, 1, None, {0: n0, 1: n0})
    sim.set_vcpu_affinity(domid, 0, soft=n1)
    return d.uuid, domid, n0


def test_a_dry_run_lists_the_mending_a_killed_daemon_left_and_changes_nothing(tmp_path, monkeypatch, capsys):
    sim, path = _host(tmp_path, monkeypatch)
    db_path = str(tmp_path / "ledger.db")
    uuid, domid, n0 = _left_half_made(sim, db_path)
    assert main(["rebalance", "--dry-run", "--samples", "2", "--json", "--ledger", db_path]) == 0
    out = json.loads(capsys.readouterr().out)
    mends = [a for a in out["actions"] if a.get("reason") == rebalance_moves.UNDO]
    assert [(a["action"], a.get("vcpu"), a.get("soft"), a.get("nodes")) for a in mends] == [
        ("SetAffinity", 0, sorted(n0), None), ("SetNodeAffinity", None, None, None)], out
    assert "mend" in out["decision"], out["decision"]
    assert list(HomeMoves(Database(db_path)).unwritten()) == [uuid]  # the note is the daemon's to drop

    # the daemon's first period makes the same writes
    real = Runtime(sim, Database(db_path), Settings(fixup_every=0)).rebalancer.decide(
        Runtime(sim, Database(db_path)).snapshot(), {}, set())
    made = [(type(a).__name__, getattr(a, "vcpu", None)) for a in real.actions if a.reason == rebalance_moves.UNDO]
    assert made == [(a["action"], a.get("vcpu")) for a in mends]
    assert all(isinstance(a, (SetAffinity, SetNodeAffinity)) for a in real.actions if a.domid == domid)
