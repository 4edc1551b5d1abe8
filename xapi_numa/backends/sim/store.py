"""The simulated host's state file, shared by every process that uses it.

The CLI, the plugin subprocess, the daemon and tests all open the same PATH.
A writer holds an exclusive ``flock`` on ``PATH.lock`` for the whole
read-modify-write, and replaces the file atomically, so concurrent writers
are serialised and no update is lost; readers take a shared lock.  If the
body of a transaction raises, nothing is written: an operation that fails
changes nothing.

A file that is not JSON, or is JSON of the wrong shape (not an object,
a key missing, a value of the wrong type), is refused with a
:class:`StateError` naming the file and what is wrong, before any of it is used.
"""

import contextlib
import fcntl
import json
import os
import re
import stat
import tempfile
from typing import Any, Iterator

from xapi_numa.errors import NumaError, StateError
from xapi_numa.backends.sim.model import STATE_VERSION, Host
from xapi_numa.backends.sim.state_format import host_from_dict, host_to_dict

# The saved host's shape: key -> type, a one-element list for "list of", a dict
# for a nested object, a tuple for "one of these".
_LIST_OFint = [int]
_TOPOLOGY = {"cpu_to_node": _LIST_OFint, "cpu_to_core": _LIST_OFint, "cpu_to_socket": _LIST_OFint,
             "memory_size": _LIST_OFint, "distances": [[int]]}
_DOMAIN = {"domid": int, "name": str, "uuid": str, "type": str, "max_pages": int, "node_pages": _LIST_OFint,
           "claim": int, "node_claims": dict, "node_affinity": (int, type(None)), "last_alloc_node": int,
           "pause_count": int, "load": str, "vcpus": [list]}
_HOST = {"version": int, "topology": _TOPOLOGY, "scheduler": str, "seed": int, "tick": int,
         "free": _LIST_OFint, "next_domid": int, "rng": list, "domains": [_DOMAIN], "sched": dict}
# Vcpu.to_list: id, hard, soft, processor, ... (a 16th, CPU time, and a 17th, credit2's
# last load update, may follow)
_VCPU_FIELDS = 15


class _Damaged(Exception):
    """Where in the file, and what is wrong there."""


_KIND_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "an integer",
               float: "a number", type(None): "null"}


def _kind_name(kind: type) -> str:
    return _KIND_NAMES.get(kind, kind.__name__)


def _type_name(value: Any) -> str:
    return _kind_name(type(value))


