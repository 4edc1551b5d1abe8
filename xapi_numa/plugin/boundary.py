"""The plugin's boundary with xapi: one call in, one response out, one error mapping.

A :class:`~xapi_numa.errors.NumaError` becomes ``[code, ...]`` here and
nowhere else; xapi's own failures pass through with their codes (an expired
session stays ``SESSION_INVALID``); anything unexpected becomes
``XENAPI_PLUGIN_FAILURE`` as xapi's own dispatcher does.  Nothing but the one
methodResponse reaches stdout; logs go to syslog and stderr.
"""
import json
import logging
import logging.handlers
import os
import sys
import traceback
from typing import Dict, List

from xapi_numa.backends import xapi
from xapi_numa import errors
from xapi_numa.errors import NotRunning, NumaError
from xapi_numa.plugin import protocol as proto
from xapi_numa.plugin.functions import FUNCTIONS, Context

LOG = logging.getLogger("xapi-numa.plugin")


def failure_details(err: NumaError) -> List[str]:
    """A failure as xapi's response carries it: xapi's own pass through with their
    codes, ours as :func:`xapi_numa.errors.failure_details` lays them out."""
    if isinstance(err, xapi.XapiError):
        return [err.code] + list(err.params)
    return errors.failure_details(err)


def run_function(method: str, session_id: str, args: Dict[str, str]) -> str:
    """One call, as a methodResponse document; never raises."""
    fn = FUNCTIONS.get(method)
    if fn is None:
        return proto.failure_response([proto.UNKNOWN_FUNCTION, method])
    ctx = Context(session_id)
    try:
        value = fn(ctx, args)
        return proto.success_response(json.dumps(value, sort_keys=True))
    except NumaError as err:
        if isinstance(err, NotRunning):  # no domain here: say where xapi has it running, if elsewhere
            err = ctx.located(err)
        LOG.info("%s failed: %s", method, err.message)
        return proto.failure_response(failure_details(err))
    except Exception as err:  # a bug: say so to xapi, keep the traceback for the logs
        LOG.error("%s crashed:\n%s", method, traceback.format_exc())
        return proto.failure_response([proto.PLUGIN_FAILURE, method, type(err).__name__, str(err)])


def setup_logging() -> None:
    LOG.setLevel(logging.INFO)
    LOG.addHandler(logging.StreamHandler(sys.stderr))
    if os.path.exists("/dev/log"):
        try:
            handler = logging.handlers.SysLogHandler(address="/dev/log")
            handler.setFormatter(logging.Formatter("xapi-numa plugin: %(message)s"))
            LOG.addHandler(handler)
        except OSError:
            pass


def main(argv: List[str]) -> int:
    """Entry point of /etc/xapi.d/plugins/numa: one call in argv[1], one response on stdout."""
    setup_logging()
    try:
        import XenAPIPlugin  # dom0's own module, where there is one
    except ImportError:
        XenAPIPlugin = None
    if XenAPIPlugin is not None and not os.environ.get("XAPI_NUMA_BUILTIN_DISPATCH"):
        XenAPIPlugin.dispatch({name: _for_xenapiplugin(name, XenAPIPlugin) for name in FUNCTIONS})
        return 0
    if len(argv) != 2:
        sys.stdout.write(proto.failure_response([proto.PLUGIN_FAILURE, "usage",
                                                 "expected one argument: an XML-RPC methodCall"]))
        return 0
    try:
        method, session_id, args = proto.parse_call(argv[1])
    except proto.BadCall as err:
        sys.stdout.write(proto.failure_response([proto.PLUGIN_FAILURE, "bad call", str(err)]))
        return 0
    sys.stdout.write(run_function(method, session_id, args))
    return 0


def _for_xenapiplugin(name: str, XenAPIPlugin):
    """Adapt a function to the host's XenAPIPlugin.dispatch (session object, args)."""
    def call(session, args):
        response = proto.parse_response(run_function(name, session._session, args))
        if response["Status"] == "Success":
            return response["Value"]
        details = response["ErrorDescription"]
        raise XenAPIPlugin.Failure(details[0], details[1:])
    return call
