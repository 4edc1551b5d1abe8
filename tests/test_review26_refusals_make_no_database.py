"""The plugin's release and settle refused bad input only after making the host's state database.

Every other function that changes the state checks first (place and move_memory on an empty
database in memory, the CLI's release reads one): a ``release`` with a VM that is no UUID, an
unknown VM or ``force=maybe``, and a ``settle`` of a VM that is no UUID, unknown, halted or the
control domain, each answered its refusal and left ``ledger.db`` (with its -wal, -shm and
.locks) on a host where nothing had ever been placed."""
import os
import time

import pytest

from test_plugin import err, ok, run
from xapi_numa.ops import start_hold

UNKNOWN = "01234567-89ab-cdef-0123-456789abcdef"


def made_there(ledger: str) -> list:
    """The database, its -wal and -shm, its .locks (the pool's hosts share a folder)."""
    return sorted(n for n in os.listdir(os.path.dirname(ledger)) if n.startswith(os.path.basename(ledger)))


@pytest.mark.parametrize("fn, args, code, field", [
    ("release", {"vm": "not-a-uuid"}, "NUMA_INVALID_ARGUMENT", "vm"),
    ("release", {"vm": " "}, "NUMA_INVALID_ARGUMENT", "vm"),
    ("release", {"vm": "HALTED", "force": "maybe"}, "NUMA_INVALID_ARGUMENT", "force"),
    ("release", {"vm": "HALTED", "force": ""}, "NUMA_INVALID_ARGUMENT", "force"),
    ("release", {"vm": UNKNOWN}, "NUMA_UNKNOWN_VM", UNKNOWN),
    ("release", {"vm": UNKNOWN, "force": "true"}, "NUMA_UNKNOWN_VM", UNKNOWN),
    ("settle", {"vm": "not-a-uuid"}, "NUMA_INVALID_ARGUMENT", "vm"),
    ("settle", {"vm": UNKNOWN}, "NUMA_UNKNOWN_VM", UNKNOWN),
    ("settle", {"vm": "HALTED"}, "NUMA_NOT_RUNNING", "HALTED"),
    ("settle", {"vm": "DOM0"}, "NUMA_INVALID_ARGUMENT", "vm"),
])
def test_a_refused_release_or_settle_makes_no_state_database(ctx, fn, args, code, field):
    server, session, host, sid = ctx
    _, halted = server.add_vm("halted", 1, 256 << 20)
    names = {"HALTED": halted, "DOM0": server.vms[server.control_domains[host]]["uuid"]}
    args = {k: names.get(v, v) for k, v in args.items()}
    ledger = server.ledgers[host]
    assert made_there(ledger) == []
    details = err(run(server, host, sid, fn, args))
    assert details[:2] == [code, names.get(field, field)], details
    assert made_there(ledger) == [], (fn, args, details)


def test_an_accepted_release_still_makes_it_and_releases_there(ctx):
    """(unchanged) a release that is made holds the VM's lock beside the database, made as before"""
    server, session, host, sid = ctx
    _, uuid = server.add_vm("placed", 1, 256 << 20)
    assert ok(run(server, host, sid, "release", {"vm": uuid})) == {"vm": uuid, "released": False, "boot_pin": "none"}
    assert made_there(server.ledgers[host])
    assert ok(run(server, host, sid, "place", {"vm": uuid}))["reserved"] is True
    assert ok(run(server, host, sid, "release", {"vm": uuid, "force": " TRUE "}))["released"] is True


@pytest.mark.parametrize("fn", ["release", "place"])
def test_a_place_or_release_refused_for_a_pool_start_holding_the_vm_makes_no_state_database(ctx, fn):
    """NUMA_VM_BUSY (a pool vm-start holds the VM, its place made on another host) is a refusal
    too: it was checked only inside the VM's lock, beside the database made for it."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("starting", 1, 256 << 20)
    token = start_hold.start_token(time.time(), 300, uuid)  # this live process's, as a vm-start's
    session.xenapi.VM.add_to_other_config(ref, start_hold.START_KEY, token)
    ledger = server.ledgers[host]
    details = err(run(server, host, sid, fn, {"vm": uuid}))
    assert details[0] == "NUMA_VM_BUSY" and details[2:4] == ["vm", uuid], details
    assert made_there(ledger) == [], details
    assert session.xenapi.VM.get_other_config(ref) == {start_hold.START_KEY: token}  # its hold untouched
    # the start's own call, and a forced release, still go on (and make the database)
    passed = ok(run(server, host, sid, fn, {"vm": uuid, start_hold.START_OWNER_ARG: token}))
    assert passed["vm"] == uuid and made_there(ledger), passed
    if fn == "release":
        forced = ok(run(server, host, sid, fn, {"vm": uuid, "force": "true"}))
        assert forced["start_hold"].startswith("overridden: a pool vm-start"), forced
