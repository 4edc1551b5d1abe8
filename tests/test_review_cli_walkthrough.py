"""What a first walk through the commands in the docs on the simulated host found: a
backend xapi-numad cannot use is a refused flag (exit 2, named as xapi-numa names it),
vnuma refuses a blank VM name as every other command does, its table writes vCPU
lists in Xen's syntax, and every argument's --help says what it takes: a number the
flag's type refuses is answered "see --help", so the help must give the range."""
import argparse
import json
import re

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
    """The files a command could change (a lock folder made beside the database holds no state)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


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


def parsers(parser, name="xapi-numa"):
    """(command, parser) of xapi-numa and every command and sim command under it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from parsers(sub, name + " " + sub_name)


def test_every_argument_of_every_command_has_a_help_text():
    """place --vcpus, release's VM, sim init --nodes/--cpus-per-node/--scheduler/--seed, sim
    create --vcpus/--type, sim run --seconds and every sim command's PATH had none."""
    from xapi_numa.cli.main import build_parser

    bare = ["{} {}".format(name, "/".join(a.option_strings) or a.dest)
            for name, parser in parsers(build_parser()) for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))
            and a.help != argparse.SUPPRESS and not (a.help or "").strip()]
    assert bare == []


def help_of(command, flag):
    from xapi_numa.cli.main import build_parser

    found = dict(parsers(build_parser()))["xapi-numa " + command]
    return next(a.help for a in found._actions if flag in a.option_strings) % {}


OUT_OF_RANGE = [
    ("place", "--vcpus", "0", ["--memory", "1G", "--dry-run"]),
    ("place", "--ttl", "0", ["--vcpus", "1", "--memory", "1G"]),
    ("top", "--interval", "0", ["--once"]),
    ("rebalance", "--samples", "0", ["--dry-run"]),
    ("move-memory", "--batch", "0", ["g", "--to", "1", "--dry-run"]),
    ("move-memory", "--probe-ms", "60001", ["g", "--to", "1", "--dry-run"]),
    ("move-memory", "--verify-chunk", "0", ["g", "--to", "1", "--dry-run"]),
    ("move-memory", "--rate", "0", ["g", "--to", "1", "--dry-run"]),
    ("vnuma", "--vcpus", "0", ["v", "--memory", "1G"]),
    ("sim init", "--nodes", "0", ["{new}", "--cpus-per-node", "1", "--memory-per-node", "1G"]),
    ("sim init", "--cpus-per-node", "0", ["{new}", "--nodes", "1", "--memory-per-node", "1G"]),
    ("sim create", "--vcpus", "0", ["{host}", "x", "--memory", "64M"]),
    ("sim run", "--seconds", "0", ["{host}"]),
]


@pytest.mark.parametrize("command, flag, value, rest", OUT_OF_RANGE)
def test_a_range_in_an_error_is_the_range_in_the_flags_help(command, flag, value, rest, sim_host, tmp_path,
                                                            capsys):
    """The error of an out-of-range value names the range; the help of the flag (where a
    value its type refuses, such as '١', is sent) gives the same numbers."""
    from xapi_numa.cli.main import main

    assert main(["sim", "create", sim_host, "g", "--vcpus", "1", "--memory", "64M", "--type", "pvh"]) == 0
    capsys.readouterr()
    before = files_of(tmp_path)
    argv = command.split() + [flag, value] + [a.format(host=sim_host, new=str(tmp_path / "new.json")) for a in rest]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("xapi-numa: error: {}: ".format(flag)) and len(err.splitlines()) == 1, err
    assert files_of(tmp_path) == before
    allowed = re.search(r"\(allowed: (.*)\)$", err.strip()).group(1)
    number = r"\d+(?:\.\d+)?"
    bounds = re.findall(number, allowed)[:2]  # (what follows may be examples)
    assert len(bounds) == 2 and set(bounds) <= set(re.findall(number, help_of(command, flag))), (allowed, err)


def command_line_section():
    import os

    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "cli.md"), encoding="utf-8") as f:
        return f.read()


