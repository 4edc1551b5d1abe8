"""The plugin's get_policy on a VM whose stored policy is damaged (other_config:numa_mode
holding a typo) names the VM, the key, the stored value and what is allowed.

It answered NUMA_INVALID_ARGUMENT naming only the key: in xapi's task list, or a log of
many calls, nothing said which VM holds the value to fix (vm-placement and settle say
it beside the VM they answer for)."""
from test_plugin import err, run

UNKNOWN = "01234567-89ab-cdef-0123-456789abcdef"


def test_a_damaged_stored_policy_is_named_with_its_vm(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    session.xenapi.VM.add_to_other_config(ref, "numa_mode", "stirct")
    before = session.xenapi.VM.get_other_config(ref)
    details = err(run(server, host, sid, "get_policy", {"vm": uuid}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "other_config:numa_mode"], details
    assert uuid in details[2] and "'stirct'" in details[2], details
    assert "(allowed: any, best_effort, preferred, strict)" in details[2], details
    assert session.xenapi.VM.get_other_config(ref) == before  # nothing changed


def test_a_bad_argument_is_still_the_callers(ctx):
    server, session, host, sid = ctx
    assert err(run(server, host, sid, "get_policy", {"vm": UNKNOWN})) [:2] == ["NUMA_UNKNOWN_VM", UNKNOWN]
    assert err(run(server, host, sid, "get_policy", {"vm": "not-a-uuid"}))[:2] == ["NUMA_INVALID_ARGUMENT", "vm"]
