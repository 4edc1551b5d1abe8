"""One copy per host of a long-running program (xapi-numad, xapi-numa-rrdd): the lock it
holds for its life, and whether one holds it.

The lock is a ``flock`` on a file named after the program: under ``/run/xapi-numa``
for the real host (``XAPI_NUMA_RUN_DIR`` overrides it), beside the state file for a
simulated host (reached through symlinks: one host, one lock).  The kernel drops it
with the process, so a copy killed by SIGKILL never leaves a stale lock behind.  Each
program's systemd unit is named after it, which the refusal points to.

A flock is on a file, not on its name: once the file is removed (an admin's ``rm -rf
/run/xapi-numa``, a tmpfs mounted over ``/run``) the next copy makes a new one and locks
it beside the first, and the two undo each other's pins.  So a copy that runs for long
looks again (:meth:`HeldLock.kept`, a stat a cycle): where the name no longer names the
file it holds, it takes the lock again from the name, or learns that another copy has.
"""
import errno
import fcntl
import os
import re
from typing import Optional

from xapi_numa.backends.open import sim_path
from xapi_numa.errors import InstanceRunning, StateError

RUN_DIR = "/run/xapi-numa"
DAEMON = "xapi-numad"
# Exit status of a copy refused because another copy holds the host's lock (at its start, or
# taken from it since): EX_CANTCREAT, a status of its own so that a unit does not restart it
# (RestartPreventExitStatus=73: every restart would be refused again while that copy runs) and
# still ends "failed" for the admin to see (the error line names the other copy's pid).
EXIT_ANOTHER_COPY = 73


def real_sim_path(spec: str) -> Optional[str]:
    """A simulated host's file as its store reaches it (through symlinks), or None."""
    path = sim_path(spec)
    return os.path.realpath(path) if path else path


def lock_path(spec: str, program: str = DAEMON) -> str:
    path = real_sim_path(spec)
    if path:
        return "{}.{}.lock".format(path, program)
    return os.path.join(os.environ.get("XAPI_NUMA_RUN_DIR", RUN_DIR), program + ".lock")


def acquire(spec: str, program: str = DAEMON) -> int:
    """Hold the host's lock of ``program`` for the life of the process; refuse a second copy."""
    path = lock_path(spec, program)
    try:
        if not real_sim_path(spec):  # /run/xapi-numa; a simulated host's lock goes beside its (existing) file
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise StateError("cannot open the {} lock {}: {}".format(program, path, err.strerror)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            pid = _holder_pid(fd)
            os.close(fd)
            # systemd runs the host's copy (its unit is named after it); one for a simulated
            # host is someone's own process
            how = "systemctl stop " + program if not real_sim_path(spec) else \
                "kill {}".format(pid) if pid else "stop that process"
            raise InstanceRunning("another {}{} already runs for this host (it holds {}); stop it first ({})".format(
                program, " (pid {})".format(pid) if pid else "", path, how)) from None
        os.close(fd)
        raise StateError("cannot lock {}: {}".format(path, err.strerror)) from None
    os.ftruncate(fd, 0)
    os.write(fd, "{}\n".format(os.getpid()).encode())
    return fd


class HeldLock:
    """The host's lock of ``program``, held by this process for its life (:func:`acquire`),
    and kept held under its name (:meth:`kept`)."""

    def __init__(self, spec: str, program: str = DAEMON) -> None:
        self.spec, self.program = spec, program
        self.path = lock_path(spec, program)
        self.fd = acquire(spec, program)

    def kept(self) -> bool:
        """True while the lock's path names the file this process holds locked.  Where it names
        another file or none (removed, replaced), the lock is taken again from the path (False);
        an :class:`InstanceRunning` if another copy holds the file there now: it started since,
        and this one is to stop.  A StateError if the path cannot be opened (the old file is
        held on, and the next look tries again: no other copy can open it either)."""
        if _names(self.path, self.fd):
            return True
        try:
            fd = acquire(self.spec, self.program)
        except InstanceRunning:
            pid = _pid_at(self.path)
            raise InstanceRunning("the {} lock {} was removed or replaced while this copy ran, and another {}{} "
                                  "holds it now".format(self.program, self.path, self.program,
                                                        " (pid {})".format(pid) if pid else "")) from None
        os.close(self.fd)  # (the old file, deleted or no longer named: no copy can meet this lock on it)
        self.fd = fd
        return False

    def release(self) -> None:
        os.close(self.fd)


def _names(path: str, fd: int) -> bool:
    """Does ``path`` name the file open as ``fd``?"""
    try:
        named, held = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _pid_at(path: str) -> Optional[int]:
    """The pid the holder of the lock file at ``path`` wrote there, if it reads as one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _holder_pid(fd)
    finally:
        os.close(fd)  # (no flock was taken on it: none is dropped)


def _holder_pid(fd: int) -> Optional[int]:
    """The pid the holder wrote in the lock file, if it reads as one."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if re.fullmatch(r"[0-9]{1,10}", text) else None


def holder(spec: str, program: str = DAEMON) -> Optional[str]:
    """The lock's path if a copy of ``program`` holds it now, else None (the lock is left as found)."""
    path = lock_path(spec, program)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # never taken here: no copy ever ran for this host
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        return path if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
    finally:
        os.close(fd)  # closing drops a lock taken just now
    return None
