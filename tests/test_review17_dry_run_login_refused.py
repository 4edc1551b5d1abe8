"""The dry runs that read xapi as xapi-numad does (``rebalance --dry-run``, ``homing
--dry-run``, ``move-memory --dry-run``) say a refused login (a wrong password:
SESSION_AUTHENTICATION_FAILED) as a refused login, naming the user and where, never
the password, and not as "xapi: unreachable".

They said "xapi: unreachable", as for a xapi that is away: the admin looked for a
stopped toolstack while the password was wrong (the pool commands and xapi-numad's log
already said "refused the login of user ...")."""
import json

import pytest

from xapi_numa.cli.main import main

SECRET = "not-the-password-42"


@pytest.fixture
def refusing(pool, tmp_path, monkeypatch):
    """A simulated host whose dry runs log in to the loopback xapi with a wrong password."""
    server, _ = pool
    dry_run_host(server, tmp_path, monkeypatch, SECRET)
    return server


def dry_run_host(server, tmp_path, monkeypatch, password: str) -> None:
    """A simulated host with one busy VM, ``a``, whose dry runs read the loopback xapi
    ``server`` as root with ``password``."""
    path = str(tmp_path / "host.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "2G"]) == 0
    assert main(["sim", "create", path, "a", "--vcpus", "2", "--memory", "512M", "--soft", "node:0",
                 "--load", "busy", "--type", "pvh"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + path)
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", server.url)
    monkeypatch.setenv("XAPI_NUMA_POOL_USER", "root")
    monkeypatch.setenv("XAPI_NUMA_POOL_PASSWORD", password)


COMMANDS = [["rebalance", "--dry-run"], ["homing", "--dry-run"], ["move-memory", "a", "--to", "1", "--dry-run"]]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: a[0])
def test_a_refused_login_is_said_naming_the_user_and_where(refusing, capsys, argv):
    server = refusing
    capsys.readouterr()
    assert main(argv + ["--json"]) == 0
    said = json.loads(capsys.readouterr().out)["xapi"]
    assert said.startswith("login refused: xapi at " + server.url), said
    assert "refused the login of user 'root'" in said and "SESSION_AUTHENTICATION_FAILED" in said, said
    assert "unreachable" not in said and SECRET not in said
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("xapi: login refused: xapi at " + server.url) and SECRET not in out, out


def test_a_xapi_that_is_away_is_still_unreachable(refusing, capsys, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", "http://127.0.0.1:9")  # nothing there
    capsys.readouterr()
    assert main(["rebalance", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("xapi: unreachable: every VM is left alone")
