"""Review 11 (docs against code): release of a VM xapi is starting answers "boot_pin":
"kept" with "running_on" (null while starting), as docs/pool.md says; when xapi was
starting it on this host the answer had no "running_on" at all, so a client reading the
field docs/pool.md names failed on exactly the case it describes."""
from test_plugin import ok, run


def test_release_while_xapi_starts_the_vm_here_answers_running_on_null(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    ok(run(server, host, sid, "place", {"vm": uuid}))
    with server.lock:
        server.vms[ref]["current_operations"] = {"OpaqueRef:task": "start_on"}
        server.vms[ref]["scheduled_to_be_resident_on"] = host
    answer = ok(run(server, host, sid, "release", {"vm": uuid}))
    assert answer["boot_pin"] == "kept" and answer["released"] is False, answer
    assert answer["reservation"] == "kept: the VM is starting", answer
    assert "running_on" in answer and answer["running_on"] is None, answer
    # the same start scheduled on another host: the same field, null as well
    other = next(h for h in session.xenapi.host.get_all() if h != host)
    with server.lock:
        server.vms[ref]["scheduled_to_be_resident_on"] = other
    answer = ok(run(server, host, sid, "release", {"vm": uuid}))
    assert answer["boot_pin"] == "kept" and answer["running_on"] is None, answer
