"""The simulated host's state file, shared by every process that uses it.

The CLI, the plugin subprocess, the daemon and tests all open the same PATH.
A writer holds an exclusive ``flock`` on ``PATH.lock`` for the whole
read-modify-write, and replaces the file atomically, so concurrent writers
are serialised and no update is lost; readers take a shared lock.  If the
body of a transaction raises, nothing is written: an operation that fails
changes nothing.
"""

import contextlib
import fcntl
import json
import os
import tempfile
from typing import Iterator

from xapi_numa.errors import StateError
from xapi_numa.backends.sim.model import Host


class SimStore:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
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

    def _load(self) -> Host:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise StateError(f"no simulated host at {self.path}: create one with "
                             f"'xapi-numa sim init {self.path} ...'") from None
        except (OSError, ValueError) as err:
            raise StateError(f"cannot read simulated host {self.path}: {err}") from None
        try:
            return Host.from_dict(data)
        except (KeyError, TypeError, IndexError) as err:
            raise StateError(f"simulated host {self.path} is damaged ({err!r})") from None

    def _save(self, host: Host) -> None:
        directory = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(prefix=".sim-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(host.to_dict(), f, separators=(",", ":"))
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def create(self, host: Host, overwrite: bool = False) -> None:
        with self._locked(fcntl.LOCK_EX):
            if os.path.exists(self.path) and not overwrite:
                raise StateError(f"{self.path} already exists (use --force to replace it)")
            self._save(host)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Host]:
        """Exclusive read-modify-write; saved only if the body succeeds."""
        with self._locked(fcntl.LOCK_EX):
            host = self._load()
            yield host
            self._save(host)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Host]:
        """Shared read-only view."""
        with self._locked(fcntl.LOCK_SH):
            yield self._load()
