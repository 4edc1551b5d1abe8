"""Review: ``homing --dry-run`` proposed undoing the rebalancer's home move.

On a simulated host the rebalancer moved VM b's home from node 0 to node 1, its memory
then following (a first step made, most of it still on node 0).  xapi-numad's cycle keeps
a VM whose memory follows its home out of the soft-affinity fix-up (restarted, it reads
that from the home-move log); the dry run, in a process of its own, did not: it printed
``SetAffinity ... soft all  88% of its memory is outside its soft affinity`` for b, while
the daemon, run next, made no such write.  The README says the dry run is the same code
path and sees the VMs as the daemon does."""
import sqlite3

import pytest
from test_cli import run_json
from test_review15a_dry_run_follow import _host

from xapi_numa import daemon
from xapi_numa.backends.sim.store import SimStore
from xapi_numa.core import affinity_fixup
from xapi_numa.core.actions import SetAffinity
from xapi_numa.ops import observe
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMoves
from xapi_numa.state.moves import MoveJournal


def _dump(db_path: str) -> list:
    raw = sqlite3.connect(db_path)
    try:
        return list(raw.iterdump())
    finally:
        raw.close()


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def followed(tmp_path, monkeypatch):
    """The host once xapi-numad moved a VM's home and its memory started following: (the
    simulator, its path, the state database's path, the VM's uuid and domid, its new home)."""
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    monkeypatch.setenv("XAPI_NUMA_RUN_DIR", str(tmp_path))
    sim, path = _host(tmp_path)
    db_path = SimStore(path).ledger_path  # where the CLI and xapi-numad keep a simulated host's state
    rt = Runtime(sim, Database(db_path), Settings())
    for _ in range(10):
        rt.cycle()
        if HomeMoves(rt.db).recent():
            break
        sim.run(2.0)
    moved = HomeMoves(rt.db).recent()
    assert len(moved) == 1 and MoveJournal(rt.db).status(moved[0].uuid) is not None, moved
    uuid, to = moved[0].uuid, moved[0].to_node
    rt.db.close()
    domid = next(d.domid for d in sim.domains() if d.uuid == uuid)
    sim.run(0.5)  # its first step done
    # what the fix-up alone makes of it: its memory mostly on the node it left, point it there
    snap = observe.take(sim, with_pages=True)
    assert [a.domid for a in affinity_fixup.plan(snap)] == [domid] * 2
    return sim, path, db_path, uuid, domid, to


def test_homing_dry_run_leaves_memory_following_its_home_alone_as_the_daemon_does(followed, capsys, monkeypatch):
    sim, path, db_path, uuid, domid, to = followed
    home = sim.topology().cpus_of_nodes([to])
    assert all(v.soft == home for v in sim.vcpus(domid))
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + path)
    rows, state = _dump(db_path), _read(path)
    plan = run_json(capsys, "homing", "--dry-run", "--json")  # a process of its own: a Runtime of its own
    assert [a for a in plan["actions"] if a["domid"] == domid and a["action"] == "SetAffinity"] == [], plan
    db = Database(db_path)  # the plugin's `homing` builds its Runtime the same way
    outcomes = Runtime(sim, db).what_now()
    db.close()
    assert [o for o in outcomes if o.action.domid == domid and isinstance(o.action, SetAffinity)] == []
    assert _dump(db_path) == rows and _read(path) == state  # a dry run changes nothing

    # xapi-numad, started now, makes no such write either (its first cycle has the fix-up)
    assert daemon.main(["--backend", "sim:" + path, "--no-xapi", "--cycles", "3", "--period", "0.05"]) == 0
    assert all(v.soft == home for v in sim.vcpus(domid)), [sorted(v.soft) for v in sim.vcpus(domid)]
