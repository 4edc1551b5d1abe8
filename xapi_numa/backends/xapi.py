"""The XenAPI layer: everything xapi-numa reads from or writes to xapi.

Over the ``XenAPI`` package (PyPI).  The plugin uses the session xapi hands
it (the host's local socket, or ``$XAPI_NUMA_XENAPI_URL`` in tests); the CLI
logs into a pool master with a URL and credentials from flags, the
environment, or a file only its owner can read (:mod:`xapi_credentials`).
Every call has a deadline (:mod:`rpc_transport`): CALL_TIMEOUT, or
LONG_CALL_TIMEOUT for ``VM.start_on``, PLACE_TIMEOUT for a host's plugin (QUERY_TIMEOUT
for a plugin query); a wedged xapi is then unreachable, as one that is down.

Per-VM state lives in ``VM.other_config``: the policy (``numa_mode``,
``numa_nodes``, ``numa_on_exhaust``) and, between ``place`` and ``settle``,
the nodes chosen (``numa_placed_nodes``), the host that chose them
(``numa_placed_host``) and any mask the admin had set in ``VCPUs_params``
(``numa_saved_mask``).  Each key is written on its own
(:func:`set_other_config` retries when another writer races it), and
:mod:`xapi_owner_key` lets one caller at a time own a VM.
The mask syntax itself is :mod:`xapi_numa.core.vcpu_mask` (re-exported here).
"""

import contextlib
import os
import random
import socket
import ssl
import time
import xmlrpc.client
from typing import Callable, Dict, FrozenSet, Iterator, List, Optional, Tuple

import attrs

from xapi_numa.core.host import UUID_RE
from xapi_numa.core.numbers import shown, trim
from xapi_numa.core.policy import OTHER_CONFIG_KEYS, Policy
from xapi_numa.core.vcpu_mask import MASK_FIELD, MASK_SYNTAX, VcpuMask, format_mask, parse_mask
# the pool's credentials and checks, re-exported: callers reach the XenAPI layer through this module
from xapi_numa.backends.xapi_credentials import (POOL_URL_SYNTAX, Credentials, check_pool_url, master_url,  # noqa: F401
                                                 credentials, tls_context)
from xapi_numa.backends.rpc_transport import HttpsTransport, HttpTransport, UnixTransport, deadline, exactly, patience
from xapi_numa.backends.xapi_errors import (LOGIN_REFUSALS, NO_ANSWER, SESSION_INVALID, LoginRefused,  # noqa: F401
                                            XapiError, XapiTimeout, no_answer, not_the_hosts)  # callers: xapi.XapiError
from xapi_numa.errors import InvalidArgument, NumaError, UnknownVM

PLACED_KEY = "numa_placed_nodes"
PLACED_HOST_KEY = "numa_placed_host"  # the UUID of the host whose place set the boot pin
SAVED_MASK_KEY = "numa_saved_mask"
NO_SAVED_MASK = "-"  # the admin had no mask
MAP_DUPLICATE_KEY = "MAP_DUPLICATE_KEY"
MAP_RETRIES = 8
LOCAL_SOCKET = "/var/lib/xcp/xapi"  # where XenAPI.xapi_local() connects in a dom0
A_VM = "a VM's UUID or unique name (xe vm-list)"  # what a user may give where a VM of the pool is meant
# Seconds a call waits for xapi's answer before xapi counts as unreachable (a wedged xapi
# must not hang a command, the plugin or xapi-numad), and for the calls that take long.
CALL_TIMEOUT = 60.0
LONG_CALL_TIMEOUT = 1800.0  # VM.start_on (a big VM's memory is scrubbed)
# A host's plugin asked a query (a dry run, its topology): longer than the plugin's own
# xapi deadline (CALL_TIMEOUT), so that a failure of its own arrives before ours
QUERY_TIMEOUT = 120.0
# A host's plugin asked to change something (place, release, settle, vnuma_plan): quick, its
# own waits all bounded (the VM's place lock there, start_placement.PLACE_LOCK_WAIT; each xapi
# call, CALL_TIMEOUT; the state database, BUSY_TIMEOUT_S), so a hung member must not hold a
# start or a command for LONG_CALL_TIMEOUT, which is VM.start_on's alone.  Those waits can add
# up past it: a place stops itself at start_placement.PLACE_BUDGET, well before it
PLACE_TIMEOUT = 300.0
LOGOUT_TIMEOUT = 5.0  # a logout is best effort: it must not add a whole deadline to a failure


