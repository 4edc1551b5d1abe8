"""The CLI's ``xapi-numa place --vm VM`` (on the host, not through the plugin) holds the VM as the
plugin's place does, and keeps the start-hold rule.

It took no place lock and no owner key, and read no start hold (other_config:numa_start_owner): run
while a pool vm-start held the VM (between the start's place and its VM.start_on), or while a place
of the same VM was under way here, it replaced that place's reservation with its own (exit 0), and
the start built the VM on a reservation it did not make.  It now goes through the plugin's
``start_placement.placing`` (the place lock, the owner key, then the rule on the record read while
holding them), refused with NUMA_VM_BUSY as the plugin's place is, changing nothing; while this
host's xapi cannot be read it is refused too (whether a start holds the VM is unknown), but for
``--no-xapi``, which reads nothing of xapi and so holds only the place lock.  ``--dry-run`` holds
and checks nothing, as the plugin's dry run.
"""
import time

from test_cli_release_start_hold import _reserved
from test_owner_key_copies import start_at_start_on  # noqa: F401 - a fixture
from test_review19_what_if_guest_mask import cli_env
from test_start_hold_manual_calls import _placer
from xapi_numa.backends import xapi
from xapi_numa.cli import placing
from xapi_numa.cli.main import main
from xapi_numa.errors import NumaError
from xapi_numa.ops import start_hold, start_placement
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.locks import PLACE, vm_lock

G = 1 << 30
PLACE_ARGS = ["--vcpus", "2", "--memory", "1G"]


def _state(server, host, ref):
    return ([r.to_dict() for r in Ledger(server.ledgers[host]).reservations()], dict(server.vms[ref]["other_config"]),
            dict(server.vms[ref]["VCPUs_params"]))


def test_the_cli_place_during_a_pool_start_is_refused_as_the_plugins_changing_nothing(
        start_at_start_on, monkeypatch, capsys):
    server, session, ref, finish = start_at_start_on
    uuid, host = server.vms[ref]["uuid"], _placer(server, ref)
    cli_env(server, host, monkeypatch)
    before = _state(server, host, ref)
    assert before[0][0]["vm"] == uuid
    capsys.readouterr()
    assert main(["place", "--vm", uuid] + PLACE_ARGS) == 1  # before: 0, the start's reservation replaced
    err = capsys.readouterr().err
    assert "is being started by a pool vm-start (process " in err and "this place is refused, changing nothing" in err
    assert "try again once that start has ended, at the latest after " in err and "Traceback" not in err, err
    assert _state(server, host, ref) == before
    assert main(["place", "--vm", uuid, "--dry-run"] + PLACE_ARGS) == 0  # a dry run is answered, as the plugin's
    assert _state(server, host, ref) == before
    assert "error" not in finish()


def _vm_here(pool, monkeypatch):
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G)
    host = session.xenapi.host.get_all()[0]
    cli_env(server, host, monkeypatch)
    return server, session, host, ref, uuid


