"""A pool vm-start of a template or a snapshot (xapi never starts either) went as far as each
host's place: it held the VM (its numa_start_owner key written into the template's
other_config and removed again), asked every host's plugin for a dry run, and was then
refused by the chosen host's place in the plugin's words, "(allowed: a VM that can start
(place its clone), or dry_run=true)": vm-start has no dry_run.  It is now refused before
anything is asked or written, in vm-start's words, as a VM that is not halted is."""
import pytest

from xapi_numa.errors import InvalidArgument
from xapi_numa.ops.pool import vm_start


def template(server, session, ref):
    server.vms[ref]["is_a_template"] = True
    return ref


def snapshot(server, session, ref):
    return session.xenapi.VM.snapshot(ref, "snap", [])


@pytest.mark.parametrize("make, kind", [(template, "template"), (snapshot, "snapshot")])
def test_vm_start_of_a_vm_xapi_never_starts_is_refused_before_anything_is_asked_or_written(pool, make, kind):
    server, session = pool
    ref, _ = server.add_vm("web", 1, 256 << 20)
    made = make(server, session, ref)
    uuid = session.xenapi.VM.get_uuid(made)
    before = session.xenapi.VM.get_other_config(made)
    server.calls.clear()
    with pytest.raises(InvalidArgument) as refused:
        vm_start(session, uuid)
    err = refused.value
    assert err.field == "vm" and "is a {}".format(kind) in err.message and "dry_run" not in err.message, err.message
    assert "clone" in err.allowed, err.allowed
    assert server.plugin_calls == 0
    assert not [m for m in server.calls if m.startswith("host.call_plugin") or "other_config" in m and
                not m.endswith("get_other_config")], server.calls
    assert session.xenapi.VM.get_other_config(made) == before
    assert session.xenapi.VM.get_power_state(made) == "Halted"