def _xenapi():
    try:
        import XenAPI  # type: ignore[import-not-found]  # dom0's own XenAPI.py on a host
    except ImportError:
        # (never pip's on a dom0: its own comes with xapi, and pip's would shadow it)
        raise NumaError("the XenAPI Python module is missing: in a dom0 it comes with xapi (its package is not "
                        "installed or is broken); off a host, pip install XenAPI") from None
    return XenAPI


@contextlib.contextmanager
def _xapi_errors() -> Iterator[None]:
    """Turn what the XenAPI client raises into XapiError, in one place.

    The client hides xapi's ``SESSION_INVALID``: it tries to log in again, and
    a session it did not log in itself (the one xapi hands a plugin) ends in
    ``Fault(401, 'You must log in')``; repeated failures end in ``Fault(500,
    ...)``.  Both mean the session is no good and become ``SESSION_INVALID``.
    An HTTP-level failure, or an answer broken off (xapi killed mid-answer: see
    ``NO_ANSWER``), or none within the transport's timeout (a wedged xapi), becomes
    a ConnectionError: callers treat it as xapi unreachable.
    """
    XenAPI = _xenapi()
    try:
        yield
    except XenAPI.Failure as failure:
        raise XapiError(failure.details) from None
    except xmlrpc.client.Fault as fault:
        text = str(fault.faultString)
        if fault.faultCode == 401 or "valid session" in text or SESSION_INVALID in text:
            raise XapiError([SESSION_INVALID, text]) from None
        raise XapiError(["INTERNAL_ERROR", "XML-RPC fault {}: {}".format(fault.faultCode, text)]) from None
    except NO_ANSWER as err:  # (RemoteDisconnected, an OSError too, is one: the same either way)
        raise ConnectionError(no_answer(err)) from None
    except socket.timeout:
        raise XapiTimeout("xapi did not answer in time: it is wedged or overloaded") from None


def call(fn, *args):
    """Call a XenAPI method, turning xapi failures into XapiError."""
    with _xapi_errors():
        return fn(*args)


def call_long(session, fn, *args):
    """:func:`call` for a method of ``session`` that may take long (``VM.start_on``, a
    host's plugin): it waits up to LONG_CALL_TIMEOUT instead of CALL_TIMEOUT."""
    with patience(session, LONG_CALL_TIMEOUT):
        return call(fn, *args)


# --- sessions -------------------------------------------------------------------------------
def local_session(timeout: Optional[float] = None, socket_path: str = LOCAL_SOCKET):
    """A session object (not logged in) with this host's xapi: its Unix socket, as
    ``XenAPI.xapi_local()`` connects, or ``$XAPI_NUMA_XENAPI_URL`` in tests; calls
    wait up to ``timeout`` seconds (CALL_TIMEOUT) for an answer."""
    XenAPI = _xenapi()
    timeout = CALL_TIMEOUT if timeout is None else timeout
    url = os.environ.get("XAPI_NUMA_XENAPI_URL")
    if url:
        return XenAPI.Session(url, transport=HttpTransport(timeout))
    # the URL xapi_local() gives: its host part is never resolved, the socket is the address
    return XenAPI.Session("http://_var_lib_xcp_xapi/", transport=UnixTransport(socket_path, timeout))


def plugin_session(session_id: str):
    """The session xapi handed a plugin, on the local socket or a test URL (never logged out by us)."""
    session = local_session()
    session._session = session_id
    return session


