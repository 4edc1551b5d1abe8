"""Queries and dry runs create no state database: where there is none, they read an empty one.

Only ``rebalance --dry-run`` took care of it.  ``topology`` (docs/install.md's first check after
an install), ``top``, ``reservations``, ``memory-moves``, ``place --dry-run``, ``homing
--dry-run``, ``move-memory --dry-run`` and ``vnuma`` each opened the database as xapi-numad
does, creating the file (``h.json.ledger.db`` on a simulated host; on a real one
/var/lib/xapi-numa/ledger.db and its directory), and so did the plugin's read-only
functions.  Where there is a database, a query reads it as before (an older schema brought
up to date as xapi-numad's first open would); commands that change the state still make it."""
import json
import os
import shutil
import sqlite3

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.plugin import functions
from xapi_numa.state import db as state_db
from xapi_numa.state.db import Database
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.schema import SCHEMA_VERSION

GiB = 1 << 30
VM1 = "0b2a7e6e-0000-4000-8000-000000000001"

# every query and dry run of this host's state; "web" is a running PVH guest
QUERIES = [
    ["topology", "--json"],
    ["top", "--once", "--json"],
    ["reservations", "--json"],
    ["memory-moves", "--json"],
    ["memory-moves", "--recover", "--json"],
    ["memory-moves", "web", "--json"],
    ["place", "--dry-run", "--vcpus", "2", "--memory", "1G", "--json"],
    ["place", "--dry-run", "--vcpus", "2", "--memory", "1G", "--vm", VM1, "--json"],
    ["homing", "--dry-run", "--json"],
    ["move-memory", "web", "--to", "1", "--dry-run", "--json"],
    ["vnuma", "v", "--vcpus", "2", "--memory", "1G", "--json"],
    ["vnuma", "v", "--vcpus", "2", "--memory", "1G", "--xl"],
    ["vnuma", "v", "--vcpus", "2", "--memory", "1G", "--split", "1", "--json"],
    ["rebalance", "--dry-run", "--samples", "1", "--json"],
]
# what differs between two runs whatever the database: the seconds a run took, and
# whether rebalance --dry-run found a database (it says so)
VARYING = ("outside_over", "state_database")


@pytest.fixture
def made(tmp_path, monkeypatch):
    """A simulated host with a running guest, made once; a fresh copy of it per call."""
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    monkeypatch.delenv("XAPI_NUMA_BACKEND", raising=False)
    monkeypatch.delenv("XAPI_NUMA_XENAPI_URL", raising=False)
    base = tmp_path / "base"
    base.mkdir()
    path = str(base / "h.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "4G",
                 "--scheduler", "credit2", "--seed", "3"]) == 0
    assert main(["sim", "create", path, "web", "--vcpus", "2", "--memory", "512M", "--type", "pvh",
                 "--soft", "node:0", "--load", "busy"]) == 0
    assert main(["sim", "run", path, "--seconds", "1"]) == 0

    def copy(name: str) -> str:
        where = tmp_path / name
        where.mkdir()
        for name in ("h.json", "h.json.lock"):  # the simulated host's state and its own lock file
            shutil.copy(str(base / name), str(where / name))
        return str(where / "h.json")
    return copy


