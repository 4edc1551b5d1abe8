"""The pool operations when members fail, share names, or fail part-way (review of the plugin)."""
import json
import types

import pytest

from test_pool_e2e import G, cli, finish
from xapi_loopback import Failure, LoopbackXapi
from xapi_numa.ops import pool as pool_ops, pool_queries
from xapi_numa.state.ledger import Ledger


def unreachable(server, monkeypatch, when):
    """host.call_plugin answers as xapi does for a member it cannot forward to, where ``when``."""
    real = LoopbackXapi.host_call_plugin

    def call_plugin(self, session_id, host, plugin, fn, args):
        if when(host, fn, args):
            raise Failure("CANNOT_CONTACT_HOST", host)
        return real(self, session_id, host, plugin, fn, args)
    monkeypatch.setattr(server, "host_call_plugin", types.MethodType(call_plugin, server))


def test_a_member_the_master_cannot_contact_is_marked_not_the_end_of_the_pool_query(pool, tmp_path, monkeypatch):
    """CANNOT_CONTACT_HOST from one member failed `topology --pool` as a whole: the
    other hosts' answers were lost."""
    server, session = pool
    hosts = list(server.hosts)
    unreachable(server, monkeypatch, lambda host, fn, args: host == hosts[1])
    answers = pool_queries.per_host(session, "host_topology")
    failed = [pool_queries.failed_host(a) for a in answers.values()]
    assert sorted(failed, key=str) == sorted([None, None, "CANNOT_CONTACT_HOST " + hosts[1]], key=str)
    code, out, err = finish(cli(server, tmp_path, "topology"))
    assert code == 0, err
    assert "did not answer (CANNOT_CONTACT_HOST" in out and out.count("(credit2)") == 2
    code, out, err = finish(cli(server, tmp_path, "vcpus", "--json"))
    assert code == 0 and "did not answer: CANNOT_CONTACT_HOST" in err and json.loads(out)


def test_an_expired_session_still_fails_the_pool_query(pool, monkeypatch):
    server, session = pool
    real = LoopbackXapi.host_call_plugin

    def call_plugin(self, session_id, host, plugin, fn, args):
        raise Failure("SESSION_INVALID", session_id)
    monkeypatch.setattr(server, "host_call_plugin", types.MethodType(call_plugin, server))
    from xapi_numa.backends.xapi import XapiError
    with pytest.raises(XapiError) as raised:
        pool_queries.per_host(session, "host_topology")
    assert raised.value.code == "SESSION_INVALID"
    assert real


def test_hosts_that_share_a_name_are_all_answered_and_told_apart(pool, tmp_path):
    """per_host keyed its answer by name_label, which xapi does not keep unique: of two
    hosts with one name only the last was shown."""
    server, session = pool
    hosts = list(server.hosts)
    session.xenapi.host.set_name_label(hosts[1], "host0")
    uuids = [server.hosts[h]["uuid"] for h in hosts]
    answers = pool_queries.per_host(session, "host_topology")
    assert sorted(answers) == sorted(uuids)
    assert [answers[u]["name_label"] for u in uuids] == ["host0", "host0", "host2"]
    code, out, err = finish(cli(server, tmp_path, "topology", "--json"))
    assert code == 0 and sorted(json.loads(out)) == sorted(uuids)
    code, out, err = finish(cli(server, tmp_path, "topology"))  # for people: names, with the UUID where shared
    assert code == 0 and "== host0 ({}) (credit2)".format(uuids[0]) in out
    assert "== host0 ({}) (credit2)".format(uuids[1]) in out and "== host2 (credit2)" in out
    code, out, err = finish(cli(server, tmp_path, "vcpus", "0", "--json"))  # every host's dom0
    rows = json.loads(out)
    assert code == 0 and sorted(r["host_uuid"] for r in rows) == sorted(uuids)


def test_a_host_name_two_hosts_share_or_none_has_is_refused_naming_what_is_allowed(pool, tmp_path):
    from xapi_numa.errors import InvalidArgument

    server, session = pool
    hosts = list(server.hosts)
    uuids = [server.hosts[h]["uuid"] for h in hosts]
    session.xenapi.host.set_name_label(hosts[1], "host0")
    ref, uuid = server.add_vm("web", 2, G)
    with pytest.raises(InvalidArgument) as ambiguous:
        pool_ops.vm_start(session, uuid, "host0")
    assert ambiguous.value.field == "host" and "2 hosts are called 'host0'" in ambiguous.value.message
    assert uuids[0] in ambiguous.value.allowed and uuids[1] in ambiguous.value.allowed
    with pytest.raises(InvalidArgument) as unknown:
        pool_ops.vm_start(session, uuid, "nosuch")
    assert unknown.value.field == "host" and "no host called 'nosuch'" in unknown.value.message
    assert "host2 ({})".format(uuids[2]) in unknown.value.allowed
    code, out, err = finish(cli(server, tmp_path, "vm-start", "web", "--host", "nosuch"))
    assert code == 2 and "--host: no host called 'nosuch' (allowed: an enabled host's name or UUID:" in err
    assert session.xenapi.VM.get_power_state(ref) == "Halted"
    assert session.xenapi.VM.get_VCPUs_params(ref) == {} and session.xenapi.VM.get_other_config(ref) == {}
    started = pool_ops.vm_start(session, uuid, uuids[1].upper())  # a UUID, in any case, names one host
    assert started["host_uuid"] == uuids[1] and session.xenapi.VM.get_resident_on(ref) == hosts[1]


