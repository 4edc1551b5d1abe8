"""What every ``xapi-numa`` command group shares: JSON output, opening the backend
and the state database, and a pool session that is always logged out."""
import contextlib
import json
import os
import re
import sys
from typing import Iterator, Optional

from xapi_numa.backends.open import BACKEND_SYNTAX, backend_spec, checked_spec, named_by, open_hypervisor, sim_path
from xapi_numa.backends.sim.store import SimStore
from xapi_numa.core import numbers
from xapi_numa.errors import InvalidArgument, NumaError, field_names
from xapi_numa.ops.command_line import given
from xapi_numa.ops.observe import as_typed
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.db import default_path, open_to_read
from xapi_numa.state.ledger import Ledger


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


def emit(args, value, render) -> None:
    """``--json``: the value as JSON; otherwise ``render(value)`` for people."""
    if args.json:
        print_json(value)
    else:
        print(render(value))
    sys.stdout.flush()


class GuardedOutput:
    """Standard output whose failure to write (a full disk, a closed file) is said as
    such, for every command and whatever printed: what it reports was done.  A reader
    that left (``| head``) is no error: BrokenPipeError goes on to the caller."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def _guarded(self, do):
        try:
            return do()
        except BrokenPipeError:
            raise
        except OSError as err:
            raise NumaError("cannot write the output ({}); what the command reports was done all the same".format(
                err.strerror or err)) from None

    def write(self, text: str) -> int:
        return self._guarded(lambda: self._stream.write(text))

    def flush(self) -> None:
        self._guarded(self._stream.flush)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def typed(text: Optional[str]) -> Optional[str]:
    """A VM or host name as typed (None stays None): on an ASCII locale (dom0's Python 3.6
    with no LANG) UTF-8 arrives as escaped bytes, which xapi would refuse as XML or match
    with no name.  Never for paths, which must keep their bytes."""
    return None if text is None else as_typed(text)


# what XML 1.0, and so XML-RPC and every name xapi holds, can carry
NOT_IN_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xapi_name(text: Optional[str], field: str) -> Optional[str]:
    """:func:`typed`, for a name sent to xapi: one it could not be sent (a control
    character, bytes that are not UTF-8) is refused here, not by xapi as bad XML."""
    text = typed(text)
    if text is not None and NOT_IN_XML.search(text):
        raise InvalidArgument(field, "{} holds a character no name in xapi has (a control character, or bytes "
                                     "that are not UTF-8)".format(numbers.shown(text)), "a UUID or a name as xapi "
                                                                                         "shows it")
    return text


def check_backend(args) -> None:
    """Refuse, as bad input (naming --backend and what it takes), a backend that is none, and
    a ``sim:PATH`` whose PATH holds no simulated host: nothing there, a directory, a special
    file.  (A file there that is damaged is the state's failure, said when it is read.)"""
    with flag_names({"backend": named_by(args.backend)}):
        path = sim_path(checked_spec(args.backend))
    if not path:
        return
    why = ("no simulated host at {}: create one with 'xapi-numa sim init {} ...'".format(path, path)
           if not os.path.exists(path) else "{}: it is a directory, not a simulated host".format(path)
           if os.path.isdir(path) else "{}: it is a special file, not a simulated host".format(path)
           if not os.path.isfile(path) else None)
    if why:
        raise InvalidArgument(named_by(args.backend), why, BACKEND_SYNTAX)


def hypervisor(args) -> Hypervisor:
    check_backend(args)
    with flag_names({"backend": named_by(args.backend)}):
        return open_hypervisor(args.backend)


def ledger_path(args) -> str:
    check_backend(args)  # a command that needs only the ledger refuses a bad backend all the same
    explicit = getattr(args, "ledger", None)  # never blank: the flag's type refuses it
    if explicit:
        return explicit
    path = sim_path(backend_spec(args.backend))
    if not path or os.environ.get("XAPI_NUMA_LEDGER"):
        return default_path()
    # a simulated host keeps its state database beside its state file, once there is one
    store = SimStore(path)
    store.require()
    return store.ledger_path


def ledger(args) -> Ledger:
    """The state database for a command that changes it: made where there is none yet."""
    return Ledger(ledger_path(args))


def first_change(args) -> bool:
    """Is there no state database yet, which a command changing the state would make?  It
    checks first on an empty one in memory: a refusal there leaves none behind (and never
    deletes one, which another process may have made meanwhile)."""
    return not os.path.lexists(ledger_path(args))


def ledger_to_read(args) -> Ledger:
    """The state database for a query or a dry run: never made; where there is none yet, an
    empty one in memory (:func:`~xapi_numa.state.db.open_to_read`)."""
    return Ledger(db=open_to_read(ledger_path(args)))


@contextlib.contextmanager
def pool_session(args) -> Iterator[object]:
    """A session with the pool master, logged out whatever happens (Ctrl-C during the login too)."""
    from xapi_numa.backends import xapi

    with xapi.pool_session(xapi.credentials(args.pool, args.user, args.password_file), args.ca_file,
                           args.insecure) as session:
        yield session


def add_json(parser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def add_ledger(parser) -> None:
    parser.add_argument("--ledger", type=given, help="state database (default: $XAPI_NUMA_LEDGER or "
                                         "/var/lib/xapi-numa/ledger.db; beside the state file for sim:PATH)")


# the core's names for what the policy flags set: errors name the flag the user typed
POLICY_FLAGS = {"mode": "--mode", "nodes": "--nodes", "on_exhaust": "--on-exhaust"}


# the core's InvalidArgument re-raised under the command-line flag that set the field
flag_names = field_names
