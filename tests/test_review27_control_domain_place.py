"""A control domain (dom0) is never started by xapi, and nothing here places it.

``vnuma_plan`` refused dom0 as "a control domain (dom0)", but the plugin's ``place vm=<dom0>
dry_run=true`` answered a placement (for a domain that is never built), and ``place`` without
dry_run refused it as "is Running" allowing "dry_run=true", which then answered; a pool
``vm-start`` of dom0 said it "is Running".  Each now refuses it as the control domain, in the
same words (one check, :func:`place_request.not_a_control_domain`), changing nothing."""
import pytest

from test_plugin import err, run
from test_plugin_edges import control_domain
from xapi_numa.errors import InvalidArgument
from xapi_numa.ops.pool import vm_start

SAID = "is a control domain (dom0) (allowed: a guest VM)"


@pytest.mark.parametrize("dry_run", [{"dry_run": "true"}, {}, {"dry_run": "false"}])
def test_place_refuses_the_control_domain_as_vnuma_plan_does(ctx, dry_run):
    server, session, host, sid = ctx
    ref, uuid = control_domain(server, host)
    before = session.xenapi.VM.get_record(ref)
    details = err(run(server, host, sid, "place", dict({"vm": uuid}, **dry_run)))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "vm"], details
    assert details[2] == "vm: {} {}".format(uuid, SAID), details
    planned = err(run(server, host, sid, "vnuma_plan", {"vm": uuid}))
    assert planned[:3] == details[:3], (planned, details)  # the same words
    assert session.xenapi.VM.get_record(ref) == before


def test_another_hosts_control_domain_is_refused_by_a_dry_run_too(ctx):
    server, session, host, sid = ctx
    ref, uuid = control_domain(server, session.xenapi.host.get_all()[1])
    details = err(run(server, host, sid, "place", {"vm": uuid, "dry_run": "true"}))
    assert details[:3] == ["NUMA_INVALID_ARGUMENT", "vm", "vm: {} {}".format(uuid, SAID)], details


def test_vm_start_of_the_control_domain_says_it_is_the_control_domain(pool):
    server, session = pool
    host = session.xenapi.host.get_all()[0]
    ref, uuid = control_domain(server, host)
    before = session.xenapi.VM.get_other_config(ref)
    server.calls.clear()
    with pytest.raises(InvalidArgument) as refused:
        vm_start(session, uuid)
    err_ = refused.value
    assert err_.field == "vm" and "is a control domain (dom0)" in err_.detail, err_.message
    assert "Running" not in err_.message and err_.allowed == "a guest VM", err_.message
    assert server.plugin_calls == 0
    assert session.xenapi.VM.get_other_config(ref) == before
