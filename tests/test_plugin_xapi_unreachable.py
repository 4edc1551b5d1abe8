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
