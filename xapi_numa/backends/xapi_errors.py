"""XenAPI failures as values: :class:`XapiError` carries xapi's ErrorDescription, with
the human message of a numa plugin's own failure (:func:`xapi_numa.errors.failure_message`)
rather than its raw parameters.  :data:`NO_ANSWER`: what the XML-RPC client raises when xapi
gave no usable answer, which callers treat as xapi unreachable (a ConnectionError)."""
import http.client
import xml.parsers.expat
import xmlrpc.client

from xapi_numa.errors import NumaError, failure_message

# an HTTP-level failure (a proxy's 502 while xapi restarts), or an answer that broke off (xapi
# killed mid-answer by xe-toolstack-restart: http.client's IncompleteRead, the parser's ExpatError)
NO_ANSWER = (xmlrpc.client.ProtocolError, http.client.HTTPException, xml.parsers.expat.ExpatError)


def no_answer(err: Exception) -> str:
    """What a :data:`NO_ANSWER` failure says, for the ConnectionError it becomes."""
    if isinstance(err, xmlrpc.client.ProtocolError):
        return "xapi answered HTTP {} {}".format(err.errcode, err.errmsg)
    return "xapi's answer broke off: {}: {}".format(type(err).__name__, err)


class XapiTimeout(ConnectionError):
    """xapi gave no answer within the call's deadline (backends/rpc_transport.py): wedged or
    overloaded.  Do not log out over it: that waits a second deadline."""


class XapiError(NumaError):
    """A XenAPI call failed; ``code`` and ``params`` are xapi's ErrorDescription."""

    code = "XENAPI_ERROR"

    def __init__(self, details, message=None) -> None:
        """``message``: what to say instead of the parameters, for a failure of xapi's code
        that we raise ourselves (its parameters stay exactly xapi's)."""
        details = [str(d) for d in details] or ["INTERNAL_ERROR"]
        super().__init__(message or failure_message(details) or "xapi refused: {}".format(" ".join(details)),
                         details[1:])
        self.code = details[0]