def _is(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a number
    return isinstance(value, kind)


def _check(value: Any, shape: Any, where: str) -> None:
    """Raise _Damaged unless ``value`` has ``shape`` (see _HOST)."""
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise _Damaged(f"{where} must be an object, not {_type_name(value)}")
        for key, sub in shape.items():
            if key not in value:
                raise _Damaged(f"{where} has no {key!r}")
            _check(value[key], sub, f"{where}.{key}")
    elif isinstance(shape, list):
        if not isinstance(value, list):
            raise _Damaged(f"{where} must be a list, not {_type_name(value)}")
        for i, item in enumerate(value):
            _check(item, shape[0], f"{where}[{i}]")
    elif isinstance(shape, tuple):
        if not any(_is(value, k) for k in shape):
            wanted = " or ".join(_kind_name(k) for k in shape)
            raise _Damaged(f"{where} must be {wanted}, not {_type_name(value)}")
    elif not _is(value, shape):
        raise _Damaged(f"{where} must be {_kind_name(shape)}, not {_type_name(value)}")


def _fits(value: Any, shape: Any) -> bool:
    """Whether ``value`` has ``shape``, without naming what is wrong (the common case, on
    every read and write: :func:`_check` then names it)."""
    if isinstance(shape, dict):
        return isinstance(value, dict) and all(key in value and _fits(value[key], sub) for key, sub in shape.items())
    if isinstance(shape, list):
        if not isinstance(value, list):
            return False
        kind = shape[0]
        if kind is int:
            return all(type(item) is int for item in value)  # not isinstance: JSON true is no number
        if isinstance(kind, type):
            return all(isinstance(item, kind) for item in value)
        return all(_fits(item, kind) for item in value)
    if isinstance(shape, tuple):
        return any(_is(value, k) for k in shape)
    return _is(value, shape)


def check_shape(data: Any) -> None:
    """Refuse a state of the wrong shape, naming the first thing wrong (raises _Damaged)."""
    if not isinstance(data, dict):
        raise _Damaged(f"the file holds {_type_name(data)}, not a simulated host (a JSON object)")
    if data.get("version") != STATE_VERSION:
        raise _Damaged(f"unsupported state version {data.get('version')!r} (this simulator writes {STATE_VERSION})")
    if not _fits(data, _HOST):
        _check(data, _HOST, "host")
    nodes = len(data["topology"]["memory_size"])
    if len(data["free"]) != nodes:
        raise _Damaged(f"host.free has {len(data['free'])} entries for {nodes} nodes")
    cpus = len(data["topology"]["cpu_to_node"])
    for i, d in enumerate(data["domains"]):
        if len(d["node_pages"]) != nodes:
            raise _Damaged(f"host.domains[{i}].node_pages has {len(d['node_pages'])} entries for {nodes} nodes")
        if d["node_affinity"] is not None and not 0 < d["node_affinity"] < 1 << nodes:
            raise _Damaged(f"host.domains[{i}].node_affinity {d['node_affinity']} is no mask of {nodes} nodes")
        for node, pages in d["node_claims"].items():
            if not (node.isdigit() and int(node) < nodes and _is(pages, int) and pages >= 0):
                raise _Damaged(f"host.domains[{i}].node_claims[{node!r}] is not pages claimed on a node")
        for j, v in enumerate(d["vcpus"]):
            if len(v) < _VCPU_FIELDS:
                raise _Damaged(f"host.domains[{i}].vcpus[{j}] has {len(v)} fields, not {_VCPU_FIELDS}")
            # hard and soft affinity are CPU bitmasks: a negative or empty one would never be read to its end
            for k, name in ((1, "hard"), (2, "soft")):
                if not (_is(v[k], int) and 0 < v[k] < 1 << cpus):
                    raise _Damaged(f"host.domains[{i}].vcpus[{j}] {name} affinity {v[k]!r} is no mask of "
                                   f"{cpus} CPUs")
            if not (_is(v[3], int) and 0 <= v[3] < cpus):
                raise _Damaged(f"host.domains[{i}].vcpus[{j}] runs on CPU {v[3]!r}; the host has {cpus}")


class SimStore:
    def __init__(self, path: str) -> None:
        # the file a symlink names: one host, one lock, whichever path reaches it
        self.path = os.path.realpath(path)
        self.lock_path = self.path + ".lock"

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise StateError(f"cannot open lock file {self.lock_path}: {err.strerror}") from None
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def require(self) -> None:
        """Refuse a path with no simulated host, before anything is made beside it
        (its lock file, a ledger)."""
        if os.path.isdir(self.path):
            raise StateError(f"cannot read simulated host {self.path}: it is a directory")
        self._refuse_special()
        if not os.path.exists(self.path):
            raise StateError(f"no simulated host at {self.path}: create one with "
                             f"'xapi-numa sim init {self.path} ...'")
        if not os.path.exists(self.lock_path):  # first use: no lock file beside another kind of file
            self._load()

    def _load(self) -> Host:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (FileNotFoundError, IsADirectoryError):
            self.require()
            raise
        except OSError as err:
            raise StateError(f"cannot read simulated host {self.path}: {err.strerror or err}") from None
        except RecursionError:
            raise StateError(f"cannot read simulated host {self.path}: its JSON is nested too deeply") from None
        except ValueError as err:
            # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
            raise StateError(f"cannot read simulated host {self.path}: it is not JSON ({err})") from None
        try:
            check_shape(data)
            return host_from_dict(data)
        except _Damaged as err:
            raise StateError(f"simulated host {self.path} is damaged: {err}") from None
        except NumaError as err:
            # a value of the right type that Xen would not accept (distances, load, scheduler)
            raise StateError(f"simulated host {self.path} is damaged: {err.message}") from None
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as err:
            # inconsistent in a way the shape check does not see (e.g. a run queue
            # naming a vCPU that does not exist)
            raise StateError(f"simulated host {self.path} is damaged: inconsistent state "
                             f"({type(err).__name__}: {err})") from None

    def _save(self, host: Host) -> None:
        """Replace the file atomically, keeping its permissions; a file made read-only
        (no write bit for anyone) is refused, as a plain write would be."""
        try:
            mode = stat.S_IMODE(os.stat(self.path).st_mode)
        except FileNotFoundError:
            mode = 0o600
        except OSError as err:
            raise StateError(f"cannot write simulated host {self.path}: {err.strerror or err}") from None
        if not mode & 0o222:
            raise StateError(f"cannot write simulated host {self.path}: it is read-only (chmod u+w to change it)")
        data = host_to_dict(host)
        try:
            check_shape(data)  # what the next read would refuse is never written
        except _Damaged as err:
            raise StateError(f"refusing to write simulated host {self.path}: the change would damage it "
                             f"({err})") from None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".sim-", dir=os.path.dirname(self.path))
        except OSError as err:
            raise StateError(f"cannot write simulated host {self.path}: {err.strerror or err}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                # dumps, not dump: json.dump feeds the file from the pure-Python encoder, which
                # took over half of a long simulation's time; dumps runs the C one
                f.write(json.dumps(data, separators=(",", ":")))
            os.chmod(tmp, mode)
            os.replace(tmp, self.path)
        except OSError as err:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StateError(f"cannot write simulated host {self.path}: {err.strerror or err}") from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _refuse_special(self) -> None:
        """A FIFO, a device or a socket is never a host's state: opened, a FIFO waits for a
        writer for ever, and a device that reads empty (/dev/null) looked like a new file."""
        try:
            mode = os.stat(self.path).st_mode
        except OSError:
            return  # not there (or not reachable): the caller says so
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            raise StateError(f"{self.path} is not a regular file (a device, FIFO or socket): not a simulated "
                             f"host's state (choose another path)")

    def create(self, host: Host, overwrite: bool = False) -> None:
        self._refuse_special()
        if os.path.exists(self.path) and not overwrite:  # (before the lock: nothing made beside another file)
            raise StateError(f"{self.path} already exists (use --force to replace it)")
        if os.path.exists(self.path) and overwrite and not self._looks_simulated():
            raise StateError(f"{self.path} is not a simulated host's state: not replaced (choose another path)")
        with self._locked(fcntl.LOCK_EX):
            if os.path.exists(self.path) and not overwrite:
                raise StateError(f"{self.path} already exists (use --force to replace it)")
            self._save(host)

    def _looks_simulated(self) -> bool:
        """Could the file be a simulated host's state (a damaged or truncated one, or an
        empty file made for it), rather than some other file a mistyped path names?"""
        try:
            with open(self.path, "rb") as f:
                head = f.read(4096).lstrip()
        except OSError:
            return False
        # what this module writes begins {"version": N (a JSON document of another shape, a
        # package.json or an editor's {"version": "2.0.0", ...}, is another program's: never replaced)
        return not head or re.match(rb'\{\s*"version"\s*:\s*\d', head) is not None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Host]:
        """Exclusive read-modify-write; saved only if the body succeeds."""
        self.require()
        with self._locked(fcntl.LOCK_EX):
            host = self._load()
            yield host
            self._save(host)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Host]:
        """Shared read-only view."""
        self.require()
        with self._locked(fcntl.LOCK_SH):
            yield self._load()