def _answer(capsys, host: str, argv: list) -> str:
    capsys.readouterr()
    assert main(["--backend", "sim:" + host, *argv]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    if "--json" not in argv:
        return out
    value = json.loads(out)
    for key in VARYING if isinstance(value, dict) else ():
        value.pop(key, None)
    return json.dumps(value, sort_keys=True)


@pytest.mark.parametrize("argv", QUERIES, ids=[" ".join(q[:2]) for q in QUERIES])
def test_a_query_creates_no_database_and_answers_as_with_an_empty_one(made, capsys, argv):
    bare, empty = made("bare"), made("empty")
    Database(empty + ".ledger.db").close()  # an empty database, made as xapi-numad makes it
    before = sorted(os.listdir(os.path.dirname(bare)))
    without = _answer(capsys, bare, argv)
    assert sorted(os.listdir(os.path.dirname(bare))) == before  # no ledger, -wal, -shm, .locks
    assert without == _answer(capsys, empty, argv)


def test_a_change_still_makes_the_database(made, capsys):
    host = made("h")
    _answer(capsys, host, ["place", "--vcpus", "1", "--memory", "256M", "--vm", VM1, "--json"])
    assert os.path.exists(host + ".ledger.db")
    assert [r["vm"] for r in json.loads(_answer(capsys, host, ["reservations", "--json"]))] == [VM1]


def test_a_query_reads_an_older_schema_as_the_daemon_would_upgrade_it(made, capsys):
    """A database left by an older build (schema 8: no reservation totals, no triggers): the
    query reads what it holds and brings it up to date, as every open does."""
    host = made("h")
    _answer(capsys, host, ["place", "--vcpus", "1", "--memory", "256M", "--vm", VM1, "--json"])
    old = sqlite3.connect(host + ".ledger.db")
    for name in ("reservation_total_insert", "reservation_total_delete", "reservation_total_update",
                 "reservation_rows_delete"):
        old.execute("DROP TRIGGER {}".format(name))
    old.execute("DROP TABLE reservation_total")
    old.execute("PRAGMA user_version=8")
    old.commit()
    old.close()
    assert [r["vm"] for r in json.loads(_answer(capsys, host, ["reservations", "--json"]))] == [VM1]
    nodes = json.loads(_answer(capsys, host, ["topology", "--json"]))["nodes"]
    assert sum(n["memory_reserved"] for n in nodes) > 256 << 20
    check = sqlite3.connect(host + ".ledger.db")
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    check.close()


def test_the_plugins_queries_make_neither_the_default_database_nor_its_directory(made, tmp_path, monkeypatch):
    """On a real host: no /var/lib/xapi-numa after host_topology or a what-if place."""
    state = tmp_path / "var" / "lib" / "xapi-numa"
    monkeypatch.setattr(state_db, "DEFAULT_PATH", str(state / "ledger.db"))
    hv = SimHypervisor(made("h"))
    ctx = functions.Context("OpaqueRef:none", hv=hv)
    topology = functions.host_topology(ctx, {})
    what_if = functions.place(ctx, {"vcpus": "2", "memory": "1G"})
    assert not os.path.exists(str(tmp_path / "var"))
    assert topology == functions.host_topology(functions.Context("OpaqueRef:none", hv=hv), {})
    state.mkdir(parents=True)
    Database(str(state / "ledger.db")).close()
    assert functions.host_topology(functions.Context("OpaqueRef:none", hv=hv), {}) == topology
    assert functions.place(functions.Context("OpaqueRef:none", hv=hv), {"vcpus": "2", "memory": "1G"}) == what_if


def test_the_plugins_read_only_functions_through_xapi_make_no_database(ctx):
    """host_topology, place (dry run, what-if), homing, vnuma_plan and memory_move_status, as
    xapi runs the plugin on a host where xapi-numad never ran."""
    from test_plugin import ok, run

    server, session, host, sid = ctx
    _, uuid = server.add_vm("db", 2, GiB)
    calls = [("host_topology", {}), ("place", {"vm": uuid, "dry_run": "true"}),
             ("place", {"vcpus": "2", "memory": "1G"}), ("homing", {}), ("vnuma_plan", {"vm": uuid}),
             ("memory_move_status", {"vm": uuid})]
    ledger = server.ledgers[host]

    def made_there() -> list:  # the database, its -wal and -shm, its .locks (the pool's hosts share a folder)
        return [n for n in os.listdir(os.path.dirname(ledger)) if n.startswith(os.path.basename(ledger))]
    assert made_there() == []
    answers = [ok(run(server, host, sid, fn, args)) for fn, args in calls]
    assert made_there() == []
    Database(ledger).close()
    assert [ok(run(server, host, sid, fn, args)) for fn, args in calls] == answers
    assert ok(run(server, host, sid, "place", {"vm": uuid}))["reserved"] is True  # a change makes it, as before
    assert [r.vm for r in Ledger(ledger).reservations()] == [uuid]


def test_an_empty_database_in_memory_takes_writes_and_leaves_no_file(tmp_path):
    path = str(tmp_path / "ledger.db")
    db = state_db.open_to_read(path)
    assert db.in_memory and db.path == path
    ledger = Ledger(db=db)
    ledger.reserve("vm-a", {0: GiB}, 60, lambda: {0: 4 * GiB})  # (a dry run's code may write: it goes nowhere)
    assert ledger.outstanding() == {0: GiB}
    assert os.listdir(str(tmp_path)) == []
    Database(path).close()
    assert not state_db.open_to_read(path).in_memory


def test_release_where_nothing_was_ever_reserved_makes_no_database(made, capsys):
    """It says there is no reservation, as with an empty database, and leaves nothing behind."""
    bare = made("bare")
    before = sorted(os.listdir(os.path.dirname(bare)))
    capsys.readouterr()
    assert main(["--backend", "sim:" + bare, "release", VM1]) == 1
    assert "no reservation for " + VM1 in capsys.readouterr().err
    assert sorted(os.listdir(os.path.dirname(bare))) == before
    # with a database, the release is made there as before
    _answer(capsys, bare, ["place", "--vcpus", "1", "--memory", "256M", "--vm", VM1, "--json"])
    assert main(["--backend", "sim:" + bare, "release", VM1]) == 0
    assert json.loads(_answer(capsys, bare, ["reservations", "--json"])) == []
