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
import re
import sys
import traceback
from typing import Dict, List

from xapi_numa import errors
from xapi_numa.backends.xapi_errors import SESSION_INVALID, XapiError
from xapi_numa.core.numbers import shown
from xapi_numa.errors import InvalidArgument, NotRunning, NumaError, XapiUnreachable
from xapi_numa.plugin import protocol as proto
from xapi_numa.plugin.functions import FUNCTIONS, Context

LOG = logging.getLogger("xapi-numa.plugin")
# what XML 1.0's Char production leaves out (tab, newline and carriage return are in it)
NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def failure_details(err: NumaError, session_id: str = "") -> List[str]:
    """A failure as xapi's response carries it: xapi's own pass through with their
    codes, ours as :func:`xapi_numa.errors.failure_details` lays them out.  A session
    xapi refused is named as xapi names it, by its handle (the XenAPI client hides the
    refusal of a session it did not log in, behind a fault whose text is all we have)."""
    if isinstance(err, XapiError) and err.code == SESSION_INVALID and session_id:
        return [err.code, session_id]
    if isinstance(err, XapiError):
        return [err.code] + list(err.params)
    return errors.failure_details(err)


def run_function(method: str, session_id: str, args: Dict[str, str]) -> str:
    """One call, as a methodResponse document; never raises."""
    fn = FUNCTIONS.get(method)
    if fn is None:  # dom0's XenAPIPlugin.dispatch answers [code, name]: its clients match on that
        return proto.failure_response([proto.UNKNOWN_FUNCTION, method, unknown_function_message(method)])
    ctx = Context(session_id)
    try:
        value = fn(ctx, args)
        return proto.success_response(json.dumps(value, sort_keys=True))
    except NumaError as err:
        if isinstance(err, NotRunning):  # no domain here: say where xapi has it running, if elsewhere
            err = ctx.located(err)
        LOG.info("%s failed: %s", method, err.message)
        return proto.failure_response(failure_details(err, session_id))
    except ConnectionError as err:  # xapi's answer to our own call did not come (XapiTimeout among them)
        said = XapiUnreachable("no answer from xapi to the plugin's call during {}: {}: {}".format(
            method, type(err).__name__, err))
        LOG.info("%s failed: %s", method, said.message)
        return proto.failure_response(failure_details(said))
    except Exception as err:  # a bug: say so to xapi, keep the traceback for the logs
        LOG.error("%s crashed:\n%s", method, traceback.format_exc())
        return proto.failure_response([proto.PLUGIN_FAILURE, method, type(err).__name__, str(err)])


def unknown_function_message(method: str) -> str:
    """An unknown (or empty) ``fn``: the caller's mistake, said with the functions there are."""
    what = "no function given" if not method.strip() else "{} is not a function of this plugin".format(shown(method))
    return "fn: {} (allowed: {})".format(what, ", ".join(sorted(FUNCTIONS)))


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


def call_text(arg) -> str:
    """argv[1] as the text xapi sent: UTF-8 whatever the locale.  xapi runs plugins
    with PATH alone in the environment, where Python 3.6 decodes argv as ASCII
    (non-ASCII bytes become surrogates); the bytes are taken back and decoded."""
    raw = os.fsencode(arg)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise proto.BadCall("argv[1] is not UTF-8 text (byte {} of {})".format(err.start, len(raw))) from None


def write_response(document: str) -> None:
    """The one methodResponse, as ASCII bytes: characters beyond ASCII (a VM's name in
    an error) as XML character references, which any XML parser reads back; stdout's
    own encoding is ASCII under the locale xapi gives a plugin.  Characters XML 1.0
    forbids even as references (control characters, lone surrogates from an argv
    that was not UTF-8) become U+FFFD: xapi's parser refuses the whole reply over one."""
    sys.stdout.buffer.write(NOT_XML_CHARS.sub("\ufffd", document).encode("ascii", "xmlcharrefreplace"))
    sys.stdout.buffer.flush()


def respond(argv: List[str]) -> str:
    """The methodResponse for one plugin run's argv; never raises."""
    try:
        if len(argv) != 2:
            return proto.failure_response(proto.plugin_failure("usage", "expected one argument: an XML-RPC methodCall"))
        try:
            method, session_id, args = proto.parse_call(call_text(argv[1]))
        except proto.RepeatedArgument as err:
            if err.method not in FUNCTIONS:
                return run_function(err.method, "", {})  # an unknown fn is said as ever
            return proto.failure_response(errors.failure_details(InvalidArgument(
                err.key, "given more than once ({} times)".format(err.count), "each argument once")))
        except proto.BadCall as err:
            return proto.failure_response(proto.plugin_failure("bad call", str(err)))
        return run_function(method, session_id, args)
    except Exception as err:  # the last resort: xapi must still get a response
        LOG.error("plugin crashed:\n%s", traceback.format_exc())
        return proto.failure_response([proto.PLUGIN_FAILURE, "plugin", type(err).__name__, str(err)])


def main(argv: List[str]) -> int:
    """Entry point of /etc/xapi.d/plugins/numa: one call in argv[1], one response on stdout.

    dom0's own ``XenAPIPlugin.dispatch`` is not used: it reads argv and writes
    stdout in the locale's encoding, which under xapi is ASCII, and a VM name or
    an argument beyond ASCII made it exit with a traceback that xapi hands to the
    caller."""
    setup_logging()
    write_response(respond(argv))
    return 0
