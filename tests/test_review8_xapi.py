"""Review 8: the numa plugin and the XenAPI layer as xapi really drives them.

The calls here are written as xapi writes them (ocaml/xapi/xapi_plugins.ml:
``XMLRPC.To.methodCall`` printed by xml-light2): bare ``<value>text</value>``
strings, ``<value/>`` for an empty one, no XML declaration, and the args struct
exactly as ``xe host-call-plugin ... args:k=v`` built it, which keeps a key
typed twice (cli_operations.ml ``read_map_params`` returns every pair).
"""
import subprocess

from test_plugin import PLUGIN, err, ok
from xapi_numa.plugin import protocol as proto


def _esc(text):
    """xml-light2's esc_pcdata: <, >, &, " escaped; control characters but tab, LF and CR dropped."""
    out = []
    for ch in text:
        if ch in "<>&\"":
            out.append({"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;"}[ch])
        elif ord(ch) >= 0x20 or ch in "\t\n\r":
            out.append(ch)
    return "".join(out)


def _string(text):
    return "<value/>" if text == "" else "<value>{}</value>".format(_esc(text))


def xapi_call(fn, session, pairs):
    """The methodCall xapi passes a plugin in argv[1], for ``pairs`` in the order given (repeats kept)."""
    members = "".join("<member><name>{}</name>{}</member>".format(_esc(k), _string(v)) for k, v in pairs)
    struct = "<value><struct>{}</struct></value>".format(members) if pairs else "<value><struct/></value>"
    return ("<methodCall><methodName>{}</methodName><params><param>{}</param><param>{}</param></params>"
            "</methodCall>").format(_esc(fn), _string(session), struct)


def run_as_xapi(server, host, fn, session, pairs):
    done = subprocess.run([PLUGIN, xapi_call(fn, session, pairs)], capture_output=True, text=True, timeout=120,
                          env=server.plugin_env(host))
    assert done.returncode == 0, done.stderr
    return proto.parse_response(done.stdout)


def test_an_argument_given_twice_is_refused_not_the_last_one_taken(ctx):
    """``xe host-call-plugin ... args:vm=A args:vm=B`` reaches the plugin as a struct with two
    ``vm`` members; xmlrpc's loads kept the last silently, so the call acted on B (here a
    set_policy on whichever VM came last, with the other one named on the same line)."""
    server, session, host, sid = ctx
    ref_a, uuid_a = server.add_vm("a", 2, 1 << 30)
    ref_b, uuid_b = server.add_vm("b", 2, 1 << 30)
    details = err(run_as_xapi(server, host, "set_policy", sid,
                              [("vm", uuid_a), ("mode", "strict"), ("nodes", "1"), ("vm", uuid_b)]))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "vm"], details
    assert "more than once" in details[2], details
    assert session.xenapi.VM.get_other_config(ref_a) == {} and session.xenapi.VM.get_other_config(ref_b) == {}
    # each argument once is fine
    assert ok(run_as_xapi(server, host, "set_policy", sid, [("vm", uuid_a), ("mode", "strict"), ("nodes", "1")]))[
        "vm"] == uuid_a
    # an unknown function is said as ever, repeated arguments or not
    assert err(run_as_xapi(server, host, "nosuch", sid, [("vm", uuid_a), ("vm", uuid_b)]))[:2] == [
        "UNKNOWN_XENAPI_PLUGIN_FUNCTION", "nosuch"]


def test_a_map_write_given_up_is_xapis_map_duplicate_key_with_xapis_four_parameters():
    """When other writers keep re-adding a key, _set_map_key gives up with MAP_DUPLICATE_KEY.
    xapi's datamodel gives that error four parameters (type, param_name, uuid, key:
    datamodel_errors.ml, raised as [tbl; fld; ref; key] by exnHelper.ml); ours carried a
    fifth, a sentence, so the plugin's ErrorDescription had six entries where every
    MAP_DUPLICATE_KEY from xapi has five.  The sentence belongs in the message."""
    import XenAPI

    from xapi_numa.backends import xapi

    class VM:
        @staticmethod
        def get_other_config(vm):
            return {}

        @staticmethod
        def add_to_other_config(vm, key, value):  # another writer always got there first
            raise XenAPI.Failure(["MAP_DUPLICATE_KEY", "VM", "other_config", vm, key])

    class Session:
        class xenapi:
            pass

    Session.xenapi.VM = VM
    try:
        xapi.set_other_config(Session, "OpaqueRef:vm", "numa_mode", "strict")
    except xapi.XapiError as err:
        assert err.code == "MAP_DUPLICATE_KEY"
        assert list(err.params) == ["VM", "other_config", "OpaqueRef:vm", "numa_mode"], err.params
        assert "gave up after" in err.message
    else:
        raise AssertionError("no MAP_DUPLICATE_KEY")
