"""XenAPI failures as values: :class:`XapiError` carries xapi's ErrorDescription, with
the human message of a numa plugin's own failure (:func:`xapi_numa.errors.failure_message`)
rather than its raw parameters; :class:`LoginRefused`, xapi refusing a login (a wrong
password is no xapi that is away); :func:`not_the_hosts`, a failure that is about the VM or
the caller, not the host a call was about.  :data:`NO_ANSWER`: what the XML-RPC client raises when xapi
gave no usable answer, which callers treat as xapi unreachable (a ConnectionError)."""
import http.client
import xml.parsers.expat
import xmlrpc.client

from xapi_numa.errors import NumaError, cut, failure_message

SESSION_INVALID = "SESSION_INVALID"

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


# xapi's refusals of a login: the user name or password (or, for an external user, its
# subject) is not accepted; its parameters are the user name and xapi's reason
LOGIN_REFUSALS = {"SESSION_AUTHENTICATION_FAILED": "user name or password not accepted",
                  "SESSION_AUTHORIZATION_FAILED": "the user may not log in (no role for it)"}


class LoginRefused(XapiError):
    """xapi refused the login: not unreachable, and refused again until an admin changes the
    credentials (or the user's role).  Says whose login, where; never the password."""

    def __init__(self, details, username: str, where: str) -> None:
        details = [str(d) for d in details]
        said = details[2] if len(details) > 2 else ""
        super().__init__(details, "{} refused the login of user {!r}: {} ({}{})".format(
            cut(where), cut(username), LOGIN_REFUSALS.get(details[0], "refused"), details[0],
            ": " + cut(said) if said else ""))
        self.username = username
        self.where = where


# xapi's failures about the VM or the caller, which every host of a pool answers alike: the VM
# gone (HANDLE_INVALID VM), started or being started by someone else meanwhile
# (VM_BAD_POWER_STATE, OTHER_OPERATION_IN_PROGRESS on the VM), a template, the session
# expired or its login refused again.  Passed over as one host's, they sent the start round
# every other host and ended in an unrelated refusal, or "no host can take the VM".
ABOUT_THE_CALLER = (SESSION_INVALID, "VM_BAD_POWER_STATE", "VM_IS_TEMPLATE", *LOGIN_REFUSALS)
ABOUT_AN_OBJECT = ("HANDLE_INVALID", "OTHER_OPERATION_IN_PROGRESS")  # [class, ref, ...]: the host's, or not


def not_the_hosts(err: XapiError) -> bool:
    """Is this xapi failure about the VM or the caller rather than the host asked?"""
    if err.code in ABOUT_AN_OBJECT:
        return err.params[:1] != ["host"]
    return err.code in ABOUT_THE_CALLER
