"""What the xapi-numa command prints for people: frames on a pipe, hostile names in
tables, dated expiry times; and the sizes and names ``sim create`` accepts."""
import json
import re
import sys
import time

import pytest

from xapi_numa.cli.main import main

VM1 = "0b2a7e6e-0000-4000-8000-000000000001"


@pytest.fixture
def host(tmp_path, monkeypatch):
    path = str(tmp_path / "host.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "2G",
                 "--scheduler", "credit", "--seed", "5"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{path}")
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    return path


def run_json(capsys, *argv):
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def _top_frames(capsys, monkeypatch, frames: int) -> str:
    """``top`` (refreshing) for ``frames`` frames, its sleep cut short by ^C."""
    import xapi_numa.cli.queries as queries_cli

    naps = []

    def nap(seconds):
        naps.append(seconds)
        if len(naps) == frames:
            raise KeyboardInterrupt

    monkeypatch.setattr(queries_cli.time, "sleep", nap)
    capsys.readouterr()
    assert main(["top", "--interval", "0.1"]) == 130
    return capsys.readouterr().out


def test_top_on_a_pipe_prints_plain_frames_without_terminal_codes(host, capsys, monkeypatch):
    out = _top_frames(capsys, monkeypatch, 2)  # capsys's stdout is not a TTY, as a pipe is not
    assert "\x1b" not in out
    assert out.count("xapi-numa top") == 2 and out.count("outside soft affinity over 2 refreshes") == 1


def test_top_on_a_terminal_still_refreshes_in_place(host, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    out = _top_frames(capsys, monkeypatch, 2)
    assert out.count("\x1b[H\x1b[2J") == 2


HOSTILE = "evil\nname\twith\x1bcodes\u2028"


@pytest.mark.parametrize("command", [["memory"], ["vcpus"], ["top", "--once"]])
def test_control_characters_in_names_do_not_break_tables(host, capsys, command):
    assert main(["sim", "create", host, HOSTILE, "--vcpus", "1", "--memory", "64M"]) == 0
    capsys.readouterr()
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\t" not in out and "\u2028" not in out
    rows = [line for line in out.splitlines() if "evil" in line]
    # one row, the name shown escaped as Python writes it, the other columns still on that line
    assert len(rows) == 1 and "evil\\nname\\twith\\x1bcodes\\u2028" in rows[0]
    assert not any(line.startswith("name") for line in out.splitlines())


def test_json_keeps_names_exact(host, capsys):
    assert main(["sim", "create", host, HOSTILE, "--vcpus", "1", "--memory", "64M"]) == 0
    rows = run_json(capsys, "memory", "--json")
    assert HOSTILE in [r["name"] for r in rows]


def test_place_shows_the_expiry_with_its_date(host, capsys):
    capsys.readouterr()
    assert main(["place", "--vcpus", "1", "--memory", "256M", "--vm", VM1, "--ttl", "86400"]) == 0
    text = capsys.readouterr().out
    expires = run_json(capsys, "reservations", "--json")[0]["expires"]
    # a lease of up to 24 h may end tomorrow: the day is part of the answer
    assert "reserved: for {} until {}".format(VM1, time.strftime("%Y-%m-%d %H:%M:%S",
                                                                 time.localtime(expires))) in text
    assert re.search(r"until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", text.strip())


@pytest.mark.parametrize("size", ["1", "4K", "1023K", "1048575"])
def test_sim_create_refuses_memory_below_one_mib(host, capsys, size):
    before = open(host).read()
    capsys.readouterr()
    assert main(["sim", "create", host, "tiny", "--vcpus", "1", "--memory", size]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xapi-numa: error: --memory: ") and "(allowed: 1M .. " in err
    assert len(err.strip().splitlines()) == 1 and open(host).read() == before


def test_sim_create_takes_one_mib(host, capsys):
    assert main(["sim", "create", host, "small", "--vcpus", "1", "--memory", "1M"]) == 0
    rows = run_json(capsys, "memory", "--json")
    assert [r["total"] for r in rows if r["name"] == "small"] == [1 << 20]


def test_sim_create_refuses_a_name_that_is_another_domains_uuid(host, capsys):
    assert main(["sim", "create", host, "a", "--vcpus", "1", "--memory", "64M"]) == 0
    from xapi_numa.backends.sim.backend import SimHypervisor
    uuid = next(d.uuid for d in SimHypervisor(host).domains() if d.name == "a")
    before = open(host).read()
    for name in (uuid, uuid.upper(), "00000000-0000-0000-0000-000000000000"):  # dom0's too
        capsys.readouterr()
        assert main(["sim", "create", host, name, "--vcpus", "1", "--memory", "64M"]) == 2
        err = capsys.readouterr().err
        assert "name: {!r} is the UUID of domain".format(name) in err and len(err.strip().splitlines()) == 1
    assert open(host).read() == before


def test_sim_refuses_a_uuid_that_is_another_domains_name(host):
    from xapi_numa.backends.sim.backend import SimHypervisor
    from xapi_numa.errors import InvalidArgument

    sim = SimHypervisor(host)
    sim.create(VM1, 1, 64 << 20, load="idle")
    with pytest.raises(InvalidArgument) as err:
        sim.create("b", 1, 64 << 20, load="idle", uuid=VM1.upper())
    assert err.value.field == "uuid"


def test_the_rebalancer_decision_line_shows_vm_names_escaped(host, capsys):
    """The decision names VMs (Candidate.explain): a name with a newline and an escape
    code split the line and drove the terminal."""
    for name, pin in (("busy\n1\x1b[7m", []), ("b2", ["--hard", "node:0"]), ("b3", ["--hard", "node:0"])):
        assert main(["sim", "create", host, name, "--vcpus", "2", "--memory", "512M", "--soft", "node:0",
                     "--load", "busy"] + pin) == 0  # (pinned by their admin: the hostile name is the one to move)
    assert main(["sim", "run", host, "--seconds", "5"]) == 0
    capsys.readouterr()
    assert main(["rebalance", "--dry-run"]) == 0
    out = capsys.readouterr().out
    decision = [line for line in out.splitlines() if line.startswith("decision:")]
    assert len(decision) == 1 and "\x1b" not in out and "busy\\n1" in decision[0], out


def test_the_rebalance_dry_run_asks_xapi_which_vms_it_may_move(host, capsys, monkeypatch):
    """The dry run built its runtime with no policies and no opt-outs: it proposed moving
    VMs xapi-numad leaves alone (numa_rebalance=false, a preferred list, not listed yet)."""
    from xapi_numa.cli import rebalance as cli_rebalance
    from xapi_numa.core.policy import Policy
    for name in ("a", "b", "c"):
        assert main(["sim", "create", host, name, "--vcpus", "2", "--memory", "512M", "--soft", "node:0",
                     "--load", "busy"]) == 0
    assert main(["sim", "run", host, "--seconds", "5"]) == 0
    capsys.readouterr()
    assert main(["rebalance", "--dry-run", "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert alone["xapi"].startswith("not consulted") and alone["actions"]

    class EveryVmOptedOut:
        closed = False

        def __init__(self, login, clock):
            pass

        def policy_of(self, uuid):
            return Policy()

        def rebalance_opted_out(self, uuid):
            return True

        def policy_error(self, uuid):
            return None

        def guest_cpus(self):
            return None

        read = True

        def close(self):
            EveryVmOptedOut.closed = True
    real = cli_rebalance.XapiLink
    monkeypatch.setattr(cli_rebalance, "XapiLink", EveryVmOptedOut)
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", "http://127.0.0.1:9")   # as the loopback pool's tests name theirs
    assert main(["rebalance", "--dry-run", "--json"]) == 0
    asked = json.loads(capsys.readouterr().out)
    assert asked["xapi"] == "consulted" and asked["actions"] == [] and EveryVmOptedOut.closed
    monkeypatch.setattr(cli_rebalance, "XapiLink", real)  # to a xapi that is not there: said so
    assert main(["rebalance", "--dry-run", "--json"]) == 0
    away = json.loads(capsys.readouterr().out)
    assert away["xapi"].startswith("unreachable") and away["actions"] == []


def test_on_an_ascii_locale_names_with_accents_are_shown_escaped_and_found_as_typed(tmp_path):
    """dom0's Python 3.6 under cron or a systemd unit (no LANG) writes ASCII: one VM named
    with an accent made every table an internal error, and could not be named."""
    import os
    import subprocess

    path = str(tmp_path / "h.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "1G"]) == 0
    assert main(["sim", "create", path, "h\u00e9llo", "--vcpus", "1", "--memory", "64M"]) == 0
    env = {"PATH": os.environ["PATH"], "LANG": "C", "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0",
           "PYTHONUTF8": "0", "PYTHONIOENCODING": "ascii", "XAPI_NUMA_BACKEND": "sim:" + path,
           "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    for argv in (["memory"], ["vcpus", "h\u00e9llo"]):
        done = subprocess.run([sys.executable, "-m", "xapi_numa.cli", *argv], capture_output=True, env=env)
        assert done.returncode == 0, done.stderr
        assert b"h\\xe9llo" in done.stdout
    done = subprocess.run([sys.executable, "-m", "xapi_numa.cli", "vcpus", "n\u00e9"], capture_output=True, env=env)
    assert done.returncode == 1 and b"no such VM or domain: n\\xe9 (allowed: " in done.stderr


def test_names_in_plans_and_errors_come_escaped(host, capsys):
    assert main(["sim", "create", host, "evil\x1b[2J\nline2", "--vcpus", "1", "--memory", "64M", "--type", "pvh"]) == 0
    assert main(["sim", "create", host, "pv\x1b[2Jx", "--vcpus", "1", "--memory", "64M", "--type", "pv"]) == 0
    capsys.readouterr()
    assert main(["move-memory", "1", "--to", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "evil\\x1b[2J\\nline2 (domid 1)" in out and "\x1b" not in out
    assert main(["move-memory", "2", "--to", "1"]) == 1
    err = capsys.readouterr().err
    assert "pv\\x1b[2Jx" in err and "\x1b" not in err


def test_topology_bounds_each_node_by_a_host_wide_claim(host, capsys):
    """A host-wide claim (stock Xen's) is on no node: topology showed every node's full
    claimable memory while place refused for want of it."""
    from xapi_numa.backends.sim.backend import SimHypervisor

    sim = SimHypervisor(host)
    domid = sim.create("building", 1, 64 << 20, paused=True)
    with sim.store.transaction() as state:  # a build raises its maximum before it claims
        state.domains[domid].max_pages = (4 << 30) >> 12
    sim.claim(domid, (3 << 30) >> 12)  # host-wide: no node named
    report = run_json(capsys, "topology", "--json")
    free_after = sum(n["memory_free"] for n in report["nodes"]) - report["memory_claimed_host_wide"]
    assert report["memory_claimed_host_wide"] > 2 << 30
    assert all(n["memory_claimable"] <= free_after for n in report["nodes"])
    assert main(["topology"]) == 0 and "claimed host-wide: " in capsys.readouterr().out


def test_a_path_that_is_not_a_simulated_host_gets_nothing_beside_it_and_is_never_replaced(tmp_path, capsys):
    other = tmp_path / "passwd"
    other.write_text("root:x:0:0:root:/root:/bin/bash\n")
    assert main(["--backend", "sim:" + str(other), "topology"]) == 1
    assert "not JSON" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]  # no passwd.lock
    assert main(["sim", "init", str(other), "--force", "--nodes", "2", "--cpus-per-node", "2",
                 "--memory-per-node", "1G"]) == 2  # refused input (PATH)
    assert "not a simulated host" in capsys.readouterr().err
    assert other.read_text() == "root:x:0:0:root:/root:/bin/bash\n"


def test_an_output_that_cannot_be_written_is_said_in_one_line(host):
    """A full disk under the output was an 'internal error' (exit 70), after place had
    reserved: the command's effect stands and the line says so."""
    import os
    import subprocess

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
               XAPI_NUMA_BACKEND="sim:" + host)
    # every command, not only those printing through emit (sim create, top, homing, vnuma --xl
    # printed directly: "internal error", exit 70, the domain made all the same)
    for argv in (["topology"], ["sim", "create", "--help"],
                 ["sim", "create", host, "FULL", "--vcpus", "1", "--memory", "64M"],
                 ["top", "--once"], ["homing", "--dry-run"], ["vnuma", "X", "--vcpus", "2", "--memory", "1G", "--xl"]):
        with open("/dev/full", "w") as full:
            done = subprocess.run([sys.executable, "-m", "xapi_numa.cli", *argv], stdout=full,
                                  stderr=subprocess.PIPE, universal_newlines=True, env=env)
        assert done.returncode == 1, (argv, done.stderr)
        assert done.stderr.strip().splitlines() == [
            "xapi-numa: error: cannot write the output (No space left on device); what the command reports was "
            "done all the same"], argv


def test_on_an_ascii_locale_a_path_with_an_accent_still_works(tmp_path):
    import os
    import subprocess

    env = {"PATH": os.environ["PATH"], "LANG": "C", "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0",
           "PYTHONUTF8": "0", "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    path = os.path.join(str(tmp_path), "h\u00e9.json").encode("utf-8")
    done = subprocess.run([sys.executable.encode(), b"-m", b"xapi_numa.cli", b"sim", b"init", path, b"--nodes",
                           b"1", b"--cpus-per-node", b"1", b"--memory-per-node", b"1G"], capture_output=True,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert os.path.exists(path)


def test_sim_init_force_replaces_an_empty_or_truncated_state(tmp_path):
    for text in ("", '{"version": 3, "topol'):
        path = tmp_path / "h.json"
        path.write_text(text)
        assert main(["sim", "init", str(path), "--force", "--nodes", "1", "--cpus-per-node", "1",
                     "--memory-per-node", "1G"]) == 0
        assert json.loads(path.read_text())["topology"]


def test_homing_and_move_memory_dry_runs_say_whether_xapi_was_consulted(host, capsys, monkeypatch):
    """Both read xapi (policies and the guest mask) as rebalance --dry-run does, but
    only rebalance said whether they had: an unreachable xapi looked like no mask."""
    assert main(["sim", "create", host, "a", "--vcpus", "2", "--memory", "512M", "--soft", "node:0",
                 "--load", "busy", "--type", "pvh"]) == 0
    assert main(["sim", "run", host, "--seconds", "2"]) == 0
    commands = (["homing", "--dry-run", "--json"], ["move-memory", "a", "--to", "1", "--dry-run", "--json"])
    capsys.readouterr()
    for argv in commands:
        assert main(argv) == 0
        assert json.loads(capsys.readouterr().out)["xapi"].startswith("not consulted"), argv
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", "http://127.0.0.1:9")  # a xapi that is not there
    for argv in commands:
        assert main(argv) == 0
        assert json.loads(capsys.readouterr().out)["xapi"].startswith("unreachable"), argv
    assert main(["homing", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("xapi: unreachable")


def test_move_memory_says_xapi_was_consulted_when_it_answered(pool, monkeypatch, capsys):
    """It reads only the host's guest mask, and judged 'consulted' by the VM records'
    read, which it never makes: every answer said 'unreachable' (found by review)."""
    server, session = pool
    host = session.xenapi.host.get_all()[0]
    domid = server.sims[host].create("vm", 2, 256 << 20, soft=frozenset({0, 1, 2, 3}), dtype="pvh", load="idle")
    for key, value in server.plugin_env(host).items():
        if key.startswith("XAPI_NUMA_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("XAPI_NUMA_POOL_PASSWORD", "xenroot")
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "1,2,3,6"})
    capsys.readouterr()
    assert main(["move-memory", str(domid), "--to", "1", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["xapi"] == "consulted"
    assert server.calls["host.get_guest_VCPUs_params"] >= 1
