"""A snapshot was refused as "a template" by the plugin's place and vnuma_plan store=true
(xapi marks a snapshot a template too, and that was asked first): the admin looked for a
template of that UUID in xe template-list and found none.  A snapshot is now called one."""
import pytest

from test_plugin import err, run


@pytest.mark.parametrize("fn, args", [("place", {}), ("vnuma_plan", {"store": "true"})])
def test_a_snapshot_is_refused_as_a_snapshot(ctx, fn, args):
    server, session, host, sid = ctx
    ref, _ = server.add_vm("web", 2, 1 << 30)
    snap = session.xenapi.VM.snapshot(ref, "web-snap", [])
    uuid = session.xenapi.VM.get_uuid(snap)
    assert session.xenapi.VM.get_record(snap)["is_a_template"] is True  # as xapi marks one
    details = err(run(server, host, sid, fn, dict(args, vm=uuid)))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "vm"], details
    assert "{} is a snapshot;".format(uuid) in details[2] and "template" not in details[2], details
    assert session.xenapi.VM.get_other_config(snap) == session.xenapi.VM.get_other_config(ref) == {}
