"""The XenAPI layer: everything xapi-numa reads from or writes to xapi.

Over the ``XenAPI`` package (PyPI).  The plugin uses the session xapi hands
it (the host's local socket, or ``$XAPI_NUMA_XENAPI_URL`` in tests); the CLI
logs into a pool master with a URL and credentials from flags, the
environment, or a file only its owner can read.

Per-VM state lives in ``VM.other_config``: the policy (``numa_mode``,
``numa_nodes``, ``numa_on_exhaust``) and, between ``place`` and ``settle``,
the nodes chosen (``numa_placed_nodes``) and any mask the admin had set in
``VCPUs_params`` (``numa_saved_mask``).
"""

import os
import stat
from typing import Dict, List, Optional, Tuple

import attrs

from xapi_numa.errors import InvalidArgument, NumaError, UnknownVM
from xapi_numa.core.policy import OTHER_CONFIG_KEYS, Policy

PLACED_KEY = "numa_placed_nodes"
SAVED_MASK_KEY = "numa_saved_mask"
NO_SAVED_MASK = "-"  # the admin had no mask


class XapiError(NumaError):
    """A XenAPI call failed; ``params`` are xapi's ErrorDescription."""

    code = "XENAPI_ERROR"

    def __init__(self, details) -> None:
        details = [str(d) for d in details] or ["INTERNAL_ERROR"]
        super().__init__(f"xapi refused: {' '.join(details)}", details[1:])
        self.code = details[0]


def _xenapi():
    try:
        import XenAPI  # type: ignore[import-not-found]
    except ImportError:
        raise NumaError("the XenAPI Python package is not installed (pip install XenAPI)") from None
    return XenAPI


def call(fn, *args):
    """Call a XenAPI method, turning xapi failures into XapiError."""
    XenAPI = _xenapi()
    try:
        return fn(*args)
    except XenAPI.Failure as failure:
        raise XapiError(failure.details) from None


# --- sessions -------------------------------------------------------------------------------
def plugin_session(session_id: str):
    """The session xapi handed a plugin, on the local socket or a test URL."""
    XenAPI = _xenapi()
    url = os.environ.get("XAPI_NUMA_XENAPI_URL")
    session = XenAPI.Session(url) if url else XenAPI.xapi_local()
    session._session = session_id
    return session


@attrs.frozen
class Credentials:
    url: str
    username: str
    password: str


def credentials(url: Optional[str] = None, username: Optional[str] = None, password_file: Optional[str] = None,
                config: Optional[str] = None) -> Credentials:
    """From flags, then $XAPI_NUMA_POOL_URL/_USER/_PASSWORD, then a credentials file.

    The file (``~/.config/xapi-numa/credentials`` by default) holds ``url=``,
    ``username=`` and ``password=`` lines and must be readable by its owner only.
    """
    values = {"url": url or os.environ.get("XAPI_NUMA_POOL_URL"),
              "username": username or os.environ.get("XAPI_NUMA_POOL_USER"),
              "password": os.environ.get("XAPI_NUMA_POOL_PASSWORD")}
    if password_file:
        values["password"] = _read_private(password_file, "--password-file").strip()
    path = config or os.path.expanduser("~/.config/xapi-numa/credentials")
    if not all(values.values()) and os.path.exists(path):
        for line in _read_private(path, "credentials file").splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() in values and not values[key.strip()]:
                values[key.strip()] = value.strip()
    missing = [k for k, v in values.items() if not v]
    if missing:
        raise InvalidArgument("--pool", f"no {', '.join(missing)} for the pool",
                              "--pool URL --user NAME --password-file FILE, $XAPI_NUMA_POOL_URL/_USER/_PASSWORD, "
                              "or ~/.config/xapi-numa/credentials")
    return Credentials(values["url"], values["username"], values["password"])


def _read_private(path: str, what: str) -> str:
    try:
        info = os.stat(path)
    except OSError as err:
        raise InvalidArgument(what, f"cannot read {path}: {err.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidArgument(what, f"{path} is readable by others", "chmod 600 the file")
    with open(path, encoding="utf-8") as f:
        return f.read()


def login(creds: Credentials):
    XenAPI = _xenapi()
    session = XenAPI.Session(creds.url)
    try:
        session.xenapi.login_with_password(creds.username, creds.password, "2.20", "xapi-numa")
    except XenAPI.Failure as failure:
        raise XapiError(failure.details) from None
    except OSError as err:
        raise NumaError(f"cannot reach the pool master at {creds.url}: {err}") from None
    return session


# --- VM records -------------------------------------------------------------------------------
def vm_ref(session, uuid: str) -> str:
    XenAPI = _xenapi()
    try:
        return session.xenapi.VM.get_by_uuid(uuid)
    except XenAPI.Failure as failure:
        if failure.details and failure.details[0] in ("UUID_INVALID", "HANDLE_INVALID"):
            raise UnknownVM(uuid) from None
        raise XapiError(failure.details) from None


def vm_ref_by_name_or_uuid(session, ref: str) -> Tuple[str, str]:
    """(VM ref, uuid) for what a user typed: a UUID or a unique name."""
    XenAPI = _xenapi()
    try:
        vm = session.xenapi.VM.get_by_uuid(ref)
        return vm, ref
    except XenAPI.Failure:
        pass
    vms = call(session.xenapi.VM.get_by_name_label, ref)
    if len(vms) != 1:
        raise UnknownVM(ref) if not vms else InvalidArgument("vm", f"{len(vms)} VMs are called {ref!r}",
                                                              "a UUID or a unique name")
    return vms[0], call(session.xenapi.VM.get_uuid, vms[0])


def vm_record(session, vm: str) -> dict:
    return call(session.xenapi.VM.get_record, vm)


def _set_map_key(session, vm: str, field: str, key: str, value: Optional[str]) -> None:
    """Set (or with None remove) one key of a VM map field; add_to_* refuses an existing key."""
    vm_class = session.xenapi.VM
    current = call(getattr(vm_class, f"get_{field}"), vm)
    if key in current:
        call(getattr(vm_class, f"remove_from_{field}"), vm, key)
    if value is not None:
        call(getattr(vm_class, f"add_to_{field}"), vm, key, value)


def set_other_config(session, vm: str, key: str, value: Optional[str]) -> None:
    _set_map_key(session, vm, "other_config", key, value)


def set_vcpus_param(session, vm: str, key: str, value: Optional[str]) -> None:
    _set_map_key(session, vm, "VCPUs_params", key, value)


def get_policy(session, vm: str) -> Policy:
    return Policy.from_other_config(call(session.xenapi.VM.get_other_config, vm))


def store_policy(session, vm: str, policy: Policy) -> None:
    for key, value in policy.to_other_config().items():
        set_other_config(session, vm, key, value or None)


def format_mask(cpus) -> str:
    """VCPUs_params["mask"] as xenopsd reads it: comma-separated CPU numbers."""
    return ",".join(str(c) for c in sorted(cpus))


def parse_mask(text: str) -> List[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InvalidArgument("VCPUs_params:mask", f"{text!r} is not a list of CPU numbers") from None


def enabled_hosts(session) -> Dict[str, dict]:
    records = call(session.xenapi.host.get_all_records)
    return {ref: rec for ref, rec in records.items() if rec.get("enabled")}


def call_plugin(session, host: str, fn: str, args: Dict[str, str]) -> str:
    return call(session.xenapi.host.call_plugin, host, "numa", fn, args)


__all__ = ["OTHER_CONFIG_KEYS", "PLACED_KEY", "SAVED_MASK_KEY", "XapiError", "call", "login", "credentials"]
