"""The loopback XenAPI server refuses what xapi refuses: a call's parameters are read
as xapi's generated dispatcher reads them (their number, then each as its datamodel
type, then the session), so a client mistake the real xapi would refuse fails here too."""
import xmlrpc.client

import pytest


def _raw(server):
    """The server without the XenAPI client (which logs in again on SESSION_INVALID)."""
    return xmlrpc.client.ServerProxy(server.url, allow_none=True)


def _failure(answer):
    assert answer["Status"] == "Failure", answer
    return answer["ErrorDescription"]


def test_a_wrong_parameter_count_is_counted_without_the_session(pool):
    server, session = pool
    proxy, sid = _raw(server), session._session
    ref, _ = server.add_vm("vm", 2, 1 << 30)
    assert _failure(getattr(proxy, "VM.get_record")(sid, ref, "extra")) == \
        ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_record", "1", "2"]
    assert _failure(getattr(proxy, "VM.get_record")(sid)) == \
        ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_record", "1", "0"]
    assert _failure(getattr(proxy, "pool.get_all")()) == \
        ["MESSAGE_PARAMETER_COUNT_MISMATCH", "pool.get_all", "0", "-1"]


def test_a_login_takes_two_to_four_parameters(pool):
    server, _ = pool
    proxy = _raw(server)
    for params in [("root", "xenroot"), ("root", "xenroot", "2.21"), ("root", "xenroot", "2.21", "tests")]:
        answer = getattr(proxy, "session.login_with_password")(*params)
        assert answer["Status"] == "Success" and answer["Value"].startswith("OpaqueRef:"), (params, answer)
    assert _failure(getattr(proxy, "session.login_with_password")("root")) == \
        ["MESSAGE_PARAMETER_COUNT_MISMATCH", "session.login_with_password", "2", "1"]
    assert _failure(getattr(proxy, "session.login_with_password")("root", "wrong")) == \
        ["SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"]


@pytest.mark.parametrize("method, params", [
    ("VM.get_by_uuid", (7,)),                                      # a string given a number
    ("VM.get_by_uuid", (None,)),                                   # or a nil
    ("host.get_record", (1,)),                                     # a ref given a number
    ("VM.add_to_other_config", ("{vm}", "k", 1)),                  # a map value given a number
    ("VM.start_on", ("{vm}", "{host}", "false", False)),           # a bool given a string
    ("host.call_plugin", ("{host}", "numa", "info", {"n": 1})),    # a plugin argument given a number
    ("host.call_plugin", ("{host}", "numa", "info", {"b": True})),
])
def test_a_parameter_of_another_type_is_refused(pool, method, params):
    server, session = pool
    vm, _ = server.add_vm("vm", 2, 1 << 30)
    host = session.xenapi.host.get_all()[0]
    params = tuple(p.format(vm=vm, host=host) if isinstance(p, str) else p for p in params)
    failure = _failure(getattr(_raw(server), method)(session._session, *params))
    assert failure[0] == "INTERNAL_ERROR" and "expected" in failure[1], failure
    assert server.vms[vm]["other_config"] == {} and server.vms[vm]["power_state"] == "Halted"
    assert server.plugin_calls == 0


def test_the_parameters_are_read_before_the_session_is_checked(pool):
    server, _ = pool
    proxy = _raw(server)
    assert _failure(getattr(proxy, "VM.get_by_uuid")("OpaqueRef:gone", 7))[0] == "INTERNAL_ERROR"
    assert _failure(getattr(proxy, "VM.get_by_uuid")("OpaqueRef:gone", "x")) == ["SESSION_INVALID", "OpaqueRef:gone"]


def test_an_unknown_method_checks_the_session_first(pool):
    server, session = pool
    proxy = _raw(server)
    assert _failure(getattr(proxy, "VM.no_such_call")("OpaqueRef:gone")) == ["SESSION_INVALID", "OpaqueRef:gone"]
    assert _failure(getattr(proxy, "VM.no_such_call")(session._session)) == ["MESSAGE_METHOD_UNKNOWN", "VM.no_such_call"]
    assert _failure(getattr(proxy, "VM.no_such_call")()) == ["MESSAGE_METHOD_UNKNOWN", "VM.no_such_call"]


def test_a_vm_the_host_cannot_hold_cannot_boot_there(pool):
    """As xapi's assert_can_boot_here (and VM.start_on, which asserts it): the host's free
    memory for the VM's dynamic minimum, then its pCPUs for VCPUs_max."""
    import XenAPI

    server, session = pool
    host = session.xenapi.host.get_all()[0]
    free = sum(m.free for m in server.sims[host].node_memory())
    big, _ = server.add_vm("big", 2, free + (1 << 20))
    wide, _ = server.add_vm("wide", 9, 1 << 30)
    unrestricted, _ = server.add_vm("unrestricted", 9, 1 << 30, platform={"vcpu-unrestricted": "true"})
    for call in (session.xenapi.VM.assert_can_boot_here, lambda vm, h: session.xenapi.VM.start_on(vm, h, False, False)):
        with pytest.raises(XenAPI.Failure) as err:
            call(big, host)
        assert err.value.details == ["HOST_NOT_ENOUGH_FREE_MEMORY", str(free + (1 << 20)), str(free)]
        with pytest.raises(XenAPI.Failure) as err:
            call(wide, host)
        assert err.value.details == ["HOST_NOT_ENOUGH_PCPUS", "9", "8"]
    session.xenapi.VM.assert_can_boot_here(unrestricted, host)
    assert all(session.xenapi.VM.get_power_state(vm) == "Halted" for vm in (big, wide))


def test_every_host_has_its_control_domain_record(pool):
    """As in xapi: VM.get_all_records lists each host's dom0, running there as domain 0,
    with a UUID of its own (the host's inventory's CONTROL_DOMAIN_UUID)."""
    server, session = pool
    records = session.xenapi.VM.get_all_records()
    dom0s = {r["resident_on"]: (ref, r) for ref, r in records.items() if r["is_control_domain"]}
    assert sorted(dom0s) == sorted(session.xenapi.host.get_all())
    for host, (ref, record) in dom0s.items():
        assert (record["power_state"], record["domid"]) == ("Running", "0")
        assert record["name_label"] == "Control domain on host: " + session.xenapi.host.get_name_label(host)
        assert ref in session.xenapi.host.get_record(host)["resident_VMs"]
        with open(server.inventories[host]) as f:
            assert "CONTROL_DOMAIN_UUID='{}'".format(record["uuid"]) in f.read()
