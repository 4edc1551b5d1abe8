"""Per-VM advisory locks beside the state database (``<db>.locks/KIND-UUID.lock``, beside
the file the database's path reaches: one database, one lock directory, however a
process names it: ``--ledger``, ``$XAPI_NUMA_LEDGER``, a symlink).

An ``flock`` on an open file: the kernel releases it when the process dies,
however it dies, so a lock says "a live process is doing this" without any pid
check (pids are reused).  A child can inherit one (it shares the open file).
Lock files are never deleted: unlinking a lock file others may be opening
would let two processes hold "the" lock.
"""
import errno
import fcntl
import os
import time
from typing import Iterable, List, Optional, Tuple

from xapi_numa.errors import StateError

POLL_S = 0.05  # how often a bounded wait tries the lock again


def _failure(what: str, path: str, err: OSError) -> StateError:
    """Why ``what`` failed on the lock file ``path`` (``err``), and what to do."""
    code = err.errno
    if code in (errno.EACCES, errno.EPERM):
        hint = "run it as root, or let this user write {}".format(os.path.dirname(path))
    elif code == errno.EROFS:
        hint = "its file system is read-only: remount it read-write, or set $XAPI_NUMA_LEDGER / --ledger elsewhere"
    elif code in (errno.ENOSPC, errno.EDQUOT):
        hint = "the disk holding it is full: free some space"
    elif code == errno.EISDIR:
        hint = "a directory is in its place: move it aside (xapi-numa makes the lock file again)"
    elif code == errno.ENOLCK:
        hint = "the kernel has no lock to give: too many held, or a file system without flock (use a local one)"
    else:
        hint = "check {} and the file system holding it".format(os.path.dirname(path))
    return StateError("cannot {} {}: {} ({})".format(what, path, err.strerror or err, hint))


class FileLock:
    """``create`` False: the lock file is never made (nor its directory, by :func:`vm_lock`):
    one that is not there is held by nobody, and cannot be taken."""

    def __init__(self, path: str, fd: Optional[int] = None, create: bool = True) -> None:
        self.path = path
        self.fd = fd
        self.create = create

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if self.create else 0), 0o600)
        except OSError as err:
            if not self.create and err.errno == errno.ENOENT:
                raise StateError("cannot take the lock {}: there is none, and none is made beside a state database "
                                 "that is not there (a query's, read in memory)".format(self.path)) from None
            raise _failure("open the lock", self.path, err) from None

    def try_acquire(self) -> bool:
        """Take it if nobody holds it; False if a live process does."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise _failure("lock", self.path, err) from None
        self.fd = fd
        return True

    def acquire(self) -> None:
        """Wait for it (for short critical sections only)."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException as err:
            os.close(fd)
            if isinstance(err, OSError):
                raise _failure("lock", self.path, err) from None
            raise
        self.fd = fd

    def acquire_within(self, seconds: float, poll: float = POLL_S) -> bool:
        """Wait for it ``seconds`` at most (its holder may be stuck: in a hung hypervisor
        call, say); False if it is still held by then."""
        deadline = time.monotonic() + seconds
        while not self.try_acquire():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(poll, left))
        return True

    def held_by_someone(self) -> bool:
        if not self.create and not os.path.lexists(self.path):
            return False  # (never made: nobody ever took it)
        if self.try_acquire():
            self.release()
            return False
        return True

    def held_through(self, fd: int) -> Optional[str]:
        """Why descriptor ``fd`` (inherited from a parent) does not hold this lock; None
        if it does: it is open on this very file, and locking through it succeeds (its
        open file is the one holding the lock, or nobody holds it and now it does)."""
        try:
            theirs = os.fstat(fd)
        except OSError as err:
            return "not an open descriptor ({})".format(err.strerror)
        try:
            mine = os.stat(self.path)
        except OSError as err:  # never created: nobody ever claimed the VM
            return "no lock {} to hold ({})".format(self.path, err.strerror)
        if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
            return "not open on {}".format(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return "another process holds the lock {}".format(self.path)
            return "cannot lock {} through it ({})".format(self.path, err.strerror)
        return None

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            try:
                os.close(fd)
            except OSError:  # closed already: nothing of ours to drop
                pass

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


LOCK_SUFFIX = ".lock"
MOVE = "move"    # a page mover's, from its claim to its exit
PLACE = "place"  # a place's or release's, while it changes the VM
KINDS = (MOVE, PLACE)


def lock_directory(db_path: str) -> str:
    """Where the per-VM locks of the state database ``db_path`` are: beside the file it
    reaches through symlinks, so that every process using that database finds them."""
    return os.path.realpath(db_path) + ".locks"


def vm_lock(db_path: str, kind: str, uuid: str, create: bool = True) -> FileLock:
    """The ``kind`` lock of VM ``uuid`` beside the state database ``db_path``.  ``create``
    False, for a database in memory standing for a file that is not there
    (:func:`~xapi_numa.state.db.open_to_read`): the same path, but neither the directory
    nor the file is made (none there: nobody holds the lock; a query makes no state)."""
    directory = lock_directory(db_path)
    if create:
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as err:
            raise _failure("create the lock directory", directory, err) from None
    return FileLock(os.path.join(directory, "{}-{}{}".format(kind, uuid, LOCK_SUFFIX)), create=create)


def _lock_files(db_path: str) -> List[Tuple[str, str, str]]:
    """(kind, VM UUID, path) of each per-VM lock file beside ``db_path``."""
    directory = lock_directory(db_path)
    try:
        names = sorted(os.listdir(directory))
    except OSError:  # none yet: no VM was ever moved or placed with this database
        return []
    out = []
    for name in names:
        path = os.path.join(directory, name)
        if name.endswith(LOCK_SUFFIX) and os.path.isfile(path):
            kind, _, uuid = name[:-len(LOCK_SUFFIX)].partition("-")
            out.append((kind, uuid, path))
    return out


def take_vm_locks(db_path: str, uuids: Iterable[str],
                  taken: Optional[List[FileLock]] = None) -> Tuple[List[FileLock], List[Tuple[str, str, str]]]:
    """Take for this process every per-VM lock beside ``db_path`` (each lock file there,
    and each kind of lock of each VM of ``uuids``, made if need be), so that no mover or
    place of those VMs can start until they are released: (the locks taken, added to
    ``taken``; those a live process holds, as (kind, VM UUID, the lock's path)).  The
    caller releases the taken ones (all of them, if any was busy)."""
    taken = [] if taken is None else taken
    mine = {lock.path for lock in taken}
    wanted = [(kind, uuid, path) for kind, uuid, path in _lock_files(db_path)]
    wanted += [(kind, uuid, vm_lock(db_path, kind, uuid).path) for uuid in sorted(set(uuids)) for kind in KINDS]
    busy = []
    for kind, uuid, path in wanted:
        if path in mine:
            continue
        lock = FileLock(path)
        if lock.try_acquire():
            taken.append(lock)
            mine.add(path)
        else:
            busy.append((kind, uuid, path))
    return taken, busy