# Marks a session object we log in ourselves: :func:`logout` ends those only (never the one
# xapi hands a plugin), and ends one whose login an interrupt cut short once its ref arrived.
OURS = "_xapi_numa_logs_out"


@contextlib.contextmanager
def pool_session(creds: Credentials, ca_file: Optional[str] = None, insecure: bool = False) -> Iterator[object]:
    """A session with the pool master, logged out whatever happens, Ctrl-C included.

    Each session object is held here before its login is sent, so an interrupt anywhere
    after the client has the session's ref (even before :func:`login` returns) still ends
    it.  What cannot be ended is a session xapi made whose answer had not arrived when the
    interrupt came: its ref never reached us; xapi expires it.  After a call that timed out
    (the master is wedged) no logout is tried: it would wait for the master again."""
    tried: List[object] = []
    wedged = False
    try:
        yield login(creds, ca_file, insecure, tried)
    except XapiTimeout:
        wedged = True
        raise
    finally:
        if not wedged:
            for session in tried:
                logout(session)  # never raises: logging out must not hide the command's outcome


def login(creds: Credentials, ca_file: Optional[str] = None, insecure: bool = False,
          tried: Optional[List[object]] = None):
    """A session with the pool master; log it out with :func:`logout` in a ``finally``, or
    use :func:`pool_session`.  ``tried``: each session object is added to it before its
    login is sent (for a caller that logs them out whatever happens).

    Given a pool member instead, xapi answers HOST_IS_SLAVE with the master's address:
    the login is tried once there, over the same scheme and port, trusting the same
    certificate authority (with --ca-file, the master's certificate must cover that
    address)."""
    try:
        return _login_once(creds, ca_file, insecure, tried)
    except XapiError as err:
        if err.code != "HOST_IS_SLAVE" or not err.params:
            raise
        master = err.params[0]
    parts = check_pool_url(creds.url, insecure)
    try:
        return _login_once(attrs.evolve(creds, url=master_url(parts, master)), ca_file, insecure, tried)
    except NumaError as err:
        raise NumaError("{} is a pool member; its master is at {}, and logging in there failed: {}".format(
            parts.hostname, master, err.message)) from None


def _login_once(creds: Credentials, ca_file: Optional[str] = None, insecure: bool = False,
                tried: Optional[List[object]] = None):
    XenAPI = _xenapi()
    parts = check_pool_url(creds.url, insecure)
    if parts.scheme == "https":
        transport = HttpsTransport(CALL_TIMEOUT, context=tls_context(ca_file, insecure))
    elif ca_file:
        raise InvalidArgument("--ca-file", "only applies to an https:// pool URL", POOL_URL_SYNTAX)
    else:
        transport = HttpTransport(CALL_TIMEOUT)
    session = XenAPI.Session(creds.url, transport=transport)
    if tried is not None:
        tried.append(session)
    try:
        log_in(session, creds.username, creds.password, "2.20", "xapi-numa", "the pool master at " + parts.hostname)
    except ssl.SSLError as err:
        raise NumaError("TLS with the pool master at {} failed: {} (give its certificate with --ca-file)".format(
            parts.hostname, getattr(err, "reason", None) or err)) from None
    except OSError as err:
        raise NumaError("cannot reach the pool master at {}: {}".format(parts.hostname, err)) from None
    return session


def log_in(session, username: str, password: str, version: str, originator: str, where: str) -> None:
    """Log ``session`` (not logged in) in, as ours: :func:`logout` will end it.  xapi
    refusing the user or password is :class:`LoginRefused`, naming ``username`` and
    ``where`` (the pool master at HOST, the local xapi).

    An interrupt (Ctrl-C) that comes once the client holds the session's ref, before this
    returns, logs it out at once: the caller never gets it to log out."""
    session.__dict__[OURS] = True  # (a ServerProxy answers any other attribute with a method)
    try:
        with _xapi_errors():
            session.xenapi.login_with_password(username, password, version, originator)
    except BaseException as err:
        logout(session)  # a no-op unless the ref arrived (an older client reads more after it: a refusal there)
        if isinstance(err, XapiError) and err.code in LOGIN_REFUSALS:
            raise LoginRefused(err.xenapi_failure(), username, where) from None
        raise


