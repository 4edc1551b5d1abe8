"""Batch records of page moves on real Xen: the files, their sweep, their recovery.

Part of the Xen adapter (:mod:`xapi_numa.backends.xen` calls these with its
libxenuma binding and handle).  A mover keeps its batch record on tmpfs while
it holds a domain paused (``xn_mig_move``; the format and its rules are
libxenuma's ``batchrecord.h``), a memory scan its probe pause's record beside
it under a name of its own, so that a scan beside a running move disturbs
neither.  What this module owns: where the records live and what they are
called; which domains have one; the sweep of a record whose writer was killed
before it was linked under its name (a full-size file on tmpfs, dom0's memory,
nothing else would remove); and recovery through ``xn_mig_recover``, with
errors that name the record and say what to do.
"""
import errno
import fcntl
import os
import re
import time
from typing import List, Optional

from xapi_numa.core.memory_move import found_running, max_pages_note
from xapi_numa.errors import HypervisorError

RUN_DIR = "/run/xapi-numa"  # tmpfs (XAPI_NUMA_RUN_DIR overrides it)
RECORD_NAME = re.compile(r"move-([0-9]{1,10})\.(batch|probe)")
RECORD_BEING_WRITTEN = re.compile(r"move-[0-9]{1,10}\.(batch|probe)\.new\.[0-9]+\.[0-9]+\.[0-9]+")
WRITER_GONE_S = 60.0  # a record takes well under a second to write and link


def record_path(domid: int, kind: str = "batch") -> str:
    directory = os.environ.get("XAPI_NUMA_RUN_DIR", RUN_DIR)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    return os.path.join(directory, f"move-{domid}.{kind}")


def domids_with_records() -> List[int]:
    """The domains a record names (sweeping those whose writer was killed writing them)."""
    directory = os.path.dirname(record_path(0))
    names = os.listdir(directory)
    for name in names:
        if RECORD_BEING_WRITTEN.fullmatch(name):
            sweep_unfinished(os.path.join(directory, name))
    return sorted({int(m.group(1)) for m in map(RECORD_NAME.fullmatch, names) if m})


def sweep_unfinished(path: str) -> None:
    """Remove a record its writer was killed writing: its writer holds its lock while it
    lives.  Only one old enough is even locked to look: a writer takes its lock just
    after creating the file, and a sweep holding it at that instant made the writer's
    own lock fail (EWOULDBLOCK), and its batch with it (seen on real Xen)."""
    try:
        if time.time() - os.stat(path).st_mtime <= WRITER_GONE_S:
            return
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(path)
    except OSError:
        pass  # its writer lives (or it went meanwhile)
    finally:
        os.close(fd)


def recover_all(ffi, lib, handle, domid: int) -> Optional[str]:
    """Recover what a dead mover left of this domain: its batch record, then a probe's.
    A probe record held by its scan (EBUSY) is that live scan's, not a dead one's: it
    neither stops nor spoils what the batch record's recovery did."""
    notes = [recover(ffi, lib, handle, domid, record_path(domid, "batch"))]
    try:
        notes.append(recover(ffi, lib, handle, domid, record_path(domid, "probe")))
    except HypervisorError as err:
        if err.errno != errno.EBUSY:  # said with what the batch record's recovery did
            raise HypervisorError(err.errno, "; ".join(n for n in notes + [err.message] if n)) from None
    return "; ".join(n for n in notes if n) or None


def recover(ffi, lib, handle, domid: int, path: str) -> Optional[str]:
    """Recover one record, if it is there; what was done (None: nothing)."""
    if not os.path.exists(path):
        return None
    res = ffi.new("struct xn_mig_result *")
    rc = lib.xn_mig_recover(handle, path.encode(), res)
    if rc == -errno.EPROTO:  # a record this version cannot read: an older version's, or not ours
        raise HypervisorError(errno.EPROTO, f"recovering an interrupted page move of domain {domid}: {path} is "
                                            f"not a batch record this version reads (another version's?); if "
                                            f"domain {domid} is paused (xl list), unpause it (xl unpause "
                                            f"{domid}), then remove {path}")
    if rc < 0:
        raise HypervisorError(-rc, f"recovering an interrupted page move of domain {domid} (record kept at {path})")
    if rc == lib.XN_MIG_RECOVERED_GONE:
        return f"domain {domid} no longer exists: removed the batch record its mover left"
    notes = [found_running(domid, res.fallback) if rc == lib.XN_MIG_RECOVERED_RUNNING else None if rc == 0 else (
        f"domain {domid}: finished a page-move batch its mover left paused ({res.fallback} released pages backed "
        f"again, contents restored) and unpaused it")]
    return "; ".join(n for n in notes + [max_pages_note(domid, res.max_restored, res.max_unknown)] if n) or None
