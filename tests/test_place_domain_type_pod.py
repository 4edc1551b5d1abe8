"""A place answer's ``domain_type`` is the VM's guest type, also for a VM built with populate-on-demand.

Since 9fa1562 the planner lays out the build of an HVM/PVH VM started below its static maximum
as PV's RAM (the PoD cache is filled in 2 MiB extents), by asking for the "pv" build type; and
since 4a0a0dc every place answer says ``domain_type`` from that same request, so such an HVM VM's
place (dry run or not) answered ``"domain_type": "pv"``: a type the VM is not, while the docs say
the answer names the guest type assumed."""
import pytest
from test_plugin import ok, run

GIB = 1 << 30


@pytest.mark.parametrize("domain_type, said", [("hvm", "hvm"), ("pvh", "pvh"), ("pv_in_pvh", "pvh"), ("pv", "pv")])
def test_a_vm_started_below_its_static_maximum_is_said_to_be_of_its_own_type(ctx, domain_type, said):
    server, session, host, sid = ctx
    _, uuid = server.add_vm("ballooned", 1, 2 * GIB, domain_type=domain_type, dynamic_max=GIB)
    dry = ok(run(server, host, sid, "place", {"vm": uuid, "dry_run": "true"}))
    assert dry["domain_type"] == said, dry
    placed = ok(run(server, host, sid, "place", {"vm": uuid}))
    assert placed["reserved"] is True and placed["domain_type"] == said, placed


def test_at_its_static_maximum_too(ctx):
    server, session, host, sid = ctx
    _, uuid = server.add_vm("full", 1, GIB, domain_type="hvm")
    assert ok(run(server, host, sid, "place", {"vm": uuid, "dry_run": "true"}))["domain_type"] == "hvm"
