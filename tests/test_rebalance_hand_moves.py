"""A move made by hand holds the VM down as the rebalancer's own moves do.

``xapi-numa move-memory`` (and the plugin's ``move_memory``, whose background mover is
the same command) moves a VM's memory and then its home (node and soft affinity follow
the memory).  Nothing noted it in the home-move log, which is what the rebalancer's
hold-down reads: on its next period the rebalancer could move the VM straight back."""
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.core import rebalance
from xapi_numa.core.actions import SetNodeAffinity
from xapi_numa.core.topology import Topology
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HAND, HomeMoves

GiB = 1 << 30


def _host(tmp_path, monkeypatch):
    """Node 0: VM a (busy, 2 vCPUs, 512 MiB); node 1: b and c (busy, 2 vCPUs, 1 GiB each) on
    its 4 pCPUs.  The admin moves a's memory to node 1 by hand: its home follows there, and
    of the three VMs node 1 now overloads, a (the least memory) is the cheapest to move."""
    path = str(tmp_path / "h.json")
    sim = SimHypervisor.init(path, Topology.uniform(2, 4, 8 * GiB), "credit2", 1)
    topo = sim.topology()
    sim.create("a", 2, GiB // 2, soft=topo.cpus_of_nodes([0]), load="busy", dtype="pvh")
    for name in "bc":
        sim.create(name, 2, GiB, soft=topo.cpus_of_nodes([1]), load="busy", dtype="pvh")
    sim.run(4.0)
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + path)
    db_path = str(tmp_path / "ledger.db")
    assert main(["move-memory", "a", "--to", "1", "--ledger", db_path]) == 0
    return sim, db_path


def _uuid(sim, name):
    return next(d.uuid for d in sim.domains() if d.name == name)


def test_a_vm_moved_by_hand_is_not_moved_back_within_the_hold_down(tmp_path, monkeypatch, capsys):
    sim, db_path = _host(tmp_path, monkeypatch)
    a = _uuid(sim, "a")
    assert sim.node_affinity(next(d.domid for d in sim.domains() if d.name == "a")) == frozenset([1])
    moves = HomeMoves(Database(db_path)).latest(sim.clock())
    assert a in moves and moves[a].kind == HAND and moves[a].to_node == 1
    dry = Runtime(sim, Database(db_path), Settings(fixup_every=0)).rebalance_dry_run(samples=3)
    homed = {x.uuid for x in dry.actions if isinstance(x, SetNodeAffinity)}
    assert homed and a not in homed, dry.note  # the rebalancer relieves node 1 with b or c


def test_the_hold_down_of_a_hand_move_ends_as_the_rebalancers_own(tmp_path, monkeypatch, capsys):
    """After the hold-down, the VM is the rebalancer's again (here the cheapest to move)."""
    sim, db_path = _host(tmp_path, monkeypatch)
    sim.run(rebalance.Settings().hold_down + 1)
    dry = Runtime(sim, Database(db_path), Settings(fixup_every=0)).rebalance_dry_run(samples=3)
    assert _uuid(sim, "a") in {x.uuid for x in dry.actions if isinstance(x, SetNodeAffinity)}, dry.note


def test_a_hand_move_does_not_make_the_daemon_follow_its_memory(tmp_path, monkeypatch, capsys):
    """A daemon started after the hand move: no memory "follows" the home the admin gave it
    (a hand move moves what the admin asked, ``--max`` perhaps, not the rebalancer's 90 %)."""
    sim, db_path = _host(tmp_path, monkeypatch)
    rt = Runtime(sim, Database(db_path), Settings(fixup_every=0))
    rt.rebalancer.following.resume(rt.snapshot())
    assert _uuid(sim, "a") not in rt.rebalancer.following.followed


def test_top_counts_a_hand_move_as_none_of_the_rebalancers(tmp_path, monkeypatch, capsys):
    sim, db_path = _host(tmp_path, monkeypatch)
    assert Runtime(sim, Database(db_path), Settings(fixup_every=0)).rebalancer.counts() == {}
