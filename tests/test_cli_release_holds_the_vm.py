"""The CLI's ``xapi-numa release VM`` holds the VM as the plugin's release does.

The CLI's release read the VM's start hold (other_config:numa_start_owner) from this host's xapi,
then dropped the reservation, holding nothing in between: no place lock, no owner key.  A pool
vm-start that took its hold and placed the VM on this host in between (its place holds the lock
and key, and checks the hold) had its reservation dropped, and then built the VM on none.  The
CLI's release now goes through the plugin's (``start_placement.releasing``): the lock and the
owner key first, then the hold read, then the drop, so such a place waits for it or is refused.

It also asked xapi for the hold before knowing whether there was anything to
release: a VM with no reservation here was refused as held by a start, or while xapi could not
be read, instead of being told there is none.
"""
import os
import time
import uuid

from test_cli_release_start_hold import G, _placed_by_the_cli, _reserved
from test_review19_what_if_guest_mask import cli_env
from xapi_numa.cli.main import main
from xapi_numa.errors import NumaError
from xapi_numa.ops import start_hold, start_placement, upkeep
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.locks import PLACE, vm_lock


def test_a_pool_start_placing_the_vm_during_the_cli_release_keeps_its_reservation(pool, monkeypatch, capsys):
    server, host, uuid = _placed_by_the_cli(pool, monkeypatch)
    session = pool[1]
    ref = session.xenapi.VM.get_by_uuid(uuid)
    monkeypatch.setattr(start_placement, "PLACE_LOCK_WAIT", 0.0)  # (a place behind the release: refused at once)
    drop, seen = upkeep.release_asked, {}

    def a_start_places_first(hv, ledger, vm):
        """Right before the release drops the reservation: a pool vm-start holds the VM, places it here."""
        token = start_hold.start_token(time.time(), 300, uuid)
        session.xenapi.VM.add_to_other_config(ref, start_hold.START_KEY, token)
        try:
            seen["placed"] = start_placement.place_vm(server.sims[host], Ledger(server.ledgers[host]), session, uuid,
                                                      host_uuid=server.hosts[host]["uuid"], start_owner=token)
        except NumaError as error:
            seen["refused"] = error
        return drop(hv, ledger, vm)

    monkeypatch.setattr(upkeep, "release_asked", a_start_places_first)
    capsys.readouterr()
    code = main(["release", uuid])
    assert "placed" in seen or "refused" in seen, seen
    if "placed" in seen:  # before: placed and reserved, then that reservation dropped (exit 0)
        assert _reserved(server, host) == [uuid], seen
    else:  # the start's place waits for the release (here: refused at once): the release holds the VM
        assert seen["refused"].code == "NUMA_VM_BUSY" and "place lock" in str(seen["refused"]), seen
        assert code == 0 and _reserved(server, host) == [], capsys.readouterr()
    assert [k for k in server.vms[ref]["other_config"] if k.startswith(start_placement.OWNER_KEY)] == []


def test_the_cli_release_of_a_vm_with_no_reservation_says_so_without_asking_xapi(pool, monkeypatch, capsys):
    server, host, uuid = _placed_by_the_cli(pool, monkeypatch)
    assert main(["release", uuid]) == 0
    capsys.readouterr()
    asked = sum(server.calls.values())
    assert main(["release", uuid]) == 1
    said = capsys.readouterr().err
    assert "no reservation for {}".format(uuid) in said and sum(server.calls.values()) == asked, said
    # a start holding it, or this host's xapi away, is no reason to refuse: nothing here to release
    session = pool[1]
    session.xenapi.VM.add_to_other_config(session.xenapi.VM.get_by_uuid(uuid), start_hold.START_KEY,
                                          start_hold.start_token(time.time(), 300, uuid))
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", "http://127.0.0.1:9")
    assert main(["release", uuid]) == 1
    said = capsys.readouterr().err
    assert "no reservation for {}".format(uuid) in said and "cannot be read" not in said, said
    assert "vm-start" not in said and "Traceback" not in said, said


def test_the_cli_release_with_no_xapi_to_hold_the_vm_in_holds_this_hosts_place_lock(pool, monkeypatch, capsys):
    """Where there is no xapi to hold the VM in (one that does not know the VM; --force while this host's
    xapi cannot be read; a simulated host), the CLI's release dropped the reservation holding nothing, even
    while a place of the same VM held this host's place lock (the CLI's place --no-xapi, or the plugin's).
    It now holds that lock for the drop: refused, naming it, while another holds it, changing nothing."""
    server, session = pool
    host = session.xenapi.host.get_all()[0]
    cli_env(server, host, monkeypatch)
    unknown, known = str(uuid.UUID(bytes=os.urandom(16), version=4)), server.add_vm("web", 2, G)[1]
    for vm in (unknown, known):
        assert main(["place", "--vm", vm, "--no-xapi", "--vcpus", "2", "--memory", "1G"]) == 0
    monkeypatch.setattr(start_placement, "PLACE_LOCK_WAIT", 0.0)
    for vm, how, xapi_url in ((unknown, [], None), (known, ["--force"], "http://127.0.0.1:9")):
        if xapi_url:
            monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", xapi_url)  # a xapi that is not there
        lock = vm_lock(server.ledgers[host], PLACE, vm)
        lock.acquire()  # a place of the VM under way on this host
        try:
            capsys.readouterr()
            assert main(["release", vm] + how) == 1, how  # before: 0, released under that place
            err = capsys.readouterr().err
            assert "the place lock" in err and "try again later" in err and "Traceback" not in err, (how, err)
            assert vm in _reserved(server, host), how
        finally:
            lock.release()
        assert main(["release", vm] + how) == 0 and vm not in _reserved(server, host), how
