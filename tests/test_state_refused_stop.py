"""xapi-numad and the page movers when the state database's path comes to name a file of a
newer schema (a downgrade: :mod:`test_state_newer_schema`).

The daemon stopped on it (exit 1) but lost the undo journal of its temporary pins with it:
the rows of the file it had were read for the reopen, and dropped when the reopen was
refused, so the vCPUs it had pinned stayed hard-pinned with no journal to undo them.  It now
puts every one back from those rows, kept in memory, before it exits; and its last cycle
says the refusal once (each upkeep step logged an "upkeep step failed" of it).  A page mover
that meets such a file refuses before it touches the guest."""
import json
import logging
import os
import sqlite3

import pytest

from test_daemon_stop import all_unpinned, pinned_host
from test_state_newer_schema import NEWER, _newer_file, _replace, _says_what_to_do
from xapi_numa import daemon
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main as cli_main
from xapi_numa.core.actions import PinTemporarily
from xapi_numa.core.topology import Topology
from xapi_numa.errors import HypervisorError, StateError
from xapi_numa.ops import move_memory
from xapi_numa.ops.executor import Executor
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import MoveJournal
from xapi_numa.state.pins import PinJournal

M = 1 << 20


def _pin_every_vcpu(sim, db, topo) -> int:
    """Temporary pins of ours on every vCPU of the guests, journalled in ``db``: how many."""
    pins = []
    for d in sim.domains():
        if d.domid == 0:
            continue
        home = topo.cpus_of_nodes([d.domid % 2])
        pins += [PinTemporarily(d.domid, d.uuid, v.vcpu, home, topo.all_cpus, "displaced") for v in sim.vcpus(d.domid)]
    Executor(sim, db).apply(pins)
    return len(pins)


def _host_and_a_newer_file(tmp_path):
    """A pinned simulated host with its pins undone (the daemon's start would undo them), the
    daemon's state database's path (``l.db``) and a newer version's file to put in its place."""
    sim, db, topo = pinned_host(tmp_path)
    Runtime(sim, db, Settings()).restore_all_pins("setup")
    db.close()
    newer = str(tmp_path / "newer.db")
    _newer_file(newer)
    return sim, topo, str(tmp_path / "l.db"), newer


def _daemon_meets_a_newer_file(tmp_path, monkeypatch, capsys, pin_refused=False):
    """xapi-numad runs on ``l.db``; after its first cycle it pins every guest's vCPUs and the
    file is replaced by a newer version's.  (exit code, stderr lines, the sim, its topology)"""
    sim, topo, path, newer = _host_and_a_newer_file(tmp_path)
    real_cycle = Runtime.cycle

    def cycle_then_pin_and_replace(rt):
        out = real_cycle(rt)
        if rt.cycles == 1:
            assert _pin_every_vcpu(sim, rt.db, topo) == 8 and len(PinJournal(rt.db).entries()) == 8
            _replace(newer, path)
            if pin_refused:
                monkeypatch.setattr(SimHypervisor, "set_vcpu_affinity", _refuse_affinity)
        return out

    monkeypatch.setattr(Runtime, "cycle", cycle_then_pin_and_replace)
    code = daemon.main(["--backend", "sim:" + sim.path, "--no-xapi", "--ledger", path, "--period", "0.05",
                        "--cycles", "20"])
    _, text = capsys.readouterr()
    assert "Traceback" not in text, text
    return code, text.splitlines(), sim, topo


def _refuse_affinity(self, *args, **kwargs):
    raise HypervisorError(1, "set_vcpu_affinity")


