"""A negative value for a number flag whose command checks a range (--ttl, --vcpus ...)
gets that one message: the flag, the value, the range allowed.

The flag's type refused a minus sign itself ("invalid whole number (0 or more, ASCII
digits) value: '-1'"), so a user fixing that to 0 met a second message, the range; a
flag whose range is "0 or more" (--seed, --batch) still says so at the type."""
import os

import pytest

from xapi_numa.cli.main import main


@pytest.fixture
def host(tmp_path, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_LEDGER", str(tmp_path / "ledger.db"))
    path = str(tmp_path / "host.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "2G"]) == 0
    assert main(["sim", "create", path, "g", "--vcpus", "2", "--memory", "256M", "--type", "pvh", "--paused"]) == 0
    return path


NEW = "{tmp}/new.json"


@pytest.mark.parametrize("argv, said", [
    (["--backend", "sim:{host}", "place", "--vcpus", "-1", "--memory", "1G"], "--vcpus: -1 (allowed: 1..4096)"),
    (["--backend", "sim:{host}", "place", "--vcpus", "1", "--memory", "1G", "--ttl", "-5"],
     "--ttl: -5 (allowed: more than 0, at most 86400 seconds)"),
    (["--backend", "sim:{host}", "place", "--vcpus", "1", "--memory", "1G", "--ttl", "-0.5"],
     "--ttl: -0.5 (allowed: more than 0, at most 86400 seconds)"),
    (["--backend", "sim:{host}", "top", "--interval", "-1"], "--interval: -1 (allowed: 0.1..3600 seconds)"),
    (["--backend", "sim:{host}", "move-memory", "g", "--to", "1", "--verify-chunk", "-1"],
     "--verify-chunk: -1 (allowed: 1..8192 pages)"),
    (["--backend", "sim:{host}", "vnuma", "g", "--vcpus", "-1", "--memory", "1G"], "--vcpus: -1 (allowed: 1..4096)"),
    (["--backend", "sim:{host}", "vnuma", "g", "--vcpus", "2", "--memory", "1G", "--split", "-1"],
     "--split: -1 is no half of a split host (allowed: 0 or 1)"),
    (["sim", "init", NEW, "--nodes", "-1", "--cpus-per-node", "1", "--memory-per-node", "1G"],
     "--nodes: -1 (allowed: 1..64)"),
    (["sim", "init", NEW, "--nodes", "1", "--cpus-per-node", "-3", "--memory-per-node", "1G"],
     "--cpus-per-node: -3 (allowed: 1..512)"),
    (["sim", "init", NEW, "--nodes", "1", "--cpus-per-node", "2", "--memory-per-node", "1G", "--dom0-vcpus", "-1"],
     "--dom0-vcpus: -1 (allowed: 1..2 (the host's pCPUs))"),
    (["sim", "create", "{host}", "h", "--vcpus", "-2", "--memory", "1G"], "--vcpus: -2 (allowed: 1..512)"),
    (["sim", "run", "{host}", "--seconds", "-1"], "--seconds: -1 (allowed: more than 0, at most 86400)"),
])
def test_a_negative_value_gets_the_flags_range(host, tmp_path, capsys, argv, said):
    before = open(host).read()
    capsys.readouterr()
    code = main([a.replace("{host}", host).replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and said in err, err
    assert "0 or more" not in err and len(err.strip().splitlines()) == 1, err
    assert open(host).read() == before and not os.path.exists(str(tmp_path / "new.json"))


def test_a_flag_whose_range_is_0_or_more_still_says_so(host, capsys):
    capsys.readouterr()
    assert main(["sim", "init", host + ".2", "--nodes", "1", "--cpus-per-node", "1", "--memory-per-node", "1G",
                 "--seed", "-1"]) == 2
    assert "argument --seed: invalid whole number (0 or more, ASCII digits) value: '-1'" in capsys.readouterr().err
