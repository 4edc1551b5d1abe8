"""A second walk through the CLI on the simulated host: refusals leave nothing behind (no
state database where there was none), exit statuses and field names agree for the same
kind of input, and commands that change something say what they did."""
import os

import pytest

from test_review_cli_walkthrough import files_of, sim_host  # noqa: F401 - the fixture
from xapi_numa.ops import instance_lock


@pytest.mark.parametrize("argv", [
    ["place", "--vcpus", "1", "--memory", "900G"],
    ["place", "--vcpus", "1", "--memory", "900G", "--vm", "0b2a7e6e-0000-4000-8000-000000000001", "--json"],
    ["place", "--vcpus", "2", "--memory", "9G", "--nodes", "0", "--on-exhaust", "fail"],
])
def test_a_place_refused_for_room_makes_no_state_database(argv, sim_host, tmp_path, capsys):
    """docs/cli.md: every refusal changes nothing.  A first place refused for lack of room made
    host.json.ledger.db all the same (it reserves inside a transaction of it)."""
    from xapi_numa.cli.main import main

    capsys.readouterr()
    before = files_of(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("xapi-numa: error: ") and len(err.splitlines()) == 1, err
    assert files_of(tmp_path) == before and not os.path.exists(sim_host + ".ledger.db")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("host.json.ledger")] == []
    assert main(["place", "--vcpus", "1", "--memory", "1G"]) == 0  # one that fits makes it, as before
    assert os.path.exists(sim_host + ".ledger.db")


def _made_there(ledger: str) -> list:
    return [n for n in os.listdir(os.path.dirname(ledger)) if n.startswith(os.path.basename(ledger))]


def test_the_plugins_place_refused_makes_no_state_database(ctx):
    """The plugin's place of a VM too big for the host, or of a running VM, made the host's
    state database before refusing."""
    from test_plugin import err, ok, run

    server, session, host, sid = ctx
    ledger = server.ledgers[host]
    _, big = server.add_vm("big", 2, 900 << 30, domain_type="pvh")
    assert err(run(server, host, sid, "place", {"vm": big}))[0] == "NUMA_NO_CAPACITY"
    ref, running = server.add_vm("up", 1, 256 << 20, domain_type="pvh")
    session.xenapi.VM.start_on(ref, host, False, False)
    assert err(run(server, host, sid, "place", {"vm": running}))[:2] == ["NUMA_INVALID_ARGUMENT", "vm"]
    assert _made_there(ledger) == []
    _, fits = server.add_vm("fits", 1, 256 << 20, domain_type="pvh")
    assert ok(run(server, host, sid, "place", {"vm": fits}))["reserved"] is True
    assert os.path.exists(ledger)


