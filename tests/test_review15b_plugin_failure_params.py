"""XENAPI_PLUGIN_FAILURE carries three parameters in xapi's datamodel (status, stdout, stderr):
xapi's own (a plugin that exits non-zero, a plugin output it cannot parse) and dom0's
XenAPIPlugin dispatcher's (function, exception class, message) do.  ``xe`` prints the
parameters by those names, and a client reads them by position: the plugin's own
failures (no methodCall, a call that is not one, an install that cannot import
xapi_numa) carried two, which ``xe`` shows as ``stderr: <unknown>``."""
import json
import os
import subprocess
import sys

from conftest import PLUGIN_DIR

from xapi_numa.plugin import boundary
from xapi_numa.plugin import protocol as proto

PLUGIN = os.path.join(PLUGIN_DIR, "numa")


# XENAPI_PLUGIN_FAILURE's parameters as xapi declares them (ocaml/idl/datamodel_errors.ml)
DATAMODEL_PARAMS = ["status", "stdout", "stderr"]


def _details(document):
    result = proto.parse_response(document)
    assert result["Status"] == "Failure", result
    return result["ErrorDescription"]


def test_usage_and_bad_calls_carry_status_stdout_and_stderr():
    for argv in (["numa"], ["numa", "garbage"], ["numa", "<methodCall><methodName>x</methodName></methodCall>"],
                 ["numa", "a", "b"]):
        details = _details(boundary.respond(argv))
        assert details[0] == proto.PLUGIN_FAILURE
        assert len(details) - 1 == len(DATAMODEL_PARAMS), details
        assert details[1] in ("usage", "bad call") and details[2], details


def test_a_plugin_that_cannot_import_xapi_numa_answers_three_parameters():
    call = proto.build_call("host_topology", "OpaqueRef:x", {})
    # -I -S: neither PYTHONPATH nor an installed copy: xapi_numa is not importable
    done = subprocess.run([sys.executable, "-I", "-S", PLUGIN, call], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    details = _details(done.stdout)
    assert details[:2] == [proto.PLUGIN_FAILURE, "import"] and "not importable" in details[2]
    assert len(details) - 1 == len(DATAMODEL_PARAMS), details


def test_a_crash_keeps_the_dispatchers_three_parameters(monkeypatch):
    def broken(ctx, args):
        raise KeyError("boom")

    monkeypatch.setitem(boundary.FUNCTIONS, "host_topology", broken)
    details = _details(boundary.run_function("host_topology", "OpaqueRef:x", {}))
    assert details == [proto.PLUGIN_FAILURE, "host_topology", "KeyError", "'boom'"]
    assert json.dumps(details)