def _events(lines):
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_a_daemon_stopping_on_a_newer_file_puts_back_every_temporary_pin(tmp_path, monkeypatch, capsys):
    code, lines, sim, topo = _daemon_meets_a_newer_file(tmp_path, monkeypatch, capsys)
    assert code == 1 and lines[-1].startswith("xapi-numad: error: ")
    _says_what_to_do(lines[-1], str(tmp_path / "l.db"))
    assert all_unpinned(sim, topo)  # the journal it had: restored from, not lost
    restored = [e for e in _events(lines) if e["event"] == "temporary pins restored" and e["why"] == "stop"]
    assert len(restored) == 1 and restored[0]["restored"] == 8 and restored[0]["left"] == 0, lines
    conn = sqlite3.connect(str(tmp_path / "l.db"))  # the newer version's file: not written to
    assert conn.execute("PRAGMA user_version").fetchone()[0] == NEWER
    assert conn.execute("SELECT COUNT(*) FROM temp_pin").fetchone()[0] == 0
    conn.close()


def test_pins_it_cannot_put_back_then_are_logged_for_the_admin(tmp_path, monkeypatch, capsys):
    """No start can restore them (their journal was in the file now replaced): the log names
    each with the hard affinity to put back, not "the next start restores them"."""
    code, lines, sim, topo = _daemon_meets_a_newer_file(tmp_path, monkeypatch, capsys, pin_refused=True)
    assert code == 1 and lines[-1].startswith("xapi-numad: error: ")
    left = [e for e in _events(lines) if e["event"].startswith("temporary pins left at stop")]
    assert len(left) == 1 and "next start" not in left[0]["event"] and "by hand" in left[0]["event"], lines
    assert left[0]["left"] == 8 and len(left[0]["pins"]) == 8
    assert {p["hard"] for p in left[0]["pins"]} == {"0-7"} and {p["vcpu"] for p in left[0]["pins"]} == {0, 1}


def test_the_last_cycle_says_the_refusal_once(tmp_path, caplog):
    """Each upkeep step of the cycle that met the file logged its own "upkeep step failed"."""
    sim, db, _ = pinned_host(tmp_path, vms=2)
    rt = Runtime(sim, db, Settings())
    rt.cycle()
    newer = str(tmp_path / "newer.db")
    _newer_file(newer)
    _replace(newer, db.path)
    caplog.set_level(logging.INFO)
    with pytest.raises(StateError) as refused:
        daemon.run_loop(rt, 0.01, 50, {"now": False})
    assert refused.value is rt.db.refused
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == [], said


def test_a_reopen_refused_keeps_the_rows_of_the_file_it_had(tmp_path):
    """What the stop restores from: the undo journals of the file the connection had, in memory."""
    sim, db, topo = pinned_host(tmp_path, vms=2)
    newer = str(tmp_path / "newer.db")
    _newer_file(newer)
    _replace(newer, db.path)
    with pytest.raises(StateError):
        PinJournal(db).entries()
    db.keep_in_memory()
    assert db.in_memory and db.refused is not None
    assert len(PinJournal(db).entries()) == 4
    assert daemon.restore_at_stop(Runtime(sim, db, Settings())) is True and all_unpinned(sim, topo)


# --- page movers -------------------------------------------------------------------------------------------
def _guest(tmp_path):
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 2 << 30), "credit2", 1,
                             dom0_vcpus=1, dom0_memory=128 * M)
    domid = sim.create("a", 2, 256 * M, soft=frozenset(sim.topology().cpus_of_nodes([0])), dtype="pvh",
                       load="idle")
    return sim, domid


def _untouched(sim, domid):
    d = next(x for x in sim.domains() if x.domid == domid)
    return not d.paused and sim.node_pages(domid)[1] == 0 and sim.batch_records() == []


@pytest.mark.parametrize("background", [True, False])
def test_a_page_mover_meeting_a_newer_file_refuses_before_it_touches_the_guest(tmp_path, capsys, background):
    """A background mover (its claimer wrote the row, then the file was replaced) and a
    foreground ``move-memory``: a NUMA_STATE_ERROR, exit 1, the guest neither paused nor moved."""
    sim, domid = _guest(tmp_path)
    path = str(tmp_path / "l.db")
    words = ["--backend", "sim:" + sim.path, "move-memory", str(domid), "--to", "1", "--ledger", path]
    lock = None
    if background:
        journal = MoveJournal(Ledger(path).db)
        lock = journal.begin(next(x for x in sim.domains() if x.domid == domid), 1, {"vm": "a", "state": "running"})
        words += ["--json", "--lock-fd", str(os.dup(lock.fd))]
    newer = str(tmp_path / "newer.db")
    _newer_file(newer)
    _replace(newer, path)
    try:
        code = cli_main(words)
    finally:
        if lock is not None:
            lock.release()
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and "Traceback" not in err and err.startswith("xapi-numa: error: "), err
    _says_what_to_do(err, path)
    assert _untouched(sim, domid)


