"""A second ``place`` of a VM that xapi is starting (review 15k).

Two ``vm-start`` runs of one VM (an admin and a pool tool, or a retry): the first
placed it and called ``VM.start_on``; while xapi built the domain (power state still
Halted) the second one's ``place`` replaced the build's reservation with a new one
(sized as if none of the build's pages had landed, on whatever node looked best
now) and rewrote the pin keys; its own ``VM.start_on`` was then refused by xapi and
its release kept the new reservation and pin ("the VM is starting").  The build's
memory went on landing where the first pin put it, and ``settle`` read the second
placement's nodes.  A place while xapi starts the VM is refused now, changing nothing.
"""
from test_plugin import err, ok, run

from xapi_numa.state.ledger import Ledger


def test_place_while_xapi_starts_the_vm_is_refused_and_changes_nothing(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    ok(run(server, host, sid, "place", {"vm": uuid}))
    before = Ledger(server.ledgers[host]).reservation(uuid)
    with server.lock:  # what xapi shows while VM.start_on builds it here
        server.vms[ref].update(current_operations={"OpaqueRef:task": "start_on"}, scheduled_to_be_resident_on=host)
    pinned = (session.xenapi.VM.get_VCPUs_params(ref), session.xenapi.VM.get_other_config(ref))
    details = err(run(server, host, sid, "place", {"vm": uuid}))
    assert details[0] == "NUMA_VM_BUSY" and uuid in details, details
    assert "being started by xapi" in details[1], details  # the message says why
    assert Ledger(server.ledgers[host]).reservation(uuid) == before
    assert (session.xenapi.VM.get_VCPUs_params(ref), session.xenapi.VM.get_other_config(ref)) == pinned
    # a what-if is still answered
    assert ok(run(server, host, sid, "place", {"vm": uuid, "dry_run": "true"}))["reserved"] is False
