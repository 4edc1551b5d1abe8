"""Batch records of page moves on real Xen: the files, their sweep, their recovery.

Part of the Xen adapter (:mod:`xapi_numa.backends.xen` calls these with its
libxenuma binding and handle).  A mover keeps its batch record on tmpfs while
it holds a domain paused (``xn_mig_move``; the format and its rules are
libxenuma's ``batchrecord.h``), a memory scan its probe pause's record beside
it under a name of its own, so that a scan beside a running move disturbs
neither.  What this module owns: where the records live and what they are
called; which domains have one (a read: it creates and removes nothing, for dry
runs and status queries); the sweep, by recovery alone, of a record whose writer
was killed before it was linked under its name (a full-size file on tmpfs,
dom0's memory, nothing else would remove); and recovery through
``xn_mig_recover``, with errors that name the record and say what to do.  Also
how a move names the domain it expects (its handle) and says that a domid became
another domain's before the batch began.
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
# libxenuma's temporary name: <record>.new.<writer's pid>.<its thread id>.<a count of that process's>
RECORD_BEING_WRITTEN = re.compile(r"move-[0-9]{1,10}\.(batch|probe)\.new\.([0-9]+)\.[0-9]+\.[0-9]+")
WRITER_GONE_S = 60.0  # a record takes well under a second to write and link


def run_dir() -> str:
    return os.environ.get("XAPI_NUMA_RUN_DIR", RUN_DIR)


def record_path(domid: int, kind: str = "batch") -> str:
    """Where the record of ``domid`` is (or would be); creates nothing (a writer makes
    the directory first: :func:`writable_record_path`)."""
    return os.path.join(run_dir(), f"move-{domid}.{kind}")


def writable_record_path(domid: int, kind: str = "batch") -> str:
    """:func:`record_path`, its directory made if need be: for a mover or a probe about to write."""
    os.makedirs(run_dir(), mode=0o700, exist_ok=True)
    return record_path(domid, kind)


def _names() -> List[str]:
    try:
        return os.listdir(run_dir())
    except FileNotFoundError:  # no mover or probe ever wrote one since dom0 booted
        return []


def domids_with_records() -> List[int]:
    """The domains a record names: a read, which creates and removes nothing (a record
    being written is its writer's business, one whose writer died recovery's:
    :func:`sweep_unfinished_records`)."""
    return sorted({int(m.group(1)) for m in map(RECORD_NAME.fullmatch, _names()) if m})


def sweep_unfinished_records() -> List[str]:
    """Remove each record its writer was killed writing (recovery's sweep, never a query's);
    what was removed, for logs."""
    directory = run_dir()
    swept = []
    for name in _names():
        m = RECORD_BEING_WRITTEN.fullmatch(name)
        if m and sweep_unfinished(os.path.join(directory, name), int(m.group(2))):
            swept.append("removed {}: its writer (process {}) died before it was finished".format(
                name, m.group(2)))
    return swept


def _process_lives(pid: int) -> bool:
    if pid <= 0:
        return True  # no process of ours: leave its file alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists (another user's)
        return True
    return True


def sweep_unfinished(path: str, writer: int) -> bool:
    """Remove a record process ``writer`` (its name says which) was killed writing; True if
    removed.  A record is written by the process its name names, from its creation to its
    link under the record's own name: while that process lives the file is left alone,
    whatever its age, and it is never locked (a lock held at the instant its writer locks
    it, just after creating it, failed the writer's batch: seen on real Xen).  Once that
    process is gone the file is opened, and only a file old enough (WRITER_GONE_S) is even
    locked, so that a new process that got the dead one's pid, thread id and count, and
    so the same name, is not disturbed either: it unlinks the old file and creates its own
    (whose inode the check after the lock tells from ours).  The one window left, that new
    process replacing the file between that check and the unlink, needs the pid to come
    round again in those microseconds; it would fail that writer's batch before any pause,
    never a guest's memory."""
    if _process_lives(writer):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        mine = os.fstat(fd)
        if time.time() - mine.st_mtime <= WRITER_GONE_S:
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        now = os.stat(path)
        if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            return False
        os.unlink(path)
        return True
    except OSError:
        return False  # a process holds it (one that inherited it), or it went meanwhile
    finally:
        os.close(fd)


def handle(ffi, uuid: Optional[str]):
    """A domain's handle (xl's UUID, 16 bytes) for ``xn_mig_move_as``; NULL: no check."""
    return ffi.NULL if uuid is None else ffi.new("uint8_t[16]", bytes.fromhex(uuid.replace("-", "")))


def refuse_another(rc: int, domid: int, uuid: Optional[str]) -> None:
    """``xn_mig_move_as`` refused ``domid`` as no longer VM ``uuid``'s domain (ESTALE)."""
    if uuid is not None and rc == -errno.ESTALE:
        raise HypervisorError(errno.ESTALE, f"moving memory of domain {domid}: it is no longer VM {uuid}'s (that "
                                            f"domain was destroyed and its domid given again): nothing moved")


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
