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


def _holds(model, wire, value) -> bool:
    """Does an XML-RPC value hold datamodel type ``wire`` as xapi sends it (ints as
    decimal strings, refs as OpaqueRef strings, enums by their datamodel spelling)?"""
    import xmlrpc.client

    enums = {e["name"]: {v["name"] for v in e["values"]} for c in model.values() for e in c.get("enums", [])}
    mapping = re.match(r"^\((.+?) -> (.+)\) map$", wire)
    if mapping:
        key, val = mapping.groups()
        return isinstance(value, dict) and all(_holds(model, key, k) and _holds(model, val, v)
                                               for k, v in value.items())
    if wire.endswith(" set"):
        return isinstance(value, list) and all(_holds(model, wire[:-4], v) for v in value)
    if wire.endswith(" ref"):
        return isinstance(value, str) and value.startswith("OpaqueRef:")
    if wire.startswith("enum "):
        return isinstance(value, str) and value in enums[wire[5:]]
    return {"string": lambda: isinstance(value, str),
            "int": lambda: isinstance(value, str) and re.match(r"^-?[0-9]+$", value) is not None,
            "float": lambda: isinstance(value, float),
            "bool": lambda: isinstance(value, bool),
            "datetime": lambda: isinstance(value, xmlrpc.client.DateTime)}[wire]()


def test_record_values_have_their_datamodel_types(model, pool):
    server, session = pool
    server.add_vm("vm", 2, 1 << 30, other_config={"k": "v"}, vcpus_params={"mask": "0,1"})
    pv, _ = server.add_vm("pv", 1, 1 << 30, domain_type="pv")
    session.xenapi.VM.start_on(pv, session.xenapi.host.get_all()[0], False, False)
    records = [("VM", r) for r in session.xenapi.VM.get_all_records().values()]
    records += [("host", r) for r in session.xenapi.host.get_all_records().values()]
    records += [("pool", session.xenapi.pool.get_record(session.xenapi.pool.get_all()[0]))]
    records += [("VM_metrics", session.xenapi.VM_metrics.get_record(r["metrics"]))
                for cls, r in records if cls == "VM"]
    for cls, record in records:
        types = {f["name"]: f["type"] for f in model[cls]["fields"]}
        for field, value in record.items():
            assert _holds(model, types[field], value), f"{cls}.{field}: {value!r} is not a {types[field]}"


def test_records_have_the_fields_xapi_numa_reads(model, pool):
    """Every field of a VM or host record the product reads is in the loopback's records
    (xapi's records have every field: a missing one would be read as its default)."""
    server, session = pool
    vm, _ = server.add_vm("vm", 2, 1 << 30)
    read = {"VM": {"HVM_boot_policy", "is_a_snapshot", "is_a_template", "is_control_domain", "domain_type",
                   "HVM_shadow_multiplier", "VCPUs_max", "VCPUs_params", "VGPUs", "attached_PCIs",
                   "current_operations", "domid", "memory_dynamic_max", "memory_dynamic_min", "memory_static_max",
                   "name_label", "other_config", "platform", "power_state", "resident_on",
                   "scheduled_to_be_resident_on", "uuid"},
            "host": {"enabled", "name_label", "uuid", "resident_VMs"}}
    record = {"VM": session.xenapi.VM.get_record(vm), "host": session.xenapi.host.get_record(
        session.xenapi.host.get_all()[0])}
    for cls, fields in read.items():
        assert fields <= {f["name"] for f in model[cls]["fields"]}, cls
        assert fields <= set(record[cls]), f"{cls}: {fields - set(record[cls])} missing"