def test_a_vnuma_plan_for_a_named_host_is_made_only_where_the_vm_can_boot(pool):
    """pool_plan(host=NAME) took the first host of an ambiguous name and never asked xapi
    whether the VM could boot there: it stored a plan for a host the VM cannot use."""
    from xapi_numa.errors import InvalidArgument, NoHost
    from xapi_numa.ops.vnuma_pool import pool_plan
    from xapi_numa.ops.vnuma_xapi import VNUMA_KEY

    server, session = pool
    hosts = list(server.hosts)
    uuids = [server.hosts[h]["uuid"] for h in hosts]
    for h in hosts[:2]:
        session.xenapi.host.set_name_label(h, "rack1")
    ref, uuid = server.add_vm("app", 2, 2 * G)
    server.boot_refusals[(ref, hosts[0])] = ["VM_REQUIRES_SR", ref, "OpaqueRef:sr"]
    with pytest.raises(InvalidArgument) as ambiguous:
        pool_plan(session, uuid, host="rack1", store=True)
    assert ambiguous.value.field == "host"
    with pytest.raises(NoHost) as refused:
        pool_plan(session, uuid, host=uuids[0], store=True)
    assert "VM_REQUIRES_SR" in refused.value.message and uuids[0] in refused.value.message
    assert VNUMA_KEY not in session.xenapi.VM.get_other_config(ref)
    planned = pool_plan(session, uuid, host=uuids[1], store=True)
    assert planned["host_uuid"] == uuids[1] and planned["host"] == "rack1"
    assert VNUMA_KEY in session.xenapi.VM.get_other_config(ref)


def test_a_host_lost_between_its_dry_run_and_its_place_is_released_and_the_next_one_tried(pool, monkeypatch):
    """vm_start passed over an unreachable host at the dry run but, when the chosen host
    became unreachable at the real place, gave up, leaving what that host reserved."""
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G, vcpus_params={"mask": "0,1,2,3,4,5,6,7"})
    real = LoopbackXapi.host_call_plugin
    lost = []

    def call_plugin(self, session_id, host, plugin, fn, args):
        answer = real(self, session_id, host, plugin, fn, args)
        if fn == "place" and "dry_run" not in args and not lost:
            lost.append(host)  # it placed (and reserved); its answer never reached the master
            raise Failure("CANNOT_CONTACT_HOST", host)
        return answer
    monkeypatch.setattr(server, "host_call_plugin", types.MethodType(call_plugin, server))
    started = pool_ops.vm_start(session, uuid)
    assert lost and started["host_uuid"] != server.hosts[lost[0]]["uuid"] and started["attempts"] == 2
    assert session.xenapi.VM.get_power_state(ref) == "Running" and started["settle_error"] is None
    assert Ledger(server.ledgers[lost[0]]).reservations() == []
    assert session.xenapi.VM.get_VCPUs_params(ref) == {"mask": "0,1,2,3,4,5,6,7"}


def test_a_settle_that_fails_after_the_start_reports_a_running_vm_not_a_failed_start(pool, tmp_path, monkeypatch):
    """A failing settle after VM.start_on succeeded was reported as the start's failure
    (exit 1), and the obvious retry was refused: the VM was running."""
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G)
    unreachable(server, monkeypatch, lambda host, fn, args: fn == "settle")
    started = pool_ops.vm_start(session, uuid)
    assert session.xenapi.VM.get_power_state(ref) == "Running"
    assert started["settled"] is None and started["settle_error"]["error"][0] == "CANNOT_CONTACT_HOST"
    assert "running" in started["settle_error"]["message"] and "xapi-numad" in started["settle_error"]["message"]
    ref2, uuid2 = server.add_vm("app", 2, G)
    code, out, err = finish(cli(server, tmp_path, "vm-start", "app"))
    assert code == 3 and "Traceback" not in err, err
    assert "app started on host" in out and "settling it failed (CANNOT_CONTACT_HOST" in out and "xapi-numad" in out
    ref3, uuid3 = server.add_vm("db", 2, G)
    code, out, err = finish(cli(server, tmp_path, "vm-start", "db", "--json"))
    assert code == 3 and json.loads(out)["settle_error"]["error"][0] == "CANNOT_CONTACT_HOST"
    assert session.xenapi.VM.get_power_state(ref3) == "Running"
    # the pin and its keys stay for xapi-numad's settle, which then runs as usual
    assert "numa_placed_nodes" in session.xenapi.VM.get_other_config(ref3)
