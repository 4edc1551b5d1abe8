"""The xapi-numa command: queries with --json, sim scripting, clear errors."""
import json
import os
import subprocess
import sys

import pytest

from xapi_numa.cli.main import main


@pytest.fixture
def host(tmp_path):
    path = str(tmp_path / "host.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "2G",
                 "--distances", "10,21;21,10", "--scheduler", "credit", "--seed", "5"]) == 0
    return path


def run_json(capsys, *argv):
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_topology_json(host, capsys):
    data = run_json(capsys, "--backend", f"sim:{host}", "topology", "--json")
    assert [n["cpus"] for n in data["nodes"]] == ["0-3", "4-7"]
    assert data["distances"] == [[10, 21], [21, 10]]
    assert data["nodes"][0]["memory_total"] == 2 << 30
    assert data["nodes"][0]["memory_free"] < 2 << 30  # dom0 took some


def test_vcpus_and_memory_json(host, capsys, monkeypatch):
    assert main(["sim", "create", host, "web", "--vcpus", "3", "--memory", "512M", "--soft", "node:1"]) == 0
    assert main(["sim", "run", host, "--seconds", "0.5"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    rows = run_json(capsys, "vcpus", "web", "--json")
    assert len(rows) == 3
    for r in rows:
        assert set(r) >= {"domid", "name", "vcpu", "cpu", "node", "hard", "soft", "outside_soft"}
        assert r["soft"] == "4-7" and r["hard"] == "all" and r["node"] == 1 and r["outside_soft"] is False
    mem = run_json(capsys, "memory", "--json")
    web = [m for m in mem if m["name"] == "web"][0]
    assert web["nodes"] == {"0": 0, "1": 512 << 20}


def test_tables(host, capsys, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    for cmd in ("topology", "vcpus", "memory"):
        capsys.readouterr()
        assert main([cmd]) == 0
        out = capsys.readouterr().out
        assert out.strip() and "{" not in out


def test_sim_lifecycle(host, capsys):
    assert main(["sim", "create", host, "g", "--vcpus", "2", "--memory", "256M", "--paused",
                 "--load", "bursty:200ms:50%", "--type", "pvh"]) == 0
    domid = int(capsys.readouterr().out)
    assert main(["sim", "unpause", host, "g"]) == 0
    assert main(["sim", "pause", host, str(domid)]) == 0
    assert main(["sim", "destroy", host, "g"]) == 0
    rows = run_json(capsys, "--backend", f"sim:{host}", "memory", "--json")
    assert [r["name"] for r in rows] == ["Domain-0"]


@pytest.mark.parametrize("argv, fragment", [
    (["sim", "create", "{host}", "x", "--vcpus", "2", "--memory", "lots"], "--memory: 'lots' is not a size"),
    (["sim", "create", "{host}", "x", "--vcpus", "2", "--memory", "1G", "--soft", "node:7"],
     "--soft: node 7"),
    (["sim", "create", "{host}", "x", "--vcpus", "2", "--memory", "1G", "--hard", "^all"], "--hard"),
    (["sim", "create", "{host}", "x", "--vcpus", "0", "--memory", "1G"], "--vcpus: 0 (allowed: 1..512)"),
    (["sim", "create", "{host}", "x", "--vcpus", "1", "--memory", "1G", "--load", "spiky"], "load: unknown"),
    (["sim", "create", "{host}", "x", "--vcpus", "1", "--memory", "100G"], "not enough free memory"),
    (["sim", "pause", "{host}", "nobody"], "no such VM or domain: nobody"),
    (["sim", "unpause", "{host}", "Domain-0"], "not paused"),
    (["sim", "init", "{host}", "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "1G",
      "--distances", "10,21"], "distances"),
    (["--backend", "bogus", "topology"], "backend: unknown backend 'bogus'"),
    (["--backend", "xen", "topology"], "Xen"),
])
def test_errors_are_one_clear_line(host, capsys, argv, fragment):
    before = open(host).read()
    capsys.readouterr()
    code = main([a.replace("{host}", host) for a in argv])
    err = capsys.readouterr().err
    assert code != 0
    assert fragment in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert open(host).read() == before  # nothing changed


def test_console_script_never_shows_a_traceback(tmp_path):
    env = dict(os.environ, XAPI_NUMA_BACKEND=f"sim:{tmp_path}/missing.json")
    bindir = os.path.dirname(sys.executable)
    proc = subprocess.run([os.path.join(bindir, "xapi-numa"), "vcpus", "--json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr and "no simulated host" in proc.stderr


def test_place_reserve_list_release(host, capsys, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    out = run_json(capsys, "place", "--vcpus", "2", "--memory", "1G", "--vm", "vm-1", "--json")
    assert len(out["nodes"]) == 1 and out["reservation"]["vm"] == "vm-1"
    assert out["soft"] in ("0-3", "4-7") and out["hard"] is None
    rows = run_json(capsys, "reservations", "--json")
    assert [r["vm"] for r in rows] == ["vm-1"] and rows[0]["total"] == (1 << 30) + out["overhead"]
    # the reservation steers the next start to the other node
    other = run_json(capsys, "place", "--vcpus", "2", "--memory", "1G", "--vm", "vm-2", "--json")
    assert other["nodes"] != out["nodes"]
    dry = run_json(capsys, "place", "--vcpus", "2", "--memory", "1G", "--dry-run", "--json")
    assert dry["reservation"] is None
    assert main(["release", "vm-1"]) == 0
    assert [r["vm"] for r in run_json(capsys, "reservations", "--json")] == ["vm-2"]
    assert main(["release", "vm-1"]) == 1


@pytest.mark.parametrize("argv, fragment", [
    (["place", "--vcpus", "2", "--memory", "1G", "--mode", "loose"], "mode: unknown mode 'loose'"),
    (["place", "--vcpus", "2", "--memory", "1G", "--nodes", "9", "--mode", "strict"], "node 9 does not exist"),
    (["place", "--vcpus", "2", "--memory", "1G", "--on-exhaust", "maybe"], "on_exhaust: unknown value"),
    (["place", "--vcpus", "0", "--memory", "1G"], "--vcpus: 0"),
    (["place", "--vcpus", "1", "--memory", "3G", "--mode", "strict", "--nodes", "0", "--on-exhaust", "fail"],
     "node 0 has"),
    (["place", "--vcpus", "1", "--memory", "1G", "--ttl", "-1"], "--ttl"),
])
def test_place_errors(host, capsys, monkeypatch, argv, fragment):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    capsys.readouterr()
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert run_json(capsys, "reservations", "--json") == []


def test_top_once_and_homing_dry_run(host, capsys, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    assert main(["sim", "create", host, "A", "--vcpus", "2", "--memory", "256M", "--soft", "node:0"]) == 0
    assert main(["sim", "run", host, "--seconds", "0.3"]) == 0
    report = run_json(capsys, "top", "--once", "--json")
    assert [n["busy_cpus"] for n in report["nodes"]] == [2, 0]
    assert report["vms"][0]["home_nodes"] == [0] and report["vms"][0]["local_share"] == 1.0
    capsys.readouterr()
    assert main(["top", "--once"]) == 0 and "local" in capsys.readouterr().out
    plan = run_json(capsys, "homing", "--dry-run", "--json")
    assert plan["pins"] == [] and plan["scheduler"] == "credit"
    capsys.readouterr()
    assert main(["homing"]) == 2 and "--dry-run" in capsys.readouterr().err
    assert main(["top", "--interval", "0"]) == 2
