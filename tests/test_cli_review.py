"""A hostile review of the command line and the plugin: blank values, odd paths, UUIDs
as people type them."""
import json

import pytest

from xapi_numa.cli.main import main


@pytest.fixture
def host(tmp_path, monkeypatch):
    path = str(tmp_path / "host.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "2G"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + path)
    return path


def memory_of(capsys, name: str) -> dict:
    capsys.readouterr()
    assert main(["memory", "--json"]) == 0
    return next(r for r in json.loads(capsys.readouterr().out) if r["name"] == name)["nodes"]


def test_a_blank_max_is_refused_not_read_as_move_everything(host, capsys):
    """``--max "$LIMIT"`` with LIMIT unset moved every page of the VM."""
    assert main(["sim", "create", host, "p", "--vcpus", "1", "--memory", "256M", "--type", "pvh",
                 "--soft", "node:0"]) == 0
    before = memory_of(capsys, "p")
    for flag in ("--max", "--rate"):
        capsys.readouterr()
        assert main(["move-memory", "p", "--to", "1", flag, ""]) == 2
        err = capsys.readouterr().err
        assert "argument " + flag in err and len(err.splitlines()) == 1, err
    assert memory_of(capsys, "p") == before


@pytest.mark.parametrize("argv, flag", [
    (["vnuma", "v", "--vcpus", "2", "--memory", "1G", "--type", ""], "--type"),  # was hvm
    (["vnuma", "v", "--vcpus", "2", "--memory", "1G", "--dynamic-min", ""], "--dynamic-min"),  # was ignored
    (["vnuma", "v", "--vcpus", "2", "--memory", "1G", "--mode", " "], "--mode"),
    (["place", "--vcpus", "1", "--memory", "1G", "--mode", "", "--dry-run"], "--mode"),  # was best_effort
    (["place", "--vcpus", "1", "--memory", "1G", "--on-exhaust", "", "--dry-run"], "--on-exhaust"),
])
def test_a_blank_flag_is_refused_naming_it(host, capsys, argv, flag):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "argument " + flag in err and len(err.splitlines()) == 1, err
