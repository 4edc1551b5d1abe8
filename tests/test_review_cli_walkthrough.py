"""What a first walk through the README's commands on the simulated host found: a
backend xapi-numad cannot use is a refused flag (exit 2, named as xapi-numa names it),
vnuma refuses a blank VM name as every other command does, and its table writes vCPU
lists in Xen's syntax."""
import pytest

from xapi_numa import daemon


@pytest.mark.parametrize("spec, detail", [("foo", "unknown backend 'foo'"), ("sim:", "sim: needs a path")])
def test_a_backend_that_is_none_is_a_refused_flag_of_xapi_numad(spec, detail, capsys, monkeypatch, tmp_path):
    """The unit's RestartPreventExitStatus=2 keeps systemd from retrying a flag xapi-numad
    refuses; a wrong --backend was exit 1 (retried five times) and named "backend"."""
    monkeypatch.delenv("XAPI_NUMA_BACKEND", raising=False)
    ledger = str(tmp_path / "l.db")
    assert daemon._run(daemon.parse_args(["--backend", spec, "--no-xapi", "--ledger", ledger])) == 2
    err = capsys.readouterr().err.strip()
    assert err == "xapi-numad: error: --backend: {} (allowed: xen, or sim:PATH for a simulated host stored at " \
                  "PATH)".format(detail), err
    monkeypatch.setenv("XAPI_NUMA_BACKEND", spec)
    assert daemon._run(daemon.parse_args(["--no-xapi", "--ledger", ledger])) == 2
    assert capsys.readouterr().err.startswith("xapi-numad: error: $XAPI_NUMA_BACKEND: " + detail)
    assert not (tmp_path / "l.db").exists()


@pytest.fixture
def sim_host(tmp_path, monkeypatch):
    from xapi_numa.cli.main import main

    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    path = str(tmp_path / "host.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "8G"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + path)
    return path


def files_of(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("blank", ["", "  "])
def test_vnuma_refuses_a_blank_vm_name_as_every_command_does(blank, sim_host, tmp_path, capsys):
    """`vnuma "" --vcpus 4 --memory 2G` printed a plan for "vm": "" (vcpus, backends, memory-moves,
    move-memory and sim pause refuse a blank VM)."""
    from xapi_numa.cli.main import main

    capsys.readouterr()
    before = files_of(tmp_path)
    for extra in ([], ["--json"], ["--xl"], ["--apply"]):
        assert main(["vnuma", blank, "--vcpus", "4", "--memory", "2G"] + extra) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("xapi-numa: error: VM: {!r} is blank (allowed: ".format(blank)), err
        assert len(err.splitlines()) == 1
    assert files_of(tmp_path) == before


def test_the_vnuma_table_writes_each_vnodes_vcpus_in_xens_syntax(sim_host, capsys):
    """The table said "0,1,2,3" where --xl beside it says vcpus=0-3 (and every other CPU or
    vCPU list of the tool is written 0-27,56-83)."""
    from xapi_numa.cli.main import main

    capsys.readouterr()
    assert main(["vnuma", "db", "--vcpus", "8", "--memory", "2G", "--nodes", "1,0"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["vnode", "pnode", "memory", "vcpus", "vdistances"]
    assert [(r[1], r[3]) for r in rows[1:]] == [("1", "0-3"), ("0", "4-7")]
    assert main(["vnuma", "db", "--vcpus", "8", "--memory", "2G", "--nodes", "1,0", "--xl"]) == 0
    assert '"vcpus=0-3"' in capsys.readouterr().out
