"""Listing the page movers' batch records changes nothing; only recovery sweeps, and never a live writer's.

On Xen, ``batch_records()`` (which ``move-memory --dry-run``, ``memory_move_status`` and the
``memory-moves`` listing call through :func:`move_recovery.pending`) created the run directory
and deleted a half-written record whose file was a minute old and unlocked: a dry run or a
status query removed files, and could remove a record a live mover was still writing (one
stalled between creating its file and locking it).  The listing now only reads; recovery
(:func:`move_recovery.recover`) sweeps, and only a record whose writer process is gone.
"""
import os
import subprocess
import sys
import time

import pytest

from xapi_numa.backends import xen_records
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.ops import move_recovery
from xapi_numa.state.db import Database
from xapi_numa.state.moves import MoveJournal


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    path = tmp_path / "run"
    monkeypatch.setenv("XAPI_NUMA_RUN_DIR", str(path))
    return path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _half_written(run_dir, domid: int, pid: int, age_s: float = 3600.0) -> str:
    run_dir.mkdir(exist_ok=True)
    path = run_dir / "move-{}.batch.new.{}.{}.0".format(domid, pid, pid)
    path.write_bytes(b"\0" * 8192)
    os.utime(str(path), (time.time() - age_s, time.time() - age_s))
    return path.name


def test_listing_creates_no_run_directory(run_dir):
    assert xen_records.domids_with_records() == []
    assert not run_dir.exists()


def test_listing_removes_nothing_not_even_a_dead_writers_file(run_dir):
    dead = _half_written(run_dir, 7, _dead_pid())
    (run_dir / "move-3.batch").write_bytes(b"\0" * 8192)
    assert xen_records.domids_with_records() == [3]
    assert sorted(os.listdir(str(run_dir))) == sorted([dead, "move-3.batch"])


def test_the_sweep_leaves_a_live_writers_record_however_old_and_unlocked(run_dir):
    """The writer lives (this process), between creating its file and locking it: an hour
    old and unlocked, it is still being written."""
    live = _half_written(run_dir, 7, os.getpid())
    assert xen_records.sweep_unfinished_records() == []
    assert os.listdir(str(run_dir)) == [live]


def test_the_sweep_removes_a_dead_writers_old_record_only(run_dir):
    old = _half_written(run_dir, 7, _dead_pid())
    young = _half_written(run_dir, 8, _dead_pid(), age_s=0.0)  # (its pid came round again: not yet)
    swept = xen_records.sweep_unfinished_records()
    assert len(swept) == 1 and old in swept[0] and "died" in swept[0]
    assert os.listdir(str(run_dir)) == [young]


def test_recovery_sweeps_and_a_pending_query_does_not(tmp_path):
    """:func:`move_recovery.recover` asks the backend to sweep; :func:`move_recovery.pending`
    (a dry run's, a status query's) never does."""
    calls = []

    class Sweeping(SimHypervisor):
        def sweep_batch_records(self):
            calls.append("swept")
            return ["removed move-7.batch.new.1.1.0"]

    sim = Sweeping.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 2 << 30), "credit2", 1)
    journal = MoveJournal(Database(str(tmp_path / "state.db")))
    assert move_recovery.pending(sim, journal) == [] and calls == []
    assert move_recovery.recover(sim, journal) == ["removed move-7.batch.new.1.1.0"] and calls == ["swept"]
