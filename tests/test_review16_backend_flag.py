"""--backend (or $XAPI_NUMA_BACKEND) given a value that names no backend is bad input:
exit 2, one line naming the flag (or the variable) and what it takes, nothing made.

An unknown name said "backend: ..." (no flag), and a ``sim:PATH`` whose PATH holds no
simulated host (nothing there, a directory, a special file) exited 1 as a state failure."""
import os

import pytest

from xapi_numa.cli.main import main

ALLOWED = "(allowed: xen, or sim:PATH for a simulated host stored at PATH)"


@pytest.fixture
def place(tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    # a command reading only the ledger took no notice of the backend: never this machine's
    monkeypatch.setenv("XAPI_NUMA_LEDGER", str(tmp_path / "ledger.db"))
    monkeypatch.delenv("XAPI_NUMA_BACKEND", raising=False)
    (tmp_path / "here" / "dir").mkdir()
    return tmp_path / "here"


@pytest.mark.parametrize("spec, said", [
    ("bogus", "unknown backend 'bogus'"),
    ("sim:", "sim: needs a path"),
    ("sim:missing.json", "no simulated host at missing.json"),
    ("sim:dir", "dir: it is a directory"),
    ("sim:/dev/null", "/dev/null: it is a special file"),
])
@pytest.mark.parametrize("command", [["topology"], ["reservations"], ["vcpus", "--json"]])
def test_a_backend_that_is_none_is_bad_input_naming_the_flag(place, capsys, spec, said, command):
    before = sorted(os.listdir(str(place)))
    assert main(["--backend", spec] + command) == 2
    err = capsys.readouterr().err
    assert err.startswith("xapi-numa: error: --backend: ") and said in err and ALLOWED in err, err
    assert len(err.splitlines()) == 1 and sorted(os.listdir(str(place))) == before


def test_the_environment_variable_is_named_when_it_chose(place, capsys, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:missing.json")
    assert main(["topology"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xapi-numa: error: $XAPI_NUMA_BACKEND: no simulated host at missing.json") and ALLOWED in err
