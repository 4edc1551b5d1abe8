"""Review 11 (docs against code): ``memory_move_status`` asked on a host where the VM is
not running answered ``"state": "none"`` as for a VM that never had a move, though its
moves are in the journal of the host it runs on.  The answer now names that host in
``running_on`` (as ``release`` does); null for a VM halted, or here."""
from test_plugin import ok, run


def test_move_status_names_the_host_the_vm_runs_on(ctx):
    server, session, host, sid = ctx
    other_host = session.xenapi.host.get_all()[1]
    there = session.xenapi.host.get_record(other_host)
    ref, uuid = server.add_vm("elsewhere", 2, 512 << 20, domain_type="pvh")
    assert ok(run(server, host, sid, "memory_move_status", {"vm": uuid})) == \
        {"vm": uuid, "state": "none", "running_on": None}  # halted
    session.xenapi.VM.start_on(ref, other_host, False, False)
    answer = ok(run(server, host, sid, "memory_move_status", {"vm": uuid}))
    assert answer == {"vm": uuid, "state": "none", "running_on": there["uuid"]}, answer
    # asked where it runs: no move there either, and nothing elsewhere to name
    assert ok(run(server, other_host, sid, "memory_move_status", {"vm": uuid})) == \
        {"vm": uuid, "state": "none", "running_on": None}
