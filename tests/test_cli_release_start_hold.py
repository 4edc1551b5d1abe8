"""The CLI's ``xapi-numa release VM`` (on the host, not through the plugin) while a pool vm-start
holds the VM (other_config:numa_start_owner).

The plugin's release refuses then with NUMA_VM_BUSY (``force=true`` goes on): dropping the
start's reservation lets it build the VM on none.  The CLI's release checked no hold: between
the start's place and its VM.start_on it dropped the reservation (exit 0).  It now keeps the
same rule (``start_hold.release_checked``), read from this host's xapi as ``place`` reads it,
with ``--force`` for the plugin's ``force=true``; a release while that xapi cannot be read is
refused too (whether a start holds the VM is unknown), ``--force`` excepted.
"""
from test_owner_key_copies import start_at_start_on  # noqa: F401 - a fixture
from test_review19_what_if_guest_mask import cli_env
from test_start_hold_manual_calls import _placer
from xapi_numa.cli.main import main
from xapi_numa.state.ledger import Ledger

G = 1 << 30


def _reserved(server, host):
    return [r.vm for r in Ledger(server.ledgers[host]).reservations()]


def test_the_cli_release_during_a_pool_start_is_refused_as_the_plugins_and_force_goes_on(
        start_at_start_on, monkeypatch, capsys):
    server, session, ref, finish = start_at_start_on
    uuid, host = server.vms[ref]["uuid"], _placer(server, ref)
    cli_env(server, host, monkeypatch)
    assert _reserved(server, host) == [uuid]
    capsys.readouterr()
    assert main(["release", uuid]) == 1  # before: 0, "released the reservation for ..."
    out = capsys.readouterr()
    assert out.out == "" and "is being started by a pool vm-start (process " in out.err, out
    assert "release with --force" in out.err and "force=true" not in out.err and "Traceback" not in out.err, out
    assert _reserved(server, host) == [uuid]  # nothing changed
    assert main(["release", uuid, "--force"]) == 0
    said = capsys.readouterr().out
    assert said.startswith("released the reservation for {} (overridden: a pool vm-start (process ".format(uuid)), said
    assert _reserved(server, host) == []
    assert "error" not in finish()  # (the admin's choice: it starts without its reservation)


def _placed_by_the_cli(pool, monkeypatch):
    """A VM placed on the pool's first host by the CLI there (no start holds it)."""
    server, session = pool
    uuid = server.add_vm("web", 2, G)[1]
    host = session.xenapi.host.get_all()[0]
    cli_env(server, host, monkeypatch)
    assert main(["place", "--vm", uuid, "--vcpus", "2", "--memory", "1G"]) == 0
    return server, host, uuid


def test_the_cli_release_with_no_start_holding_the_vm_releases_as_before(pool, monkeypatch, capsys):
    server, host, uuid = _placed_by_the_cli(pool, monkeypatch)
    assert main(["place", "--vcpus", "1", "--memory", "1G"]) == 0  # an adhoc- key: no VM, no hold to read
    adhoc = next(vm for vm in _reserved(server, host) if vm.startswith("adhoc-"))
    capsys.readouterr()
    assert main(["release", uuid]) == 0
    assert capsys.readouterr().out == "released the reservation for {}\n".format(uuid)
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", "http://127.0.0.1:9")  # a xapi that is not there
    assert main(["release", adhoc]) == 0 and _reserved(server, host) == []


def test_the_cli_release_while_this_hosts_xapi_cannot_be_read_is_refused_but_for_force(pool, monkeypatch, capsys):
    server, host, uuid = _placed_by_the_cli(pool, monkeypatch)
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", "http://127.0.0.1:9")
    capsys.readouterr()
    assert main(["release", uuid]) == 1
    err = capsys.readouterr().err
    assert "numa_start_owner" in err and "nothing was released" in err and "--force" in err, err
    assert "unreachable" in err and "Traceback" not in err and _reserved(server, host) == [uuid], err
    assert main(["release", uuid, "--force"]) == 0 and _reserved(server, host) == []
