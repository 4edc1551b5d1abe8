"""The plugin's release and settle refused bad input only after making the host's state database.

Every other function that changes the state checks first (place and move_memory on an empty
database in memory, the CLI's release reads one): a ``release`` with a VM that is no UUID, an
unknown VM or ``force=maybe``, and a ``settle`` of a VM that is no UUID, unknown, halted or the
control domain, each answered its refusal and left ``ledger.db`` (with its -wal, -shm and
.locks) on a host where nothing had ever been placed."""
import os

import pytest

from test_plugin import err, ok, run

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