def test_the_plugins_move_memory_refused_makes_no_state_database(ctx):
    """A move refused by the host's guest mask (read after the database was opened) made it."""
    from test_plugin import err, run

    server, session, host, sid = ctx
    ledger = server.ledgers[host]
    ref, uuid = server.add_vm("whole", 2, 256 << 20, domain_type="pvh")
    session.xenapi.VM.start_on(ref, host, False, False)
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "4,5,6,7"})  # node 1's CPUs
    details = err(run(server, host, sid, "move_memory", {"vm": uuid, "to": "0"}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "to"], details
    assert _made_there(ledger) == []


@pytest.mark.parametrize("command", [["vcpus"], ["memory-moves"], ["move-memory", "{vm}", "--to", "1"],
                                     ["backends"], ["sim", "pause", "{host}"]])
def test_a_blank_and_an_unknown_vm_are_named_alike(command, sim_host, capsys):
    """A blank VM said "VM: '' is blank" (exit 2, refused input), an unknown one "vm: no such
    VM or domain" (exit 1: the name may be right and the VM gone): the field is the same one."""
    from xapi_numa.cli.main import main

    for vm, code, said in [("", 2, "VM: '' is blank (allowed: "), ("nosuch", 1, "VM: no such VM or domain: nosuch")]:
        argv = [a.format(vm=vm, host=sim_host) for a in command]
        if "{vm}" not in command:
            argv.append(vm)
        capsys.readouterr()
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert err.startswith("xapi-numa: error: " + said) and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("kind", ["fifo", "directory", "existing"])
def test_sim_init_refuses_a_path_it_cannot_use_as_input(kind, tmp_path, capsys):
    """sim init on a FIFO exited 1, on a directory 2, on an existing host without --force 1:
    each is a PATH no host can be made at without another value (exit 2, naming PATH)."""
    from xapi_numa.cli.main import main

    path = tmp_path / "h.json"
    if kind == "fifo":
        os.mkfifo(str(path))
    elif kind == "directory":
        path.mkdir()
    else:
        assert main(["sim", "init", str(path), "--nodes", "1", "--cpus-per-node", "1", "--memory-per-node", "1G"]) == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert main(["sim", "init", str(path), "--nodes", "2", "--cpus-per-node", "1", "--memory-per-node", "1G"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xapi-numa: error: PATH: {}".format(path)) and "(allowed: " in err, err
    assert len(err.splitlines()) == 1 and sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("skip", ["99999999999999999999999999", "16385"])
def test_move_memory_refuses_a_skip_beyond_the_vms_pages(skip, sim_host, tmp_path, capsys):
    """--skip 99999999999999999999999999 was taken: 0 pages moved and a "done" row in the
    journal.  At most the VM's pages (64M at its maximum: 16384), refused naming --skip."""
    from xapi_numa.cli.main import main

    assert main(["sim", "create", sim_host, "g", "--vcpus", "1", "--memory", "64M", "--type", "pvh"]) == 0
    assert main(["move-memory", "g", "--to", "1", "--max", "4M"]) == 0  # (a database, a journal row)
    capsys.readouterr()
    assert main(["memory-moves", "g", "--json"]) == 0
    journal = capsys.readouterr().out
    before = files_of(tmp_path)
    for extra in ([], ["--dry-run"]):
        assert main(["move-memory", "g", "--to", "0", "--skip", skip] + extra) == 2
        err = capsys.readouterr().err
        assert err.startswith("xapi-numa: error: --skip: {} pages (allowed: 0..16384 ".format(skip)), err
        assert len(err.splitlines()) == 1
    assert main(["memory-moves", "g", "--json"]) == 0
    assert capsys.readouterr().out == journal
    assert files_of(tmp_path).keys() == before.keys()
    assert main(["move-memory", "g", "--to", "0", "--skip", "16384", "--dry-run"]) == 0


@pytest.mark.parametrize("spec, detail", [("foo", "unknown backend 'foo'"), ("sim:", "sim: needs a path")])
def test_xapi_numa_rrdd_refuses_a_backend_that_is_none_as_a_flag(spec, detail, tmp_path, capsys, monkeypatch):
    """xapi-numa-rrdd --backend foo exited 1 naming "backend:" (its unit retried it five times);
    xapi-numa and xapi-numad refuse it as a flag: exit 2, naming --backend or $XAPI_NUMA_BACKEND."""
    from test_pkg_units import unit
    from xapi_numa import rrdd_plugin

    out = tmp_path / "metrics"
    monkeypatch.delenv("XAPI_NUMA_BACKEND", raising=False)
    for argv, field in ((["--backend", spec], "--backend"), ([], "$XAPI_NUMA_BACKEND")):
        if not argv:
            monkeypatch.setenv("XAPI_NUMA_BACKEND", spec)
        with pytest.raises(SystemExit) as done:
            rrdd_plugin.main(argv + ["--once", "--file", str(out)])
        assert done.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("xapi-numa-rrdd: error: {}: {} (allowed: xen, or sim:PATH".format(field, detail)), err
        assert len(err.splitlines()) == 1 and not out.exists()
    prevented = unit("xapi-numa-rrdd.service")["Service"].get("RestartPreventExitStatus", "").split()
    assert prevented == ["2", str(instance_lock.EXIT_ANOTHER_COPY)]


def test_xapi_numad_consults_no_xapi_on_a_simulated_host_as_the_cli_does(tmp_path, monkeypatch):
    """On a simulated host the CLI says xapi is "not consulted", but xapi-numad without
    --no-xapi tried to reach this host's xapi all the same (and logged "xapi unreachable").
    One rule for both: none on a simulated host, unless $XAPI_NUMA_XENAPI_URL names one."""
    from xapi_numa import daemon
    from xapi_numa.backends.sim.backend import SimHypervisor
    from xapi_numa.core.topology import Topology

    path = str(tmp_path / "h.json")
    sim = SimHypervisor.init(path, Topology.uniform(2, 2, 1 << 30), "credit2", 1, dom0_vcpus=1, dom0_memory=64 << 20)
    spec = "sim:" + path
    logins = []
    monkeypatch.setattr(daemon, "local_login", lambda: logins.append("login"))
    monkeypatch.delenv("XAPI_NUMA_XENAPI_URL", raising=False)
    rt, reader = daemon.build_runtime(daemon.parse_args(["--backend", spec, "--ledger", str(tmp_path / "l.db")]),
                                      spec, sim)
    assert reader is None and rt.settler is None
    rt.cycle()
    assert logins == []
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", "http://127.0.0.1:9")  # tests' loopback xapi: read
    rt, reader = daemon.build_runtime(daemon.parse_args(["--backend", spec, "--ledger", str(tmp_path / "l.db")]),
                                      spec, sim)
    try:
        assert reader is not None
    finally:
        reader.close()


def test_an_unknown_flag_of_a_command_points_at_that_commands_help(capsys):
    """`topology --bogus` said "see xapi-numa --help", whose page lists no flag of topology."""
    from xapi_numa.cli.main import main

    for argv, prog in ((["topology", "--bogus"], "xapi-numa topology"),
                       (["sim", "run", "--bogus", "x.json"], "xapi-numa sim run"), (["--bogus"], "xapi-numa")):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(prog + ": error: ") and err.strip().endswith("(see {} --help)".format(prog)), err
        assert len(err.splitlines()) == 1
    assert main(["topology", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_helps_say_what_their_flags_take():
    """vnuma --no-xapi spoke of policies and opt-outs (it reads only the guest mask); place
    --nodes gave neither the range nor the node:/nodes: forms its error and docs/cli.md allow;
    sim create --vcpus (1..512) did not say why place and vnuma take up to 4096."""
    from test_review_cli_walkthrough import help_of

    vnuma = help_of("vnuma", "--no-xapi")
    assert "guest mask" in vnuma and "polic" not in vnuma and "opt-out" not in vnuma, vnuma
    nodes = help_of("place", "--nodes")
    assert all(form in nodes for form in ("node:1", "nodes:0-1", "0-1", "0 up to its last", "nearest")), nodes
    vcpus = help_of("sim create", "--vcpus")
    assert "1..512" in vcpus and "simulated Xen" in vcpus and "4096" in vcpus, vcpus


def test_an_unreadable_password_file_says_what_is_allowed(tmp_path):
    from xapi_numa.backends import xapi_credentials
    from xapi_numa.errors import InvalidArgument

    for path in (str(tmp_path / "none"), str(tmp_path / "latin1")):
        if path.endswith("latin1"):
            with open(path, "wb") as f:
                f.write(b"caf\xe9\n")
            os.chmod(path, 0o600)
        with pytest.raises(InvalidArgument) as refused:
            xapi_credentials._read_private(path, "--password-file")
        assert refused.value.message.startswith("--password-file: ")
        assert refused.value.message.endswith("(allowed: a regular file only its owner may read (chmod 600), "
                                              "in UTF-8)"), refused.value.message


def test_release_and_the_sim_controls_say_what_they_did(sim_host, capsys):
    """release, sim pause, sim unpause and sim destroy printed nothing on success."""
    from xapi_numa.cli.main import main

    vm = "0b2a7e6e-0000-4000-8000-000000000001"
    assert main(["place", "--vcpus", "1", "--memory", "64M", "--vm", vm]) == 0
    assert main(["sim", "create", sim_host, "g", "--vcpus", "1", "--memory", "64M", "--type", "pvh"]) == 0
    domid = capsys.readouterr().out.splitlines()[-1]
    assert main(["release", vm.upper()]) == 0
    assert capsys.readouterr().out == "released the reservation for {}\n".format(vm)
    for action, said in (("pause", "paused"), ("unpause", "unpaused"), ("destroy", "destroyed")):
        assert main(["sim", action, sim_host, "g"]) == 0
        assert capsys.readouterr().out == "domain {} (g) {}\n".format(domid, said)


def test_an_unknown_flag_is_named_before_a_missing_command(capsys):
    """`xapi-numa --bogus` said the COMMAND was missing (argparse asks for it first), never the flag."""
    from xapi_numa.cli.main import main

    for argv, said in ((["--bogus"], "unrecognized arguments: --bogus"),
                       (["--bogus=3"], "unrecognized arguments: --bogus=3"),
                       (["--insecure", "--nope"], "unrecognized arguments: --nope"),
                       (["sim", "init", "h.json", "--bogus"], "unrecognized arguments: --bogus"),
                       ([], "the following arguments are required: COMMAND"),
                       (["--insecure"], "the following arguments are required: COMMAND"),
                       (["--insec"], "the following arguments are required: COMMAND"),  # (argparse's abbreviation)
                       (["sim", "init", "h.json", "--nodes", "-5"], "the following arguments are required: ")):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert said in err and len(err.splitlines()) == 1, (argv, err)
