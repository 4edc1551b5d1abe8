"""Per-VM locks and the state database's busy timeout when the system says no.

* Beside a state database in memory (a query's, where there is no file: ``open_to_read``),
  ``vm_lock`` made ``<path>.locks`` (and, for the default path, ``/var/lib/xapi-numa``): a
  query made state.  It now makes nothing: such a lock is held by nobody, and cannot be taken.
* ``FileLock.acquire`` let the OSError of its ``flock`` through, and
  ``Database.set_busy_timeout`` a raw ``sqlite3.Error`` (xapi-numad's stop catches neither:
  a traceback); every lock failure now names the path and what to do, as a NUMA_STATE_ERROR.
"""
import errno
import fcntl
import os
import sqlite3

import pytest

from xapi_numa import daemon
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.errors import StateError
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state import locks
from xapi_numa.state.db import Database, open_to_read
from xapi_numa.state.locks import MOVE, FileLock, vm_lock
from xapi_numa.state.moves import MoveJournal

UUID = "0f4a7c2e-1b3d-4e5f-8a9b-0c1d2e3f4a5b"


# --- a database in memory -------------------------------------------------------------------------
def test_a_journal_in_memory_makes_no_lock_directory(tmp_path):
    missing = str(tmp_path / "none.db")
    journal = MoveJournal(open_to_read(missing))
    assert journal.db.in_memory
    lock = journal.lock_for(UUID)
    assert lock.path == os.path.join(str(tmp_path), "none.db.locks", "move-{}.lock".format(UUID))  # the same path
    assert journal.mover_alive(UUID) is False
    with pytest.raises(StateError) as refused:
        lock.try_acquire()
    assert refused.value.code == "NUMA_STATE_ERROR" and lock.path in refused.value.message
    assert os.listdir(str(tmp_path)) == []


def test_beside_an_in_memory_database_a_lock_other_processes_hold_is_still_seen(tmp_path):
    """The directory there (the file was moved aside, the locks stay): the same lock files, none made."""
    path = str(tmp_path / "l.db")
    held = vm_lock(path, MOVE, UUID)  # (a live mover's, made beside the file when there was one)
    assert held.try_acquire()
    try:
        journal = MoveJournal(open_to_read(path))
        assert journal.db.in_memory and journal.mover_alive(UUID) is True
        assert journal.mover_alive("another") is False
    finally:
        held.release()
    assert os.listdir(str(tmp_path / "l.db.locks")) == ["move-{}.lock".format(UUID)]


def test_a_journal_on_a_file_still_makes_its_lock_directory(tmp_path):
    journal = MoveJournal(Database(str(tmp_path / "l.db")))
    assert journal.mover_alive(UUID) is False
    assert os.path.isdir(str(tmp_path / "l.db.locks"))
    # (the liveness question itself makes no lock file: only a mover taking the lock does)
    assert not os.path.exists(str(tmp_path / "l.db.locks" / "move-{}.lock".format(UUID)))
    assert journal.lock_for(UUID).try_acquire()
    assert os.path.isfile(str(tmp_path / "l.db.locks" / "move-{}.lock".format(UUID)))


# --- the system says no ---------------------------------------------------------------------------
@pytest.mark.parametrize("code, advice", [(errno.EACCES, "root"), (errno.EROFS, "read-only"),
                                          (errno.ENOSPC, "full"), (errno.ENOLCK, "no lock to give")])
def test_acquire_turns_a_failed_flock_into_a_state_error(tmp_path, monkeypatch, code, advice):
    lock = vm_lock(str(tmp_path / "l.db"), MOVE, UUID)

    def refused(fd, how):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fcntl, "flock", refused)
    for take in (lock.acquire, lock.try_acquire):
        with pytest.raises(StateError) as err:
            take()
        assert err.value.code == "NUMA_STATE_ERROR" and lock.path in err.value.message, err.value.message
        assert os.strerror(code) in err.value.message and advice in err.value.message, err.value.message
    assert lock.fd is None


@pytest.mark.parametrize("code, advice", [(errno.EACCES, "root"), (errno.EROFS, "read-only"),
                                          (errno.ENOSPC, "full")])
def test_a_lock_file_that_cannot_be_opened_says_what_to_do(tmp_path, monkeypatch, code, advice):
    lock = FileLock(str(tmp_path / "x.lock"))
    real_open = os.open

    def refused(path, *args, **kwargs):
        if path == lock.path:
            raise OSError(code, os.strerror(code), path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(StateError) as err:
        lock.acquire()
    assert lock.path in err.value.message and advice in err.value.message, err.value.message


def test_a_directory_in_place_of_the_lock_file(tmp_path):
    lock = vm_lock(str(tmp_path / "l.db"), MOVE, UUID)
    os.mkdir(lock.path)
    for take in (lock.acquire, lock.try_acquire):
        with pytest.raises(StateError) as err:
            take()
        assert lock.path in err.value.message and "a directory is in its place" in err.value.message


def test_a_lock_directory_that_cannot_be_made_says_what_to_do(tmp_path, monkeypatch):
    def refused(path, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

    monkeypatch.setattr(locks.os, "makedirs", refused)
    with pytest.raises(StateError) as err:
        vm_lock(str(tmp_path / "l.db"), MOVE, UUID)
    assert str(tmp_path / "l.db.locks") in err.value.message and "read-only" in err.value.message


# --- the busy timeout -----------------------------------------------------------------------------
class _Refusing:
    """A connection whose every statement fails as SQLite's do (I/O error on a failing disk)."""

    def execute(self, *args):
        raise sqlite3.OperationalError("disk I/O error")

    def close(self):
        pass


def test_set_busy_timeout_turns_a_sqlite_error_into_a_state_error(tmp_path):
    db = Database(str(tmp_path / "l.db"))
    real, db._db = db._db, _Refusing()
    try:
        with pytest.raises(StateError) as err:
            db.set_busy_timeout(5.0)
    finally:
        real.close()
    assert err.value.code == "NUMA_STATE_ERROR" and db.path in err.value.message
    assert "disk I/O error" in err.value.message


def test_a_stop_whose_busy_timeout_fails_says_so_and_exits_cleanly(tmp_path):
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 2 << 30), "credit", 1,
                             dom0_vcpus=1, dom0_memory=128 << 20)
    db = Database(str(tmp_path / "l.db"))
    rt = Runtime(sim, db, Settings())
    real, db._db = db._db, _Refusing()
    try:
        assert daemon.restore_at_stop(rt, daemon.STOP_DB_WAIT_S) is False  # said in the log; no traceback
    finally:
        real.close()
