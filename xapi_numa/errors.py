"""The one exception hierarchy of xapi-numa.

Every failure a user or xapi can see is a :class:`NumaError` carrying a stable
``code`` (``NUMA_NO_CAPACITY`` ...) and string ``params``.  How one is laid out
as a XenAPI failure (:func:`failure_details`, which the plugin boundary sends)
and read back on the other side (:func:`failure_message`, what a pool client
shows) is decided here, in one place; the CLI prints ``message``.
"""

import contextlib
import errno as _errno
from typing import Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple


# Longest user-supplied text an error repeats: a 100 kB name or argument is quoted as
# its start and its length, not in full (a terminal, a log line, xapi's task record).
MAX_ECHO = 200


def cut(text: str, limit: int = MAX_ECHO) -> str:
    """``text``, or, when it is longer than ``limit``, its start and its end with how much
    was left out between them (the end often says what is wrong: "... is not a number")."""
    if len(text) <= limit:
        return text
    head, tail = text[:limit * 2 // 3], text[len(text) - limit // 3:]
    return "{}...[{} characters cut]...{}".format(head, len(text) - len(head) - len(tail), tail)


class NumaError(Exception):
    """Base class: a failure with a stable code and a human message."""

    code = "NUMA_ERROR"

    def __init__(self, message: str, params: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.params: Tuple[str, ...] = tuple(str(p) for p in params)

    def xenapi_failure(self) -> list:
        """The ErrorDescription list xapi would show for this failure."""
        return [self.code, *self.params]


class InvalidArgument(NumaError):
    """A value a user typed (or a caller passed) is not acceptable."""

    code = "NUMA_INVALID_ARGUMENT"

    def __init__(self, field: str, message: str, allowed: Optional[str] = None) -> None:
        field, message = cut(field), cut(message, 2 * MAX_ECHO)  # the message may quote what was typed
        text = f"{field}: {message}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text, (field, text))
        self.field = field
        self.detail = message
        self.allowed = allowed


@contextlib.contextmanager
def field_names(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise an InvalidArgument under the caller's own name for its field (a command-line
    flag, a field of xapi's datamodel): the core names what it checks in its own words."""
    try:
        yield
    except InvalidArgument as err:
        if err.field not in names:
            raise
        raise InvalidArgument(names[err.field], err.detail, err.allowed) from None


class NoCapacity(NumaError):
    """Not enough free memory (or CPUs) where the policy allows placing."""

    code = "NUMA_NO_CAPACITY"


class RoomReserved(NoCapacity):
    """No room now, for the time being: the memory Xen's allocator would give the VM first
    is reserved for starts whose builds are under way (Xen cannot see reservations).
    Once those builds are done the VM may fit; a start waits for them a while."""


class NoHost(NumaError):
    """No host of the pool can start the VM, for reasons other than memory (xapi refuses
    it there, the host is down, the plugin is not installed there)."""

    code = "NUMA_NO_HOST"


# What a user may give where a domain on this host is meant
A_DOMAIN_HERE = "the domid, name or UUID of a domain on this host"


class UnknownVM(NumaError):
    """No VM or domain is what the user named; the message says what may be given instead
    (the failure's params: what was named, and the message)."""

    code = "NUMA_UNKNOWN_VM"

    def __init__(self, vm: str, allowed: str = A_DOMAIN_HERE) -> None:
        vm = cut(vm)
        message = f"vm: no such VM or domain: {vm} (allowed: {allowed})"
        super().__init__(message, (vm, message))


class NotRunning(NumaError):
    """No domain of the VM here.  Where xapi says it runs on another host, that host's
    uuid and a message naming it follow the VM's uuid: call the plugin there."""

    code = "NUMA_NOT_RUNNING"

    def __init__(self, vm: str, host_uuid: Optional[str] = None, host_name: Optional[str] = None,
                 state: str = "running") -> None:
        if host_uuid is None:
            super().__init__(f"VM {vm} is not running", (vm,))
        else:
            message = (f"VM {vm} is not running on this host: it is {state} on host {host_name!r} "
                       f"({host_uuid}); ask that host")
            super().__init__(message, (vm, host_uuid, message))
        self.vm = vm
        self.host_uuid = host_uuid
        self.host_name = host_name


class HypervisorError(NumaError):
    """The hypervisor refused or failed a call; carries an errno name."""

    code = "NUMA_HYPERVISOR_ERROR"

    _EXPLAIN = {
        _errno.ESRCH: "no such domain",
        _errno.EPERM: "not privileged (run as root in dom0)",
        _errno.EACCES: "not privileged (run as root in dom0)",
        _errno.ENOSYS: "not supported by this hypervisor",
        _errno.EINVAL: "invalid argument",
        _errno.ENOMEM: "out of memory",
        _errno.EBUSY: "busy",
    }

    def __init__(self, err: int, what: str) -> None:
        name = _errno.errorcode.get(err, f"E{err}")
        reason = self._EXPLAIN.get(err, "failed")
        message = f"{what}: {reason} ({name})"
        super().__init__(message, (name, message))
        self.errno = err
        self.errno_name = name


class BackendUnavailable(NumaError):
    """The requested hypervisor backend cannot be used on this machine."""

    code = "NUMA_BACKEND_UNAVAILABLE"


class XapiUnreachable(NumaError):
    """xapi did not answer a call the plugin made back to it (wedged, overloaded, or
    restarting under ``xe-toolstack-restart``): a fault of the moment, not of our code."""

    code = "NUMA_XAPI_UNREACHABLE"


class StateError(NumaError):
    """A stored state file (simulator, ledger) is missing or unreadable."""

    code = "NUMA_STATE_ERROR"


class DamagedRow(StateError):
    """A row of the state database that does not hold what xapi-numa wrote there (edited by
    hand, or damaged): its message names the database, the table, the row and the column."""


class InstanceRunning(StateError):
    """Another copy of a long-running program (xapi-numad, xapi-numa-rrdd) holds the host's lock
    of it: one refused at its start, or one whose lock file was removed and taken by another."""


class VmBusy(NumaError):
    """Another caller is placing, releasing or setting the policy of this VM right now, or
    its build holds its reservation as claims."""

    code = "NUMA_VM_BUSY"


class HostTimeout(NumaError):
    """A host's part of a pool operation did not end in time: its plugin did not answer
    within the pool's deadline (the pool master did), or its ``place`` ran past its own
    budget and stopped, having undone itself, before that deadline.  The pool passes
    the host over."""

    code = "NUMA_HOST_TIMEOUT"


class StartTimeout(NumaError):
    """A pool ``vm-start`` ran past its overall deadline (``--deadline``): the step that ran
    into it is named; what it placed was released, unless VM.start_on was under way."""

    code = "NUMA_START_TIMEOUT"


class NotMovable(NumaError):
    """This VM's memory cannot (or must not now) be moved between nodes."""

    code = "NUMA_NOT_MOVABLE"

    def __init__(self, vm: str, reason: str, name: Optional[str] = None) -> None:
        """``vm``: the VM's UUID, always the first parameter (names are neither unique
        nor stable); ``name``, if known, is said in the message and follows the reason."""
        who = vm if name is None else f"{name} ({vm})"
        super().__init__(f"the memory of VM {who} cannot be moved: {reason}",
                         (vm, reason) if name is None else (vm, reason, name))
        self.reason = reason


class VnodeSplit(NumaError):
    """A memory move would take part of a vnode off the pnode its guest was promised."""

    code = "NUMA_VNODE_SPLIT"

    def __init__(self, vm: str, vnode: int, pnode: object, to: int, allowed: str) -> None:
        super().__init__(f"the memory of VM {vm} must not move to node {to}: vnode {vnode} is promised pnode "
                         f"{pnode} and would be split (allowed: {allowed})", (vm, str(vnode), str(pnode), str(to),
                                                                             allowed))
        self.vnode = vnode
        self.allowed = allowed


class MoveStopped(NumaError):
    """A page move stopped part-way (its report says how far it got and why)."""

    code = "NUMA_MOVE_STOPPED"


# Failures whose params carry their message themselves, laid out as xapi's own are.
_SELF_DESCRIBING = frozenset({"NUMA_UNKNOWN_VM", "NUMA_NOT_RUNNING", "NUMA_INVALID_ARGUMENT", "NUMA_NOT_MOVABLE",
                              "NUMA_HYPERVISOR_ERROR"})


def failure_details(err: NumaError) -> List[str]:
    """A NumaError as a XenAPI failure's ErrorDescription: ``[code, *params]`` where the
    params carry the message, else ``[code, message, *params]``."""
    if err.code in _SELF_DESCRIBING:
        return err.xenapi_failure()
    return [err.code, err.message] + list(err.params)


def failure_message(details: Sequence[str]) -> Optional[str]:
    """The human message of a failure laid out by :func:`failure_details` (a host's
    plugin refusing), or None for any other (xapi's own)."""
    code, params = details[0], list(details[1:])
    if not code.startswith("NUMA_") or not params:
        return None
    if code == "NUMA_INVALID_ARGUMENT" and len(params) >= 2:
        return params[1]  # [field, "field: message (allowed: ...)"]
    if code == "NUMA_UNKNOWN_VM":  # [vm, message]; an older host's: [vm]
        return params[1] if len(params) >= 2 else "no such VM or domain: {}".format(params[0])
    if code == "NUMA_NOT_RUNNING":
        return params[2] if len(params) >= 3 else "VM {} is not running".format(params[0])
    if code == "NUMA_NOT_MOVABLE" and len(params) >= 2:  # [uuid, reason] or [uuid, reason, name]
        who = params[0] if len(params) < 3 else "{} ({})".format(params[2], params[0])
        return "the memory of VM {} cannot be moved: {}".format(who, params[1])
    if code == "NUMA_HYPERVISOR_ERROR" and len(params) >= 2:
        return params[1]  # [errno name, message]
    return params[0]  # [message, *params]
