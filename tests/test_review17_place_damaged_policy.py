"""The plugin's place on a VM whose stored policy is damaged (other_config:numa_mode
holding a typo, other_config:numa_nodes naming a node this host lacks) names the VM, as
get_policy does (review 16): NUMA_INVALID_ARGUMENT, the key, the stored value, the VM.

It answered naming only the key: in xapi's task list, or a log of many starts, nothing
said which VM holds the value to fix.  Nothing is reserved or pinned."""
import pytest
from test_plugin import err, ok, run


@pytest.mark.parametrize("key, value, said", [
    ("numa_mode", "stirct", "'stirct'"),
    ("numa_nodes", "7", "node 7 does not exist on this host"),
])
@pytest.mark.parametrize("dry_run", ["false", "true"])
def test_place_names_the_vm_whose_stored_policy_is_damaged(ctx, key, value, said, dry_run):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 1 << 30, domain_type="pvh")
    if key == "numa_nodes":
        session.xenapi.VM.add_to_other_config(ref, "numa_mode", "strict")
    session.xenapi.VM.add_to_other_config(ref, key, value)
    before = (session.xenapi.VM.get_other_config(ref), session.xenapi.VM.get_VCPUs_params(ref))
    details = err(run(server, host, sid, "place", {"vm": uuid, "dry_run": dry_run}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "other_config:" + key], details
    assert "stored in VM " + uuid in details[2] and said in details[2], details
    assert (session.xenapi.VM.get_other_config(ref), session.xenapi.VM.get_VCPUs_params(ref)) == before
    assert all(n["memory_reserved"] == 0 for n in ok(run(server, host, sid, "host_topology", {}))["nodes"])
