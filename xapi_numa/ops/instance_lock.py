"""One copy per host of a long-running program (xapi-numad, xapi-numa-rrdd): the lock it
holds for its life, and whether one holds it.

The lock is a ``flock`` on a file named after the program: under ``/run/xapi-numa``
for the real host (``XAPI_NUMA_RUN_DIR`` overrides it), beside the state file for a
simulated host (reached through symlinks: one host, one lock).  The kernel drops it
with the process, so a copy killed by SIGKILL never leaves a stale lock behind.  Each
program's systemd unit is named after it, which the refusal points to.
"""
import errno
import fcntl
import os
import re
from typing import Optional

from xapi_numa.backends.open import sim_path
from xapi_numa.errors import StateError

RUN_DIR = "/run/xapi-numa"
DAEMON = "xapi-numad"


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
            raise StateError("another {}{} already runs for this host (it holds {}); stop it first ({})".format(
                program, " (pid {})".format(pid) if pid else "", path, how)) from None
        os.close(fd)
        raise StateError("cannot lock {}: {}".format(path, err.strerror)) from None
    os.ftruncate(fd, 0)
    os.write(fd, "{}\n".format(os.getpid()).encode())
    return fd


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