def test_the_exit_statuses_are_documented_and_are_what_xapi_numa_returns(sim_host, tmp_path, monkeypatch, capsys):
    """The command line's documentation (docs/cli.md) said nothing of exit statuses (a script needs to tell a
    refused input from a failed command); each one it names is what main returns."""
    from xapi_numa.cli import queries
    from xapi_numa.cli.main import main

    section = " ".join(command_line_section().split())
    for said in ("The exit status says which: 0 done; 2 the input was refused", "; 1 the command could not do it",
                 "; 3 `vm-start` started the VM but could not settle it", "; 70 an internal error",
                 "; 130 interrupted (Ctrl-C)"):
        assert said in section
    capsys.readouterr()
    assert main(["topology"]) == 0
    assert main(["place", "--vcpus", "0", "--memory", "1G", "--dry-run"]) == 2
    assert main(["vcpus", "no-such-vm"]) == 1
    assert main(["place", "--vcpus", "1", "--memory", "1000G", "--dry-run"]) == 1

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(queries, "cmd_topology", broken)
    capsys.readouterr()
    assert main(["topology"]) == 70
    assert capsys.readouterr().err.startswith("xapi-numa: internal error: RuntimeError: a bug")

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(queries, "cmd_topology", interrupted)
    assert main(["topology"]) == 130


@pytest.mark.parametrize("field", ["--rate", "rate"])
@pytest.mark.parametrize("typed", ["-5", "-0.5", " -200 "])
def test_a_negative_rate_is_out_of_range_not_a_non_number(field, typed):
    """move-memory --rate -5 (and the plugin's rate=-5) said "'-5' is not a number"; every
    other number flag says a negative value is out of its range."""
    from xapi_numa.core import memory_move
    from xapi_numa.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as refused:
        memory_move.parse_rate(typed, field)
    assert refused.value.message == "{}: {} MiB/s is out of range (allowed: {})".format(
        field, typed.strip(), memory_move.RATE_ALLOWED)
    for junk in ("-", "--5", "- 5", "-x"):
        with pytest.raises(InvalidArgument) as refused:
            memory_move.parse_rate(junk, field)
        assert "is not a number" in refused.value.message


def test_the_docs_hvm_refusal_is_what_move_memory_prints(sim_host, tmp_path, capsys):
    """docs/hvm.md quotes "the memory of VM hvm cannot be moved: ..."; the line names the
    VM's UUID after its name (errors.NotMovable), on the simulator as on Xen."""
    import os
    from xapi_numa.cli.main import main

    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "hvm.md"), encoding="utf-8") as f:
        readme = " ".join(f.read().split())
    quoted = re.search(r'`xapi-numa move-memory hvm --to node:0` answers "(.*?); \.\.\." and exits (\d+),', readme)
    assert quoted, "docs/hvm.md's example is gone"
    assert main(["sim", "create", sim_host, "hvm", "--vcpus", "2", "--memory", "256M", "--type", "hvm"]) == 0
    out = capsys.readouterr().out
    before = files_of(tmp_path)
    code = main(["move-memory", "hvm", "--to", "node:0"])
    err = capsys.readouterr().err
    uuid = [d["uuid"] for d in json.loads(run_json(main, capsys, ["vcpus", out.strip(), "--json"]))][0]
    assert code == int(quoted.group(2))
    assert err.startswith("xapi-numa: error: " + quoted.group(1).replace("(UUID)", "({})".format(uuid))), err
    assert files_of(tmp_path) == before


def run_json(main, capsys, argv):
    assert main(argv) == 0
    return capsys.readouterr().out


REFUSED_FIRST = [
    (["move-memory", "g", "--to", "5"], 2), (["move-memory", "g", "--to", "1", "--rate", "0"], 2),
    (["move-memory", "g", "--to", "1", "--batch", "0"], 2), (["move-memory", "nosuch", "--to", "1"], 1),
    (["move-memory", "g", "--to", "1", "--vnode", "3"], 2), (["move-memory", "v", "--to", "1"], 1),
    (["place", "--vcpus", "1", "--memory", "64M", "--nodes", "7"], 2),
]


@pytest.mark.parametrize("argv, code", REFUSED_FIRST)
def test_a_refused_first_move_or_place_makes_no_state_database(argv, code, sim_host, tmp_path, capsys):
    """docs/cli.md: every refusal changes nothing; docs/placement.md: the state database (with /var/lib/xapi-numa)
    is made by the first command that changes the state. A move-memory refused for a typo in
    --to, an unknown VM or a PV guest, or a place refused for its --nodes, made it all the same."""
    from xapi_numa.cli.main import main

    assert main(["sim", "create", sim_host, "g", "--vcpus", "1", "--memory", "64M", "--type", "pvh"]) == 0
    assert main(["sim", "create", sim_host, "v", "--vcpus", "1", "--memory", "64M", "--type", "pv"]) == 0
    capsys.readouterr()
    before = files_of(tmp_path)
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("xapi-numa: error: ") and len(err.splitlines()) == 1, err
    assert files_of(tmp_path) == before and not (tmp_path / "host.json.ledger.db").exists()
    assert main(["move-memory", "g", "--to", "1", "--max", "8M"]) == 0  # a move that runs makes it
    assert (tmp_path / "host.json.ledger.db").exists()
