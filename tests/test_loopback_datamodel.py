"""The loopback XenAPI server matches xapi's published datamodel (shared/xenapi.json)."""
import ast
import inspect
import json
import os
import re

import pytest
from conftest import SHARED

import xapi_loopback as loopback
from xapi_loopback import GENERIC_ERRORS, LoopbackXapi

DATAMODEL = os.path.join(SHARED, "xenapi.json")
# In CI (CI=true) the datamodel is part of the checkout's surroundings: missing, it is a failure.
IN_CI = os.environ.get("CI", "").lower() == "true"
pytestmark = pytest.mark.skipif(not IN_CI and not os.path.exists(DATAMODEL),
                                reason="shared/xenapi.json not present (a failure when CI=true)")


def test_the_datamodel_is_there():
    assert os.path.exists(DATAMODEL), "xapi's datamodel {} is missing".format(DATAMODEL)


@pytest.fixture(scope="module")
def model():
    with open(DATAMODEL) as f:
        return {c["name"]: c for c in json.load(f)}


def _message(model, method):
    cls, msg = method.split(".", 1)
    found = [m for m in model.get(cls, {}).get("messages", []) if m["name"] == msg]
    return found[0] if found else None


def test_every_method_exists_with_its_parameters(model):
    for method in LoopbackXapi.methods():
        message = _message(model, method)
        assert message is not None, f"{method} is not in xapi's datamodel"
        impl = getattr(LoopbackXapi, method.replace(".", "_"))
        ours = list(inspect.signature(impl).parameters)[1:]
        theirs = [p["name"] for p in message["params"]]
        if method != "session.login_with_password":
            assert ours[0] == "session_id" and theirs[0] == "session_id", method
        assert len(ours) == len(theirs), f"{method}: {ours} vs {theirs}"
        # names match, but for Python's reserved 'self' which the datamodel uses for the object
        assert [o.replace("self_ref", "self") for o in ours] == theirs, f"{method}: {ours} vs {theirs}"
        # each parameter's annotation is its datamodel type: what the server reads it as
        wire = [p.annotation for p in list(inspect.signature(impl).parameters.values())[1:]]
        assert wire == [p["type"] for p in message["params"]], f"{method}: {wire}"


def test_record_fields_exist(model, pool):
    server, session = pool
    ref, _ = server.add_vm("vm", 2, 1 << 30)
    for cls, record in [("VM", session.xenapi.VM.get_record(ref)),
                        ("host", session.xenapi.host.get_record(session.xenapi.host.get_all()[0])),
                        ("pool", session.xenapi.pool.get_record(session.xenapi.pool.get_all()[0])),
                        ("VM_metrics", session.xenapi.VM_metrics.get_record(session.xenapi.VM.get_metrics(ref)))]:
        fields = {f["name"] for f in model[cls]["fields"]}
        assert set(record) <= fields, f"{cls}: {set(record) - fields} are not {cls} fields"


def test_error_names_exist(model):
    """Every error the server raises is in the datamodel for that call, or one of xapi's generic errors."""
    source = inspect.getsource(loopback)
    tree = ast.parse(source)
    known = set()
    for c in model.values():
        for m in c["messages"]:
            known |= {e["name"] for e in m.get("errors", [])}
    raised = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Failure" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant):
                raised.add(first.value)
            elif isinstance(first, getattr(ast, "Str", ())):  # Python 3.6's ast
                raised.add(first.s)
    assert raised, "found no errors raised"
    for name in raised:
        assert name in known or name in GENERIC_ERRORS, f"{name} is neither in the datamodel nor generic"
    # the per-call errors used are the ones the datamodel lists for those calls
    start_on = {e["name"] for e in _message(model, "VM.start_on")["errors"]}
    assert "VM_BAD_POWER_STATE" in start_on
    assert {"HOST_NOT_ENOUGH_FREE_MEMORY", "HOST_DISABLED"} <= known


def test_wire_errors_through_the_sdk(pool):
    import XenAPI

    server, session = pool
    with pytest.raises(XenAPI.Failure) as err:
        session.xenapi.VM.get_record("OpaqueRef:nope")
    assert err.value.details == ["HANDLE_INVALID", "VM", "OpaqueRef:nope"]
    ref, _ = server.add_vm("vm", 2, 1 << 30)
    session.xenapi.VM.add_to_other_config(ref, "k", "v")
    with pytest.raises(XenAPI.Failure) as err:
        session.xenapi.VM.add_to_other_config(ref, "k", "w")
    assert err.value.details[0] == "MAP_DUPLICATE_KEY"
    with pytest.raises(XenAPI.Failure) as err:
        session.xenapi.VM.hard_shutdown(ref)
    assert err.value.details[:3] == ["VM_BAD_POWER_STATE", ref, "running"]
    bad = XenAPI.Session(server.url)
    with pytest.raises(XenAPI.Failure) as err:
        bad.xenapi.login_with_password("root", "wrong", "2.21", "tests")
    assert err.value.details[0] == "SESSION_AUTHENTICATION_FAILED"
    assert re.match(r"^\d+\.\d+$", session.API_version)


def test_start_on_honours_the_mask_as_xenopsd(pool):
    server, session = pool
    ref, uuid = server.add_vm("vm", 2, 1 << 30, vcpus_params={"mask": "4,5,6,7"})
    host = session.xenapi.host.get_all()[1]
    session.xenapi.VM.start_on(ref, host, False, False)
    record = session.xenapi.VM.get_record(ref)
    assert record["power_state"] == "Running" and record["resident_on"] == host
    sim = server.sims[host]
    domid = int(record["domid"])
    assert sim.node_pages(domid)[0] == 0  # memory followed the mask to node 1
    assert {v.hard for v in sim.vcpus(domid)} == {frozenset({4, 5, 6, 7})}
    session.xenapi.VM.hard_shutdown(ref)
    assert session.xenapi.VM.get_power_state(ref) == "Halted"
