"""A state database of a newer schema than this code's (written by a newer xapi-numa, then
the package downgraded) was opened without a word: its version was taken as "up to date"
and older code read and wrote tables it did not know.  It is refused now, unread and
unchanged, with a NUMA_STATE_ERROR naming the file, both versions and what the admin can
do, at every entry point: the CLI (exit 1), the plugin (a XenAPI failure), xapi-numad (at
its start, and when the file it has open is replaced by such a one: it stops, exit 1)."""
import json
import os
import re
import sqlite3
import subprocess
import sys

import pytest

from test_plugin import err, run
from xapi_numa import daemon
from xapi_numa.cli.main import main as cli_main
from xapi_numa.errors import StateError
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database, open_to_read
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.schema import SCHEMA_VERSION

NEWER = SCHEMA_VERSION + 1
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _replace(newer: str, path: str) -> None:
    """``path`` replaced by the file ``newer`` as docs/placement.md says to move it: with its -wal and -shm."""
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    os.replace(newer, path)


def _newer_file(path: str) -> bytes:
    """A database file as a newer xapi-numa leaves it (its version above ours), and its bytes."""
    ledger = Ledger(path)
    ledger.reserve("vm-a", {0: 1 << 30}, 60, lambda: {0: 2 << 30})
    ledger.db.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version={}".format(NEWER))
    conn.execute("PRAGMA journal_mode=DELETE")  # (all in the one file: its bytes say it is unchanged)
    conn.close()
    with open(path, "rb") as f:
        return f.read()


def _says_what_to_do(message: str, path: str) -> None:
    assert path in message and "version {}".format(NEWER) in message, message
    assert "version {} that this xapi-numa knows".format(SCHEMA_VERSION) in message, message
    assert "Upgrade xapi-numa again" in message and "aside" in message and "lost" in message, message


@pytest.mark.parametrize("opener", [Database, open_to_read, lambda p: Ledger(p)])
def test_a_newer_schema_is_refused_unread_and_unchanged(tmp_path, opener):
    path = str(tmp_path / "l.db")
    before = _newer_file(path)
    with pytest.raises(StateError) as refused:
        opener(path)
    assert refused.value.code == "NUMA_STATE_ERROR"
    _says_what_to_do(refused.value.message, path)
    with open(path, "rb") as f:
        assert f.read() == before  # not even switched to WAL
    assert sorted(os.listdir(str(tmp_path))) == ["l.db"]


def test_its_own_version_and_older_ones_open_and_a_missing_file_reads_empty(tmp_path):
    path = str(tmp_path / "l.db")
    Ledger(path).reserve("vm-a", {0: 1 << 30}, 60, lambda: {0: 2 << 30})
    assert Database(path).refused is None and Ledger(path).outstanding() == {0: 1 << 30}
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=12")
    conn.close()
    assert Ledger(path).outstanding() == {0: 1 << 30}  # brought up to date again
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    missing = str(tmp_path / "none.db")
    empty = open_to_read(missing)
    assert empty.in_memory and empty.refused is None and Ledger(db=empty).outstanding() == {}
    assert not os.path.exists(missing)


