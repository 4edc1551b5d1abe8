"""The plugin's answers about dom0, page-move refusals and unknown functions (review of the plugin)."""
import pytest

from test_plugin import PLUGIN, err, ok, run
from test_pool_e2e import cli, finish
from xapi_numa.plugin import protocol as proto
from xapi_numa.plugin.functions import FUNCTIONS

import subprocess
import time


def control_domain(server, host):
    """xapi's VM record for a host's dom0: a UUID of its own, not Xen's all-zero handle."""
    ref = server.control_domains[host]
    return ref, server.vms[ref]["uuid"]


def test_this_hosts_control_domain_by_its_xapi_uuid_is_dom0_for_queries_and_refused_for_settle(ctx, tmp_path):
    """vm_memory, vcpus and settle with dom0's xapi UUID answered NUMA_NOT_RUNNING ("is
    not running"), and vm-placement of dom0 failed as a whole."""
    from xapi_numa.ops import pool_queries

    server, session, host, sid = ctx
    ref, uuid = control_domain(server, host)
    memory = ok(run(server, host, sid, "vm_memory", {"vm": uuid}))
    assert memory["domid"] == 0 and memory["vm"] == uuid and memory["total"] > 0
    rows = ok(run(server, host, sid, "vcpus", {"vm": uuid}))
    assert rows and {r["domid"] for r in rows} == {0}
    for fn, args in (("settle", {"vm": uuid}), ("move_memory", {"vm": uuid, "to": "1"})):
        details = err(run(server, host, sid, fn, args))
        assert details[:2] == ["NUMA_INVALID_ARGUMENT", "vm"], (fn, details)
        assert "is this host's control domain (dom0) (allowed: a guest VM)" in details[2], (fn, details)
    placed = pool_queries.vm_placement(session, uuid)
    assert placed["state"] == "Running" and placed["memory"]["domid"] == 0 and placed["vcpus"]
    code, out, err_ = finish(cli(server, tmp_path, "vm-placement", uuid))
    assert code == 0 and "(domid 0)" in out, err_


def test_another_hosts_control_domain_is_said_to_run_there(ctx):
    server, session, host, sid = ctx
    other = session.xenapi.host.get_all()[1]
    ref, uuid = control_domain(server, other)
    details = err(run(server, host, sid, "vm_memory", {"vm": uuid}))
    assert details[:3] == ["NUMA_NOT_RUNNING", uuid, server.hosts[other]["uuid"]]
    details = err(run(server, host, sid, "settle", {"vm": uuid}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "vm"] and "is a control domain (dom0)" in details[2]


def test_not_movable_names_the_vm_by_uuid_first_and_move_memory_answers_its_uuid(ctx):
    """NUMA_NOT_MOVABLE's first parameter was the Xen domain's name from some refusals
    and the UUID from others; move_memory answered "vm": the name."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("Café ☕", 1, 256 << 20)  # HVM: its device model refuses the move
    session.xenapi.VM.start_on(ref, host, False, False)
    details = err(run(server, host, sid, "move_memory", {"vm": uuid, "to": "1"}))
    assert details[0] == "NUMA_NOT_MOVABLE" and details[1] == uuid and "device model" in details[2], details
    assert details[3:] == ["Café ☕"]
    with server.lock:
        server.vms[ref]["current_operations"] = {"task": "migrate_send"}
    details = err(run(server, host, sid, "move_memory", {"vm": uuid, "to": "1"}))
    assert details[:2] == ["NUMA_NOT_MOVABLE", uuid] and "migrate_send" in details[2]
    with server.lock:
        server.vms[ref]["current_operations"] = {}
    ref, uuid = server.add_vm("pvh1", 1, 256 << 20, domain_type="pvh")
    session.xenapi.VM.start_on(ref, host, False, False)
    started = ok(run(server, host, sid, "move_memory", {"vm": uuid, "to": "1", "max": "4M"}))
    assert started["vm"] == uuid and started["name"] == "pvh1"
    deadline = time.monotonic() + 120
    while ok(run(server, host, sid, "memory_move_status", {"vm": uuid}))["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)


def xapi_call_bytes(fn, sid):
    """The methodCall as xapi writes it (XMLRPC.To.methodCall, Xml.to_string): no XML
    declaration, and an empty fn as <methodName/>."""
    name = "<methodName>{}</methodName>".format(fn) if fn else "<methodName/>"
    return ("<methodCall>" + name + "<params><param><value>" + sid + "</value></param>"
            "<param><value><struct/></value></param></params></methodCall>")


@pytest.mark.parametrize("fn", ["nosuch", "topology", ""])
def test_an_unknown_or_empty_function_is_the_callers_mistake_and_lists_the_functions(ctx, fn):
    """An unknown fn answered [UNKNOWN_XENAPI_PLUGIN_FUNCTION, fn] with no hint (the
    function is host_topology); an empty one (xe ... fn=) was XENAPI_PLUGIN_FAILURE 'bad call'."""
    server, session, host, sid = ctx
    done = subprocess.run([PLUGIN, xapi_call_bytes(fn, sid)], capture_output=True, text=True, timeout=60,
                          env=server.plugin_env(host))
    details = proto.parse_response(done.stdout)["ErrorDescription"]
    assert details[:2] == ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", fn], details  # as dom0's XenAPIPlugin answers
    assert details[2].startswith("fn: ") and "(allowed: {})".format(", ".join(sorted(FUNCTIONS))) in details[2]
    assert "host_topology" in details[2]
