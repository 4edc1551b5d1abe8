"""Per-VM advisory locks beside the state database (``<db>.locks/KIND-UUID.lock``, beside
the file the database's path reaches: one database, one lock directory, however a
process names it: ``--ledger``, ``$XAPI_NUMA_LEDGER``, a symlink).

An ``flock`` on an open file: the kernel releases it when the process dies,
however it dies, so a lock says "a live process is doing this" without any pid
check (pids are reused).  A child can inherit one (it shares the open file).
A lock file is removed only by a process holding it (:func:`forget_vm_locks`:
xapi-numad's upkeep, for VMs long gone: one file per VM ever placed or moved
piled up for good), and a taker checks after its flock that the path still
names the file it locked, else takes the file there now: one that opened the
old file just before it went never holds "the" lock beside another process.

Whether a lock is held is asked without taking it (:meth:`FileLock.held_by_someone`):
taking it for an instant, as a probe did, made a mover that tried at that instant
fail (its lock "held by another").  Linux cannot test an ``flock`` without taking
it, so a holder also takes an open-file-description lock (``F_OFD_SETLK``) on the
same open file, which lives and dies with it (inherited alike, dropped alike), and
which ``F_OFD_GETLK`` tests without taking anything.
"""
import errno
import fcntl
import os
import struct
import time
from typing import Callable, Iterable, List, Optional, Tuple

from xapi_numa.errors import StateError

POLL_S = 0.05  # how often a bounded wait tries the lock again
F_OFD_GETLK, F_OFD_SETLK = 36, 37  # Linux's (fcntl.h); Python's fcntl names them from 3.9 only
WHOLE_FILE = "hhqqi4x"  # struct flock on Linux x86-64 and arm64: type, whence, start, len (0: to the end), pid


def _ofd(fd: int, command: int) -> int:
    """An open-file-description write lock on the whole file: taken (F_OFD_SETLK) or
    tested (F_OFD_GETLK: the type of a lock held elsewhere, F_UNLCK if none)."""
    answer = fcntl.fcntl(fd, command, struct.pack(WHOLE_FILE, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
    return struct.unpack(WHOLE_FILE, answer)[0]


def _mark_held(fd: int) -> None:
    """Beside the flock just taken through ``fd``, what :meth:`FileLock.held_by_someone` tests.
    A kernel without such locks (before Linux 3.15) refuses it: the test then probes the flock."""
    try:
        _ofd(fd, F_OFD_SETLK)
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise StateError("cannot mark a lock taken through descriptor {}: {}".format(fd, err.strerror)) from None


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

    def _named(self, fd: int) -> bool:
        """Does the path still name the file open as ``fd``?  (Not when its holder removed it
        between our open and our flock: :func:`forget_vm_locks`.)"""
        try:
            mine, now = os.fstat(fd), os.stat(self.path)
        except OSError:
            return False
        return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)

    def _locked(self, flags: int) -> Optional[int]:
        """A descriptor of the file the path names, flock-ed with ``flags``; None if another holds it."""
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, flags)
            except BaseException as err:
                os.close(fd)
                if isinstance(err, OSError) and err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    return None
                if isinstance(err, OSError):
                    raise _failure("lock", self.path, err) from None
                raise
            if self._named(fd):
                return fd
            os.close(fd)  # removed under us: the file there now (if any) is the lock

    def try_acquire(self) -> bool:
        """Take it if nobody holds it; False if a live process does."""
        fd = self._locked(fcntl.LOCK_EX | fcntl.LOCK_NB)
        if fd is None:
            return False
        self._mark(fd)
        self.fd = fd
        return True

    def _mark(self, fd: int) -> None:
        try:
            _mark_held(fd)
        except StateError:
            os.close(fd)
            raise

    def acquire(self) -> None:
        """Wait for it (for short critical sections only)."""
        fd = self._locked(fcntl.LOCK_EX)
        assert fd is not None  # (a blocking flock is never refused as busy)
        self._mark(fd)
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
        """Whether a live process holds it, asked without taking it: a process taking it at
        this very instant is never refused because of the question.  Creates nothing."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False  # never made: nobody ever took it
        except OSError as err:
            raise _failure("open the lock", self.path, err) from None
        try:
            return _ofd(fd, F_OFD_GETLK) != fcntl.F_UNLCK
        except OSError as err:
            if err.errno != errno.EINVAL:
                raise _failure("test the lock", self.path, err) from None
        finally:
            os.close(fd)
        if self.try_acquire():  # no such locks here (Linux before 3.15): the flock itself, for an instant
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
        try:
            _mark_held(fd)  # (held through it already, if its parent took it: the same open file)
        except StateError as err:
            return err.message
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


def forget_vm_locks(db_path: str, keep: Callable[[str], bool]) -> int:
    """Remove the per-VM lock files beside ``db_path`` of the VMs ``keep`` does not name (by UUID)
    that nobody holds, each while holding it (a taker that opened it meanwhile takes the file
    made anew: :meth:`FileLock.try_acquire`); how many went.  A VM's lock file is made again
    by the next place or move of it."""
    gone = 0
    for _, uuid, path in _lock_files(db_path):
        if keep(uuid):
            continue
        lock = FileLock(path, create=False)
        try:
            if not lock.try_acquire():
                continue  # held: a place or a mover of it under way
        except StateError:
            continue  # removed meanwhile (another upkeep, a new host)
        try:
            os.unlink(path)
            gone += 1
        except FileNotFoundError:
            pass
        except OSError as err:
            raise _failure("remove the lock", path, err) from None
        finally:
            lock.release()
    return gone


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
