"""xapi's host-plugin convention, as pure functions (no I/O).

xapi runs ``/etc/xapi.d/plugins/<name>`` with one argument: an XML-RPC
``methodCall`` whose method is the plugin function and whose params are the
session reference and a string->string map.  The plugin writes one XML-RPC
``methodResponse`` to stdout holding a XenAPI result struct:
``{"Status": "Success", "Value": <string>}`` or
``{"Status": "Failure", "ErrorDescription": [code, param, ...]}``.
"""

import xml.etree.ElementTree as ElementTree
import xmlrpc.client
from collections import Counter
from typing import Dict, List, Tuple

UNKNOWN_FUNCTION = "UNKNOWN_XENAPI_PLUGIN_FUNCTION"
PLUGIN_FAILURE = "XENAPI_PLUGIN_FAILURE"


class BadCall(Exception):
    """argv[1] is not a plugin call xapi would make."""


class RepeatedArgument(Exception):
    """An argument given twice (``xe ... args:vm=A args:vm=B``): xapi passes every pair
    on, as members of one struct, and a dict would keep only the last."""

    def __init__(self, method: str, key: str, count: int) -> None:
        super().__init__(key)
        self.method, self.key, self.count = method, key, count


def parse_call(text: str) -> Tuple[str, str, Dict[str, str]]:
    """(function, session ref, args) from a methodCall document."""
    try:
        params, method = xmlrpc.client.loads(text, use_builtin_types=False)
    except Exception as err:  # expat and xmlrpc raise a variety of errors
        raise BadCall(f"not an XML-RPC methodCall: {type(err).__name__}") from None
    if method is None:  # a methodResponse, not a call; an empty <methodName/> is a call of function ''
        raise BadCall("no method name")
    if len(params) != 2 or not isinstance(params[0], str) or not isinstance(params[1], dict):
        raise BadCall("expected params (session ref, string->string map)")
    args = params[1]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in args.items()):
        raise BadCall("args must map strings to strings")
    repeated = _repeated_names(text)
    if repeated:
        raise RepeatedArgument(method, *repeated[0])
    return method, params[0], dict(args)


def _repeated_names(text: str) -> List[Tuple[str, int]]:
    """(name, times) of each member name the args struct has more than once, in order
    (read again from the document: xmlrpc's loads has already kept the last of each).  The
    args are the call's only struct (the session and every value are strings), and are
    found wherever loads found them: it reads a value with or without a <param> around it."""
    names = [member.findtext("name", "") for member in ElementTree.fromstring(text).iter("member")]
    counts = Counter(names)
    return [(name, counts[name]) for name in sorted(set(names), key=names.index) if counts[name] > 1]


def plugin_failure(status: str, message: str) -> List[str]:
    """A failure of the plugin itself (not of one of its functions) as xapi lays out
    XENAPI_PLUGIN_FAILURE: three parameters (status, stdout, stderr), which ``xe`` prints
    by name; the message stands where xapi puts the plugin's output, no stderr is quoted."""
    return [PLUGIN_FAILURE, status, message, ""]


def build_call(function: str, session: str, args: Dict[str, str]) -> str:
    """The methodCall xapi sends (used by the loopback server and tests)."""
    return xmlrpc.client.dumps((session, args), function, allow_none=False)


def success_response(value: str) -> str:
    return xmlrpc.client.dumps(({"Status": "Success", "Value": value},), methodresponse=True)


def failure_response(details: List[str]) -> str:
    return xmlrpc.client.dumps(({"Status": "Failure", "ErrorDescription": [str(d) for d in details]},),
                               methodresponse=True)


def parse_response(text: str) -> dict:
    """The result struct from a methodResponse (what xapi does with stdout)."""
    (result,), _ = xmlrpc.client.loads(text)
    if not isinstance(result, dict) or result.get("Status") not in ("Success", "Failure"):
        raise ValueError("not a XenAPI result struct")
    return result