def logout(session) -> None:
    """Log out a session we logged in (:func:`log_in`); never raises (it runs in ``finally`` blocks).

    A session we did not log in ourselves (the one xapi hands a plugin) is left alone.
    The client's own logout needs its whole login recorded; an interrupt can come
    between its storing the ref and the rest, so the ref alone is used here.
    """
    if session is None or not getattr(session, "__dict__", {}).get(OURS):
        return
    ref, session._session, session.last_login_method = session._session, None, None  # never logged in again
    if not ref:
        return
    with contextlib.suppress(Exception), deadline(session, LOGOUT_TIMEOUT):  # never hides the outcome
        getattr(session, "session.logout")(ref)


# --- VM records -------------------------------------------------------------------------------
def vm_ref(session, uuid: str) -> str:
    try:
        return call(session.xenapi.VM.get_by_uuid, uuid)
    except XapiError as err:
        if err.code in ("UUID_INVALID", "HANDLE_INVALID"):
            raise UnknownVM(uuid, "the UUID of a VM of this pool (xe vm-list)") from None
        raise


def host_known(session, uuid: str) -> bool:
    """Is there a host with this UUID in the pool (one ejected or reinstalled is not)?"""
    try:
        call(session.xenapi.host.get_by_uuid, uuid)
    except XapiError as err:
        if err.code in ("UUID_INVALID", "HANDLE_INVALID"):
            return False
        raise
    return True


HOST_MASK_FIELD = "host guest_VCPUs_params:mask"


def host_guest_cpus(session, host_uuid: str) -> Optional[FrozenSet[int]]:
    """The CPUs host ``host_uuid`` leaves guests by its ``guest_VCPUs_params:mask`` (xapi
    narrows every VM's mask to them at a start there, or uses it for a VM without one),
    or None.  xapi reads it as one list: with a ';' it reads nothing."""
    host = call(session.xenapi.host.get_by_uuid, host_uuid)
    text = call(session.xenapi.host.get_guest_VCPUs_params, host).get("mask")
    if not text or ";" in text:
        return None
    return parse_mask(text, HOST_MASK_FIELD).cpus


def vm_ref_by_name_or_uuid(session, ref: str) -> Tuple[str, str]:
    """(VM ref, uuid) for what a user typed: a UUID, in any case (xapi spells it in lower case), or a unique name."""
    if not ref.strip():
        raise InvalidArgument("vm", "{} is blank".format(shown(ref)), A_VM)
    uuid = trim(ref).lower() if UUID_RE.match(trim(ref).lower()) else ref
    with contextlib.suppress(UnknownVM):
        return vm_ref(session, uuid), uuid
    vms = call(session.xenapi.VM.get_by_name_label, ref)
    if len(vms) != 1:
        raise UnknownVM(ref, A_VM) if not vms else InvalidArgument(
            "vm", "{} VMs are called {}".format(len(vms), shown(ref)), A_VM)
    return vms[0], call(session.xenapi.VM.get_uuid, vms[0])


def vm_record(session, vm: str) -> dict:
    return call(session.xenapi.VM.get_record, vm)


def builds_with_vgpu(session, record: dict) -> bool:
    """Does xapi build this VM's video as a vGPU's (``Xapi_xenops``: ``vgpus_of_vm`` is not
    empty)?  A VGPU whose type's implementation is ``passthrough`` is a whole GPU passed
    through, handled as a PCI device, and does not count; nor does one destroyed since the
    ``record`` was read (its handle invalid now): the start reads the VM's VGPUs afresh."""
    for vgpu in record.get("VGPUs", ()):
        try:
            implementation = call(session.xenapi.VGPU_type.get_implementation, call(session.xenapi.VGPU.get_type, vgpu))
        except XapiError as err:
            if err.code == "HANDLE_INVALID":
                continue
            raise
        if implementation != "passthrough":
            return True
    return False


