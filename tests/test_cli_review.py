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


def test_a_blank_ledger_variable_is_the_default_path_not_the_working_directory(monkeypatch):
    """``XAPI_NUMA_LEDGER=`` (an unset $VAR) opened the working directory as the database."""
    from xapi_numa.state import db

    monkeypatch.setenv("XAPI_NUMA_LEDGER", "")
    assert db.default_path() == db.DEFAULT_PATH


@pytest.mark.parametrize("kind, said", [("directory", "it is a directory"), ("fifo", "special file")])
def test_a_ledger_that_is_no_file_is_refused_saying_so_and_nothing_is_made_beside_it(host, tmp_path, capsys,
                                                                                     kind, said):
    """A directory was "unable to open database file ... move it aside", a device a "disk I/O
    error (the disk may be full)", and SQLite left its journal beside it (/dev/null-journal)."""
    import os

    where = tmp_path / "state"
    where.mkdir()
    target = str(where / "ledger")
    os.mkdir(target) if kind == "directory" else os.mkfifo(target)
    for command in (["reservations", "--json"], ["place", "--vcpus", "1", "--memory", "1G"]):
        capsys.readouterr()
        assert main(command + ["--ledger", target]) == 1
        err = capsys.readouterr().err
        assert said in err and target in err and len(err.splitlines()) == 1, err
    assert os.listdir(str(where)) == ["ledger"]


def pool_cli(server, tmp_path, *argv):
    secret = tmp_path / "password"
    secret.write_text("xenroot\n")
    secret.chmod(0o600)
    return main(["--insecure", "--pool", server.url, "--user", "root", "--password-file", str(secret), *argv])


def test_pool_commands_take_a_vm_uuid_in_any_case_as_the_plugin_and_local_commands_do(pool, tmp_path, capsys):
    """``vm-placement 0123ABCD-...`` (a UUID copied from a tool that prints upper case) was
    "no such VM or domain", while ``vcpus`` and the plugin take any case."""
    server, session = pool
    _, uuid = server.add_vm("db", 2, 1 << 30)
    capsys.readouterr()
    assert pool_cli(server, tmp_path, "vm-placement", " " + uuid.upper(), "--json") == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["options"][0]["vm"] == uuid
    assert pool_cli(server, tmp_path, "vm-start", uuid.upper(), "--json") == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["placement"]["vm"] == uuid


@pytest.mark.parametrize("command", [["vm-placement"], ["vm-start"], ["vnuma", "--store"]])
def test_a_blank_vm_through_the_pool_is_refused_as_on_the_host(pool, tmp_path, capsys, command):
    """``vm-placement ""`` said "no such VM or domain: " (exit 1); ``vcpus ""`` says it is blank (exit 2)."""
    server, _ = pool
    capsys.readouterr()
    argv = [command[0], " "] + command[1:]
    assert pool_cli(server, tmp_path, *argv) == 2
    err = capsys.readouterr().err
    assert "VM: ' ' is blank" in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("value, said", [("99999999999999", "99999999999999 is out of range"),
                                         ("0000000000000002", None), ("4097", "4097 is out of range"),
                                         ("-1", "'-1' is not an integer"), ("٤", "'٤' is not an integer")])
def test_the_plugin_calls_a_long_number_out_of_range_not_no_integer(value, said):
    """vcpus=99999999999999 answered "'99999999999999' is not an integer (allowed: 1..4096)"."""
    from xapi_numa.plugin import protocol as proto
    from xapi_numa.plugin.boundary import run_function

    result = proto.parse_response(run_function("place", "OpaqueRef:none", {"vcpus": value, "memory": "2P"}))
    details = result["ErrorDescription"]
    if said is None:  # 2 vCPUs, read: the memory is what is refused
        assert details[:2] == ["NUMA_INVALID_ARGUMENT", "memory"], details
    else:
        assert details[:2] == ["NUMA_INVALID_ARGUMENT", "vcpus"] and said in details[2], details
        assert details[2].endswith("(allowed: 1..4096)")


