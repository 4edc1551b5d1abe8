"""Review 16: a live migration (or a suspend) that starts during a memory move was not
noticed between batches: the mover went on moving pages of a domain whose memory was
being copied away.  The plugin refuses to start a move while xapi runs one of those
operations (current_operations); the mover now asks xapi again before each batch and
stops there, cleanly (no batch in flight: its pause, raised maximum and batch record are
given back by the batch itself), saying why."""
import json

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli import rebalance as cli_rebalance
from xapi_numa.cli.main import main
from xapi_numa.core.topology import Topology
from xapi_numa.errors import MoveStopped
from xapi_numa.ops import move_memory, move_refusals
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import MoveJournal, STOPPED

MiB = 1 << 20


def ticks():
    """A clock a second further on at each reading: xapi is asked before every batch."""
    now = [0.0]

    def clock():
        now[0] += 1.0
        return now[0]
    return clock


class Session:
    """xapi as the watch reads it: ``busy_from`` calls in, the VM is being migrated."""

    def __init__(self, busy_from: int, operation: str = "migrate_send") -> None:
        self.calls, self.busy_from, self.operation = 0, busy_from, operation
        self.xenapi = self
        self.VM = self

    def get_by_uuid(self, uuid):
        return "OpaqueRef:vm"

    def get_current_operations(self, ref):
        self.calls += 1
        return {"OpaqueRef:task": self.operation} if self.calls >= self.busy_from else {}


def test_a_migration_started_during_the_move_stops_it_before_the_next_batch(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "host.json"), Topology.uniform(2, 2, 1 << 30), "credit2", 3,
                            dom0_vcpus=2, dom0_memory=64 * MiB)
    domid = hv.create("g", 2, 64 * MiB, hard=frozenset({0, 1}), dtype="pvh", load="busy")
    plan = move_memory.prepare(hv, "g", 1, batch=256)
    session = Session(busy_from=3)
    db = Ledger(str(tmp_path / "l.db")).db
    with pytest.raises(MoveStopped) as stopped:
        move_memory.run(hv, db, plan, still_movable=move_refusals.xapi_watch(lambda fn: fn(session), plan.domain.uuid,
                                                                     clock=ticks()))
    report = json.loads(stopped.value.params[2])
    assert report["state"] == STOPPED and report["batches"] == 2
    assert "stopped before batch 3 of" in report["error"] and "xapi is running migrate_send on it" in report["error"]
    assert MoveJournal(db).status(plan.domain.uuid).state == STOPPED  # finished: nothing for recovery
    assert hv.batch_records() == [] and not hv.domain(domid).paused


def test_xapi_is_asked_at_most_once_a_second():
    session, now = Session(busy_from=2), [0.0]
    watch = move_refusals.xapi_watch(lambda fn: fn(session), "u", clock=lambda: now[0])
    assert watch() is None and session.calls == 1
    now[0] = 0.5
    assert watch() is None and session.calls == 1  # not asked again yet
    now[0] = 1.0
    assert watch() == "xapi is running migrate_send on it" and session.calls == 2


def test_the_watch_names_only_the_operations_that_forbid_a_move():
    assert move_refusals.xapi_watch(lambda fn: fn(Session(1, "pool_migrate")), "u")() == \
        "xapi is running pool_migrate on it"
    assert move_refusals.xapi_watch(lambda fn: fn(Session(1, "start")), "u")() is None
    assert move_refusals.xapi_watch(lambda fn: None, "u")() is None  # xapi away: the batches go on


def test_the_move_memory_command_watches_xapi_between_batches(tmp_path, monkeypatch, capsys):
    """The command a background mover runs (the plugin's and xapi-numad's moves) asks xapi."""
    path = str(tmp_path / "h.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "2G"]) == 0
    assert main(["sim", "create", path, "g", "--vcpus", "1", "--memory", "64M", "--type", "pvh",
                 "--soft", "node:0"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + path)
    monkeypatch.setenv("XAPI_NUMA_LEDGER", str(tmp_path / "l.db"))
    session = Session(busy_from=1, operation="suspend")  # (a simulated host's clock stands still in a move)

    class Link:
        closed = False

        def use(self, fn):
            return fn(session)

        def close(self):
            Link.closed = True
    monkeypatch.setattr(cli_rebalance, "local_link", lambda args: None if args.no_xapi else Link(), raising=False)
    capsys.readouterr()
    assert main(["move-memory", "g", "--to", "1", "--batch", "256", "--guest-cpus", "0-3", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["state"] == STOPPED and report["batches"] == 0 and "suspend" in report["error"]
    assert "stopped before batch 1 of" in report["error"]
    assert Link.closed
