"""The loopback runs a host plugin as xapi_plugins.ml does, and reads its stdout as
xapi's XML-RPC reader does: what xapi would refuse or report differently, it does too."""
import os
import sys
import xmlrpc.client

import pytest

import xapi_plugin_wire as wire
from xapi_loopback import LoopbackXapi
from xapi_numa.core.topology import Topology

RESPONSE = "<?xml version='1.0'?>\n<methodResponse><params><param>{}</param></params></methodResponse>\n"


def _struct(**members):
    return "<value><struct>{}</struct></value>".format("".join(
        "<member><name>{}</name>{}</member>".format(k, v) for k, v in members.items()))


@pytest.fixture
def plugin_host(tmp_path):
    """(call, plugins): call(body) installs a plugin 'p' whose Python ``body`` runs with
    ``sys`` imported, then calls it through the loopback server as xapi would."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    server = LoopbackXapi(str(tmp_path), [("h0", Topology.uniform(1, 2, 1 << 30, [[10]]))], str(plugins))
    server.start()
    proxy = xmlrpc.client.ServerProxy(server.url)
    sid = getattr(proxy, "session.login_with_password")("root", "xenroot", "2.21", "t")["Value"]
    host = getattr(proxy, "host.get_all")(sid)["Value"][0]

    def call(body: str, args=None):
        path = plugins / "p"
        path.write_text("#!{}\nimport sys\n{}\n".format(sys.executable, body))
        os.chmod(str(path), 0o755)
        return getattr(proxy, "host.call_plugin")(sid, host, "p", "fn", args or {})

    yield call
    server.stop()


def _write(text: str) -> str:
    return "sys.stdout.write({!r})".format(text)


def test_a_success_gives_its_string(plugin_host):
    answer = plugin_host(_write(RESPONSE.format(_struct(Status="<value>Success</value>", Value="<value>ok</value>"))))
    assert answer == {"Status": "Success", "Value": "ok"}


def test_a_value_not_a_string_is_xapis_type_error(plugin_host):
    answer = plugin_host(_write(RESPONSE.format(_struct(Status="<value>Success</value>", Value="<value><int>1</int></value>"))))
    assert answer["ErrorDescription"][0] == "INTERNAL_ERROR", answer


def test_a_value_of_blanks_reads_as_empty(plugin_host):
    answer = plugin_host(_write(RESPONSE.format(_struct(Status="<value>Success</value>", Value="<value> \n</value>"))))
    assert answer == {"Status": "Success", "Value": ""}


def test_a_failure_without_a_code_is_xapis_type_error(plugin_host):
    answer = plugin_host(_write(RESPONSE.format(_struct(Status="<value>Failure</value>",
                                                        ErrorDescription="<value><array><data/></array></value>"))))
    assert answer["ErrorDescription"][0] == "INTERNAL_ERROR", answer


def test_a_failure_passes_on_its_code_and_parameters(plugin_host):
    answer = plugin_host(_write(RESPONSE.format(_struct(
        Status="<value>Failure</value>",
        ErrorDescription="<value><array><data><value>CODE</value><value>a</value><value/></data></array></value>"))))
    assert answer["ErrorDescription"] == ["CODE", "a", ""]


def test_a_fault_is_a_plugin_failure_with_its_code_and_reason(plugin_host):
    answer = plugin_host(_write(xmlrpc.client.dumps(xmlrpc.client.Fault(3, "boom"), methodresponse=True)))
    assert answer["ErrorDescription"] == ["XENAPI_PLUGIN_FAILURE", "fault", "3", "boom"]


def test_output_not_xml_names_the_parser_error_not_stderr(plugin_host):
    answer = plugin_host("sys.stderr.write('on stderr'); sys.stdout.write('not xml')")
    code, status, output, error = answer["ErrorDescription"]
    assert (code, status, output) == ("XENAPI_PLUGIN_FAILURE", "failed to parse plugin output", "not xml")
    assert error and "on stderr" not in error


def test_a_killed_plugin_names_its_signal(plugin_host):
    answer = plugin_host("import os, signal; sys.stdout.write('out'); sys.stdout.flush(); "
                         "sys.stderr.write('err'); sys.stderr.flush(); os.kill(os.getpid(), signal.SIGKILL)")
    assert answer["ErrorDescription"] == ["XENAPI_PLUGIN_FAILURE", "signal: SIGKILL", "out", "err"]


def test_a_non_zero_exit_ignores_a_good_answer(plugin_host):
    good = RESPONSE.format(_struct(Status="<value>Success</value>", Value="<value>ok</value>"))
    answer = plugin_host(_write(good) + "; sys.exit(3)")
    assert answer["ErrorDescription"] == ["XENAPI_PLUGIN_FAILURE", "non-zero exit", good, ""]


def test_the_call_is_xapis_document_and_stdin_is_empty(plugin_host):
    """argv[1] has no XML declaration, bare string values, ``<value/>`` for an empty
    one; stdin reads nothing at once."""
    body = ("import xmlrpc.client; doc = sys.argv[1] + '|' + repr(sys.stdin.read()); "
            "sys.stdout.write(xmlrpc.client.dumps(({'Status': 'Success', 'Value': doc},), methodresponse=True))")
    answer = plugin_host(body, {"empty": "", "tab": "a\tb", "amp": "x&y\"z"})
    doc, stdin = answer["Value"].rsplit("|", 1)
    assert stdin == "''"
    assert doc.startswith("<methodCall><methodName>fn</methodName>"), doc
    assert "<member><name>empty</name><value/></member>" in doc
    assert "<member><name>tab</name><value>a\tb</value></member>" in doc
    assert "<member><name>amp</name><value>x&amp;y&quot;z</value></member>" in doc
    params, method = xmlrpc.client.loads(doc)
    assert method == "fn" and params[1] == {"empty": "", "tab": "a\tb", "amp": 'x&y"z'}


def test_xapi_drops_control_characters_from_the_call():
    """(xapi's XML writer skips them; over the wire no client can send them anyway.)"""
    doc = wire.method_call("f\x02n", "OpaqueRef:s", {"k\x1f": "a\x01b\rc"})
    assert doc == ("<methodCall><methodName>fn</methodName><params><param><value>OpaqueRef:s</value></param>"
                   "<param><value><struct><member><name>k</name><value>ab\rc</value></member></struct></value>"
                   "</param></params></methodCall>")
