"""A plugin call whose own call back to xapi gets no answer (xapi wedged or restarting:
``XapiTimeout``, a refused connection) fails as ``NUMA_XAPI_UNREACHABLE`` with what did
not answer, logged as a failure: it was answered as a crash of ours
(``XENAPI_PLUGIN_FAILURE``, a traceback in the log), which it is not."""
import logging

import pytest

from xapi_numa.backends.xapi_errors import XapiTimeout
from xapi_numa.plugin import boundary
from xapi_numa.plugin import protocol as proto


@pytest.mark.parametrize("fault", [XapiTimeout("xapi gave no answer within 30 s"),
                                   ConnectionRefusedError(111, "Connection refused")])
def test_no_answer_from_xapi_is_said_as_such_not_as_a_crash(monkeypatch, caplog, fault):
    def waits_on_xapi(ctx, args):
        raise fault

    monkeypatch.setitem(boundary.FUNCTIONS, "place", waits_on_xapi)
    with caplog.at_level(logging.INFO, logger="xapi-numa.plugin"):
        result = proto.parse_response(boundary.run_function("place", "OpaqueRef:x", {}))
    assert result["Status"] == "Failure"
    code, message = result["ErrorDescription"][:2]
    assert code == "NUMA_XAPI_UNREACHABLE", result
    assert "no answer from xapi" in message and "during place" in message and type(fault).__name__ in message
    assert "crashed" not in caplog.text and "Traceback" not in caplog.text


def test_a_xapi_socket_that_is_not_there_is_xapi_unreachable_not_a_crash(tmp_path, monkeypatch, caplog):
    """xapi removes its socket while it restarts: connecting to it then is ENOENT, which is
    no ConnectionError; the call was answered as a crash (FileNotFoundError)."""
    from xapi_numa.backends import rpc_transport

    missing = str(tmp_path / "xapi")  # no socket there
    transport = rpc_transport.UnixTransport(missing, 5.0)
    with pytest.raises(ConnectionRefusedError) as refused:
        transport.make_connection("localhost").connect()
    assert missing in str(refused.value)

    def get_policy(ctx, args):
        rpc_transport.UnixTransport(missing, 5.0).make_connection("localhost").connect()

    monkeypatch.setitem(boundary.FUNCTIONS, "get_policy", get_policy)
    with caplog.at_level(logging.INFO, logger="xapi-numa.plugin"):
        result = proto.parse_response(boundary.run_function("get_policy", "OpaqueRef:x", {}))
    assert result["ErrorDescription"][0] == "NUMA_XAPI_UNREACHABLE", result
    assert "Traceback" not in caplog.text