# --- one key of a VM map field ----------------------------------------------------------------------
def _backoff(attempt: int) -> None:
    """A short random pause so that two writers retrying the same key stop colliding."""
    time.sleep(random.uniform(0, 0.005 * (1 << attempt)))


def _set_map_key(session, vm: str, field: str, key: str, value: Optional[str]) -> None:
    """Set (or with None remove) one key of a VM map field; the last writer wins, per key.

    xapi has no "replace one key": only ``remove_from_*`` then ``add_to_*``, and
    ``add_to_*`` refuses a key that exists (``MAP_DUPLICATE_KEY``).  When another
    writer adds the key between our two calls, we read the map again and retry,
    at most MAP_RETRIES times.  Other keys of the map are never touched.
    """
    vm_class = session.xenapi.VM
    for attempt in range(MAP_RETRIES):
        current = call(getattr(vm_class, "get_" + field), vm)
        if current.get(key) == value or (value is None and key not in current):
            return
        if key in current:
            call(getattr(vm_class, "remove_from_" + field), vm, key)
        if value is None:
            return
        try:
            call(getattr(vm_class, "add_to_" + field), vm, key, value)
            return
        except XapiError as err:
            if err.code != MAP_DUPLICATE_KEY:
                raise
        _backoff(attempt)
    # xapi's four parameters (type, param_name, uuid, key), the reason in the message only
    raise XapiError([MAP_DUPLICATE_KEY, "VM", field, vm, key],
                    "xapi refused: MAP_DUPLICATE_KEY VM {} {} {}: other writers kept changing this key; gave up after "
                    "{} tries".format(field, vm, key, MAP_RETRIES))


def set_other_config(session, vm: str, key: str, value: Optional[str]) -> None:
    _set_map_key(session, vm, "other_config", key, value)


def set_vcpus_param(session, vm: str, key: str, value: Optional[str]) -> None:
    _set_map_key(session, vm, "VCPUs_params", key, value)


def get_policy(session, vm: str) -> Policy:
    return Policy.from_other_config(call(session.xenapi.VM.get_other_config, vm))


def store_policy(session, vm: str, policy: Policy, guard: Callable[[], None] = lambda: None) -> None:
    """Write the policy's keys; ``guard`` is called before each write (it raises once the
    caller may no longer write: another caller took the VM over)."""
    for key, value in policy.to_other_config().items():
        guard()
        set_other_config(session, vm, key, value or None)


# --- hosts -----------------------------------------------------------------------------------------
def enabled_hosts(session) -> Dict[str, dict]:
    records = call(session.xenapi.host.get_all_records)
    return {ref: rec for ref, rec in records.items() if rec.get("enabled")}


def call_plugin(session, host: str, fn: str, args: Dict[str, str], timeout: Optional[float] = None) -> str:
    """``fn`` of the numa plugin on ``host``; it waits ``timeout`` seconds, by default
    PLACE_TIMEOUT (the pool's calls say theirs: QUERY_TIMEOUT for a query, ``pool.host_query``;
    what is left of a pool start's deadline, which may be less than the session's CALL_TIMEOUT):
    xapi gives a plugin no deadline, so a member whose plugin hangs would hold the call for
    ever (never LONG_CALL_TIMEOUT: no plugin function waits for a VM's build)."""
    if timeout is None:
        timeout = PLACE_TIMEOUT
    with exactly(session, timeout):
        return call(session.xenapi.host.call_plugin, host, "numa", fn, args)


__all__ = ["MASK_FIELD", "host_known", "MASK_SYNTAX", "OTHER_CONFIG_KEYS", "PLACED_HOST_KEY", "PLACED_KEY", "SAVED_MASK_KEY", "XapiError", "VcpuMask", "call", "login", "logout",
           "credentials", "parse_mask", "format_mask"]