def test_sim_names_typed_in_utf8_on_an_ascii_locale_are_the_names_typed(host, capsys):
    """On dom0's ASCII locale ``sim create PATH é`` named the domain '\\udcc3\\udca9' (the
    escaped bytes), which no UTF-8 terminal could name again; ``sim destroy PATH ü`` did not
    find a domain named ü there."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0",
               PYTHONPATH=os.pathsep.join(sys.path))

    def ascii_locale(*argv):
        return subprocess.run([sys.executable, "-m", "xapi_numa.cli.main", *argv], env=env, timeout=60,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    done = ascii_locale("sim", "create", host, "caf\u00e9", "--vcpus", "1", "--memory", "64M")
    assert done.returncode == 0, done.stderr
    capsys.readouterr()
    assert main(["vcpus", "caf\u00e9", "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)[0]["name"] == "caf\u00e9"
    assert main(["sim", "create", host, "\u00fc", "--vcpus", "1", "--memory", "64M"]) == 0
    done = ascii_locale("sim", "destroy", host, "\u00fc")
    assert done.returncode == 0, done.stderr
    capsys.readouterr()
    assert main(["vcpus", "\u00fc"]) == 1


def test_release_names_both_kinds_of_key_place_gives(host, capsys):
    """``release x`` allowed "a UUID like ..." only, though the adhoc- key place printed is released too."""
    capsys.readouterr()
    assert main(["release", "x"]) == 2
    err = capsys.readouterr().err
    assert "VM: 'x' is not a UUID" in err and "adhoc-" in err and len(err.splitlines()) == 1, err


def test_vm_start_of_a_running_vm_is_refused_in_its_own_words_before_any_host_is_asked(pool, tmp_path, capsys):
    """It dry-ran every host, released the VM's place on its placing host, then answered the
    plugin's "(allowed: a Halted VM, or dry_run=true)", which vm-start has no way to pass."""
    server, session = pool
    ref, uuid = server.add_vm("web", 2, 1 << 30)
    assert pool_cli(server, tmp_path, "vm-start", "web") == 0, capsys.readouterr().err
    calls = server.plugin_calls
    capsys.readouterr()
    assert pool_cli(server, tmp_path, "vm-start", "web", "--json") == 2
    err = capsys.readouterr().err
    assert "is Running: vm-start starts a halted VM" in err and "dry_run" not in err, err
    assert len(err.splitlines()) == 1 and server.plugin_calls == calls


def test_pool_commands_on_an_ascii_locale_send_the_name_typed_not_its_escaped_bytes(pool, tmp_path):
    """On dom0's ASCII locale, ``vm-placement café`` sent 'caf\\udcc3\\udca9' to xapi, which
    refused the call as bad XML (INTERNAL_ERROR ... ExpatError); ``vcpus --pool café`` found nothing."""
    import os
    import subprocess
    import sys

    server, session = pool
    ref, uuid = server.add_vm("caf\u00e9", 2, 1 << 30)
    secret = tmp_path / "password"
    secret.write_text("xenroot\n")
    secret.chmod(0o600)
    env = dict(os.environ, LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0",
               PYTHONPATH=os.pathsep.join(sys.path))

    def ascii_locale(*argv):
        done = subprocess.run([sys.executable, "-m", "xapi_numa.cli.main", "--insecure", "--pool", server.url,
                               "--user", "root", "--password-file", str(secret), *argv], env=env, timeout=120,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert done.returncode == 0 and not done.stderr, done.stderr
        return json.loads(done.stdout.decode("ascii"))

    assert ascii_locale("vm-placement", "caf\u00e9", "--json")["vm"] == uuid
    assert ascii_locale("vm-start", "caf\u00e9", "--json")["vm"] == uuid
    assert {r["uuid"] for r in ascii_locale("vcpus", "caf\u00e9", "--json")} == {uuid}


@pytest.mark.parametrize("argv, field", [(["vm-placement", "a\x01b"], "VM"), (["vm-start", "\udcff"], "VM"),
                                         (["vm-start", "web", "--host", "h\x7f\x00"], "--host"),
                                         (["vnuma", "\udcc3", "--store"], "VM")])
def test_a_name_xml_rpc_cannot_carry_is_refused_naming_the_field_before_xapi_is_asked(pool, tmp_path, capsys,
                                                                                      argv, field):
    """A control character, or bytes that are not UTF-8, reached xapi, which answered
    INTERNAL_ERROR ... ExpatError: no field, nothing allowed."""
    server, _ = pool
    server.add_vm("web", 2, 1 << 30)
    before = dict(server.calls)
    capsys.readouterr()
    assert pool_cli(server, tmp_path, *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("xapi-numa: error: {}: ".format(field)) and "no name in xapi has" in err, err
    assert "ExpatError" not in err and len(err.splitlines()) == 1
    assert not {m for m in set(server.calls) | set(before) if server.calls[m] != before.get(m, 0)} - {
        "session.logout"}  # nothing asked of xapi but the login


def test_pool_queries_show_a_host_name_escaped_as_every_table_does(pool, tmp_path, capsys):
    """topology --pool and vcpus --pool printed a host's name as it is: a newline in it
    made a line of its own (a spoofed "== host" header), and so would a C1 control."""
    server, session = pool
    member = session.xenapi.host.get_all()[1]
    session.xenapi.host.set_name_label(member, "evil\n== fake (credit2)\u0085")
    server.without_plugin.add(member)
    for command in ("topology", "vcpus"):
        capsys.readouterr()
        assert pool_cli(server, tmp_path, command) == 0
        both = capsys.readouterr()
        shown = both.out + both.err
        assert "evil\\n== fake (credit2)\\x85" in shown and not any(
            line.startswith("== fake") for line in shown.splitlines()), shown
