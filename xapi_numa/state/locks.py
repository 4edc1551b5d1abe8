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


class FileLock:
    def __init__(self, path: str, fd: Optional[int] = None) -> None:
        self.path = path
        self.fd = fd

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise StateError("cannot open the lock {}: {}".format(self.path, err.strerror)) from None

    def try_acquire(self) -> bool:
        """Take it if nobody holds it; False if a live process does."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise StateError("cannot lock {}: {}".format(self.path, err.strerror)) from None
        self.fd = fd
        return True

    def acquire(self) -> None:
        """Wait for it (for short critical sections only)."""
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
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


def vm_lock(db_path: str, kind: str, uuid: str) -> FileLock:
    directory = lock_directory(db_path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as err:
        raise StateError("cannot create {}: {}".format(directory, err.strerror)) from None
    return FileLock(os.path.join(directory, "{}-{}{}".format(kind, uuid, LOCK_SUFFIX)))


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
