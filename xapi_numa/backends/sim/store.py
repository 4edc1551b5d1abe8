"""The simulated host's state file, shared by every process that uses it.

The CLI, the plugin subprocess, the daemon and tests all open the same PATH.
A writer holds an exclusive ``flock`` on ``PATH.lock`` for the whole
read-modify-write, and replaces the file atomically, so concurrent writers
are serialised and no update is lost; readers take a shared lock.  If the
body of a transaction raises, nothing is written: an operation that fails
changes nothing.

A file that is not JSON, or is JSON of the wrong shape (not an object, a key
missing, a value of the wrong type or out of its bounds, values that do not fit
together: see :mod:`.state_schema`), is refused with a :class:`StateError`
naming the file and the field, before any of it is used.
"""

import contextlib
import fcntl
import json
import os
import re
import stat
import tempfile
from typing import Any, Iterator, List, Optional, Tuple

from xapi_numa.errors import NumaError, StateError
from xapi_numa.backends.sim.model import Host
from xapi_numa.backends.sim.state_format import host_from_dict, host_to_dict
from xapi_numa.backends.sim.state_schema import Damaged, check_shape


class SimStore:
    def __init__(self, path: str) -> None:
        # the file a symlink names: one host, one lock, whichever path reaches it
        self.path = os.path.realpath(path)
        self.lock_path = self.path + ".lock"
        # the state database of this host (reservations, moves, pins), beside the file a
        # symlinked path reaches: one host, one database
        self.ledger_path = self.path + ".ledger.db"
        # the text this store last checked (read or wrote): read again unchanged, as a run of
        # calls on one host reads it, it is not checked again (the check took a third of `demo`)
        self._checked: Optional[str] = None
        # the text last read for a snapshot and the host parsed from it: a cycle reads the host
        # once per domain, and parsing it whole each time made a cycle's cost grow with the
        # square of the domains (23-56 s a cycle at 800 VMs, 0.26 s reusing it)
        self._parsed: Optional[Tuple[str, Host]] = None

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

    def _read(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError):
            self.require()
            raise
        except OSError as err:
            raise StateError(f"cannot read simulated host {self.path}: {err.strerror or err}") from None
        except ValueError as err:  # not UTF-8
            raise StateError(f"cannot read simulated host {self.path}: it is not JSON ({err})") from None

    def _load(self, text: Optional[str] = None) -> Host:
        text = self._read() if text is None else text
        try:
            data = json.loads(text)
        except RecursionError:
            raise StateError(f"cannot read simulated host {self.path}: its JSON is nested too deeply") from None
        except ValueError as err:
            # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
            raise StateError(f"cannot read simulated host {self.path}: it is not JSON ({err})") from None
        try:
            if text != self._checked:
                check_shape(data)
                self._checked = text
            return host_from_dict(data)
        except Damaged as err:
            raise StateError(f"simulated host {self.path} is damaged: {err}") from None
        except NumaError as err:  # (a safety net: the schema checks what the loaders refuse)
            raise StateError(f"simulated host {self.path} is damaged: {err.message}") from None
        except (KeyError, TypeError, IndexError, ValueError, AttributeError, OverflowError) as err:
            # a safety net: inconsistent in a way the schema does not see
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
        except Damaged as err:
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
                text = json.dumps(data, separators=(",", ":"))
                f.write(text)
            os.chmod(tmp, mode)
            os.replace(tmp, self.path)
            self._checked = text
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

    def refuse_unless_replaceable(self, overwrite: bool) -> None:
        """Refuse to make a host here, before anything is made beside the path: a special
        file, one that exists (unless ``overwrite``), or another program's file."""
        self._refuse_special()
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise StateError(f"{self.path}: its folder {folder} does not exist (create it, or choose another path)")
        for beside in self.ledger_files():  # (deleted for the new host: a directory there would stop it half made)
            if os.path.isdir(beside):
                raise StateError(f"{beside} is a directory where the host's state database goes: not replaced "
                                 f"(move it away, or choose another path)")
        if os.path.exists(self.path) and not overwrite:
            raise StateError(f"{self.path} already exists (use --force to replace it)")
        if os.path.exists(self.path) and overwrite and not self._looks_simulated():
            raise StateError(f"{self.path} is not a simulated host's state: not replaced (choose another path)")

    def ledger_files(self) -> List[str]:
        """The state database beside the host and SQLite's files of it (a new host deletes them)."""
        return [self.ledger_path + suffix for suffix in ("", "-wal", "-shm", "-journal")]

    def create(self, host: Host, overwrite: bool = False) -> None:
        self.refuse_unless_replaceable(overwrite)  # (before the lock: nothing made beside another file)
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
        """Shared read-only view: the host parsed from the same text is handed out again
        (a transaction always parses its own, which it changes)."""
        self.require()
        with self._locked(fcntl.LOCK_SH):
            text = self._read()
            if self._parsed is None or self._parsed[0] != text:
                self._parsed = (text, self._load(text))
            yield self._parsed[1]