def test_a_newer_version_that_sets_the_file_up_first_is_not_written_over(tmp_path):
    """The version is read again under the write lock: a newer process that set the file up
    between our first read and our transaction keeps its number (ours written over it would
    make the newer code take its own file for an old one)."""
    path = str(tmp_path / "l.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=3")  # an old file; the newer process brings it up first
    conn.close()

    class Racing(Database):
        def _check_schema(self, found):
            if found == 3:  # our first read: the newer one takes the file now
                other = sqlite3.connect(self.path)
                other.execute("PRAGMA user_version={}".format(NEWER))
                other.close()
            super()._check_schema(found)

    with pytest.raises(StateError) as refused:
        Racing(path)
    _says_what_to_do(refused.value.message, path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == NEWER
    conn.close()


def test_the_cli_says_it_and_exits_1(tmp_path, capsys):
    path = str(tmp_path / "l.db")
    _newer_file(path)
    code = cli_main(["reservations", "--ledger", path])
    out, text = capsys.readouterr()
    assert code == 1 and out == "" and "Traceback" not in text and text.startswith("xapi-numa: error: ")
    _says_what_to_do(text, path)


def test_the_plugin_answers_a_state_error(ctx, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", REPO)  # (the plugin runs as xapi runs it: this tree's code)
    server, _, host, sid = ctx
    path = server.ledgers[host]
    _newer_file(path)
    details = err(run(server, host, sid, "host_topology", {}))
    assert details[0] == "NUMA_STATE_ERROR", details
    _says_what_to_do(details[1], path)


def _sim_host(path: str):
    from xapi_numa.backends.sim.backend import SimHypervisor
    from xapi_numa.core.topology import Topology
    return SimHypervisor.init(path, Topology.uniform(2, 4, 4 << 30), "credit", 3, dom0_vcpus=1,
                              dom0_memory=128 << 20)


def test_xapi_numad_refuses_to_start_on_it(tmp_path):
    path = str(tmp_path / "h.json")
    _sim_host(path)
    _newer_file(path + ".ledger.db")
    # (this tree's daemon: the virtualenvs' xapi-numad scripts may import another checkout)
    done = subprocess.run([sys.executable, "-m", "xapi_numa.daemon", "--backend", "sim:" + path, "--no-xapi", "--cycles", "3"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("xapi-numad: error: "), done.stderr
    _says_what_to_do(done.stderr, path + ".ledger.db")


def test_xapi_numad_stops_when_its_file_is_replaced_by_a_newer_ones(tmp_path, caplog):
    """Its next transaction reopens the path and finds the newer file: the loop stops on it
    (raised to ``_run``, which says it and exits 1) instead of failing every cycle for good."""
    host = str(tmp_path / "h.json")
    sim = _sim_host(host)
    path = str(tmp_path / "l.db")
    rt = Runtime(sim, Database(path), Settings())
    rt.cycle()
    newer = str(tmp_path / "newer.db")
    _newer_file(newer)
    _replace(newer, path)
    with pytest.raises(StateError) as refused:
        daemon.run_loop(rt, 0.01, 50, {"now": False})
    _says_what_to_do(refused.value.message, path)
    assert rt.cycles == 1 + 1  # the first cycle on the newer file was the last
    assert not [r for r in caplog.records if "cycle failed" in r.getMessage()]  # said once, by _run


def test_xapi_numad_run_says_it_and_exits_1_when_the_file_is_replaced(tmp_path, monkeypatch, capsys):
    host = str(tmp_path / "h.json")
    _sim_host(host)
    path = str(tmp_path / "l.db")
    newer = str(tmp_path / "newer.db")
    _newer_file(newer)
    real_cycle = Runtime.cycle

    def cycle_then_replace(rt):  # the file replaced under the running daemon after its first cycle
        out = real_cycle(rt)
        if rt.cycles == 1:
            _replace(newer, path)
        return out

    monkeypatch.setattr(Runtime, "cycle", cycle_then_replace)
    code = daemon.main(["--backend", "sim:" + host, "--no-xapi", "--ledger", path, "--period", "0.05",
                        "--cycles", "20"])
    out, text = capsys.readouterr()
    assert code == 1, text
    lines = text.splitlines()
    assert json.loads(lines[0])["event"] == "started" and lines[-1].startswith("xapi-numad: error: "), text
    assert "Traceback" not in text
    _says_what_to_do(lines[-1], path)


def test_install_doc_quotes_this_versions_schema(tmp_path):
    """docs/install.md quotes what a host put back to an older version answers for this version's
    database; it still said schema 15 (refused by a version of 14) after this version's became 16."""
    with open(os.path.join(REPO, "docs", "install.md"), encoding="utf-8") as f:
        text = " ".join(f.read().split())
    quoted = re.findall(r"state database \(schema (\d+)\) was made refuses every call with `NUMA_STATE_ERROR` "
                        r"\(\"(its schema is version (\d+), newer than version (\d+) that this xapi-numa knows)\"",
                        text)
    assert len(quoted) == 1, quoted
    made, said, found, known = quoted[0]
    assert int(made) == int(found) == SCHEMA_VERSION and int(known) == SCHEMA_VERSION - 1, quoted
    path = str(tmp_path / "newer.db")  # the same words from the code, one version on
    _newer_file(path)
    with pytest.raises(StateError) as refused:
        open_to_read(path)
    words = said.replace("version " + found, "version {}".format(NEWER)).replace(
        "version " + known, "version {}".format(SCHEMA_VERSION))
    assert words in refused.value.message, (words, refused.value.message)