def test_the_cli_place_while_a_place_of_the_vm_holds_it_is_refused(pool, monkeypatch, capsys):
    server, session, host, ref, uuid = _vm_here(pool, monkeypatch)
    monkeypatch.setattr(start_placement, "PLACE_LOCK_WAIT", 0.0)
    lock = vm_lock(server.ledgers[host], PLACE, uuid)
    lock.acquire()  # a place (release, settle, policy change) of the VM under way on this host
    try:
        for how in ([], ["--no-xapi"]):
            capsys.readouterr()
            assert main(["place", "--vm", uuid] + PLACE_ARGS + how) == 1, how  # before: 0, reserved
            err = capsys.readouterr().err
            assert "the place lock" in err and "try again later" in err and "Traceback" not in err, (how, err)
            assert _reserved(server, host) == [], how
        assert main(["place", "--vm", uuid, "--dry-run"] + PLACE_ARGS) == 0  # takes no lock
        assert main(["place"] + PLACE_ARGS) == 0  # an ad-hoc key names no VM: no VM to hold
    finally:
        lock.release()
    # another host's place holds the VM (its owner key, a live process's): refused, as that place would be
    token = start_placement.owner_token(time.time(), vm=uuid)
    session.xenapi.VM.add_to_other_config(ref, start_placement.OWNER_KEY, token)
    capsys.readouterr()
    assert main(["place", "--vm", uuid] + PLACE_ARGS) == 1
    err = capsys.readouterr().err
    assert "is being placed, released, settled or given a policy by another caller right now" in err, err
    assert [r for r in _reserved(server, host) if not r.startswith("adhoc-")] == []
    assert server.vms[ref]["other_config"][start_placement.OWNER_KEY] == token
    session.xenapi.VM.remove_from_other_config(ref, start_placement.OWNER_KEY)
    assert main(["place", "--vm", uuid] + PLACE_ARGS) == 0 and uuid in _reserved(server, host)
    assert start_placement.OWNER_KEY not in server.vms[ref]["other_config"]  # let go


def test_a_pool_start_placing_the_vm_during_the_cli_place_waits_for_it(pool, monkeypatch, capsys):
    """The CLI place holds the VM from its read of the hold to its reservation: a pool start's place
    in between (here: refused at once, not waiting) does not have its reservation replaced."""
    server, session, host, ref, uuid = _vm_here(pool, monkeypatch)
    monkeypatch.setattr(start_placement, "PLACE_LOCK_WAIT", 0.0)
    reserve, seen = placing.place_and_reserve, {}

    def a_start_places_first(*args, **kw):
        if not kw.get("dry_run") and not args[5:6] == (True,) and "start" not in seen:
            seen["start"] = start_hold.start_token(time.time(), 300, uuid)
            session.xenapi.VM.add_to_other_config(ref, start_hold.START_KEY, seen["start"])
            try:
                seen["placed"] = start_placement.place_vm(server.sims[host], Ledger(server.ledgers[host]), session,
                                                          uuid, host_uuid=server.hosts[host]["uuid"],
                                                          start_owner=seen["start"])
            except NumaError as error:
                seen["refused"] = error
        return reserve(*args, **kw)

    monkeypatch.setattr(placing, "place_and_reserve", a_start_places_first)
    capsys.readouterr()
    code = main(["place", "--vm", uuid] + PLACE_ARGS)
    assert "placed" in seen or "refused" in seen, seen
    # before: the start placed (its pin, its reservation), then the CLI replaced its reservation (exit 0)
    assert "refused" in seen and seen["refused"].code == "NUMA_VM_BUSY", seen
    assert "place lock" in str(seen["refused"]) and code == 0, capsys.readouterr()
    assert _reserved(server, host) == [uuid] and xapi_placed(server, ref) is None


def xapi_placed(server, ref):
    return server.vms[ref]["other_config"].get(xapi.PLACED_HOST_KEY)


def test_the_cli_place_while_this_hosts_xapi_cannot_be_read_is_refused_but_for_no_xapi(pool, monkeypatch, capsys):
    server, session, host, ref, uuid = _vm_here(pool, monkeypatch)
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", "http://127.0.0.1:9")  # a xapi that is not there
    capsys.readouterr()
    assert main(["place", "--vm", uuid] + PLACE_ARGS) == 1  # before: 0, reserved without reading any hold
    err = capsys.readouterr().err
    assert "numa_start_owner" in err and "nothing was reserved" in err and "--no-xapi" in err, err
    assert "unreachable" in err and "Traceback" not in err and _reserved(server, host) == [], err
    assert main(["place", "--vm", uuid, "--dry-run"] + PLACE_ARGS) == 0  # a dry run is answered
    assert main(["place"] + PLACE_ARGS) == 0  # an ad-hoc key: no VM, no hold to read
    assert main(["place", "--vm", uuid, "--no-xapi"] + PLACE_ARGS) == 0 and uuid in _reserved(server, host)