def test_a_page_mover_meeting_a_newer_file_mid_move_stops_after_the_batch_under_way(tmp_path, monkeypatch, capsys):
    """The file replaced while the first batch moves: the mover's next journal write is refused,
    and it stops there, the guest running (its batch gave back its pause), no further batch made."""
    sim, domid = _guest(tmp_path)
    path = str(tmp_path / "l.db")
    Ledger(path).db.close()
    newer = str(tmp_path / "newer.db")
    _newer_file(newer)
    real, batches = SimHypervisor.move_pages, []

    def move_then_replace(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        batches.append(out)
        if len(batches) == 1:
            _replace(newer, path)
        return out

    monkeypatch.setattr(SimHypervisor, "move_pages", move_then_replace)
    code = cli_main(["--backend", "sim:" + sim.path, "move-memory", str(domid), "--to", "1", "--ledger", path,
                     "--rate", "100000"])
    _, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err and err.startswith("xapi-numa: error: "), err
    _says_what_to_do(err, path)
    d = next(x for x in sim.domains() if x.domid == domid)
    assert len(batches) == 1 and not d.paused and sim.batch_records() == []
    assert batches[0].moved > 0 and sim.node_pages(domid)[1] == batches[0].moved


def test_a_batch_that_kept_the_guest_paused_is_recovered_though_the_journal_is_refused(tmp_path, monkeypatch):
    """The batch's unpause failed (its record kept, the guest paused) just as the file was
    replaced: the journal write after the batch was refused before the batch's outcome was
    looked at, and the guest stayed paused with no journal row to lead a recovery to it."""
    sim, domid = _guest(tmp_path)
    path = str(tmp_path / "l.db")
    ledger = Ledger(path)
    newer = str(tmp_path / "newer.db")
    _newer_file(newer)
    plan, lock = move_memory.claim(sim, ledger, str(domid), 1)
    real = SimHypervisor.move_pages

    def move_then_replace(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        _replace(newer, path)
        return out

    monkeypatch.setattr(SimHypervisor, "move_pages", move_then_replace)
    with pytest.raises(StateError) as refused:
        move_memory.run(sim, ledger.db, plan, 1e12, lock=lock, fault="unpause", fault_batch=0)
    _says_what_to_do(refused.value.message, path)
    d = next(x for x in sim.domains() if x.domid == domid)
    assert not d.paused and sim.batch_records() == []


def test_a_file_replaced_just_before_the_stop_still_has_every_pin_put_back(tmp_path, monkeypatch, capsys):
    """The last cycle ran on the file it had; the stop's restore is the first to meet the newer
    one: it said "the next start restores them" and exited 75, though no start could."""
    sim, topo, path, newer = _host_and_a_newer_file(tmp_path)
    real_cycle = Runtime.cycle

    def cycle_then_pin_and_replace(rt):
        out = real_cycle(rt)
        assert _pin_every_vcpu(sim, rt.db, topo) == 8
        _replace(newer, path)
        return out

    monkeypatch.setattr(Runtime, "cycle", cycle_then_pin_and_replace)
    code = daemon.main(["--backend", "sim:" + sim.path, "--no-xapi", "--ledger", path, "--cycles", "1"])
    lines = capsys.readouterr()[1].splitlines()
    assert code == 1 and lines[-1].startswith("xapi-numad: error: ") and "Traceback" not in "\n".join(lines)
    _says_what_to_do(lines[-1], path)
    assert all_unpinned(sim, topo)
    assert not [e for e in _events(lines) if "next start" in e["event"]], lines
