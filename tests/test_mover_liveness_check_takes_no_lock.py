"""Asking whether a page mover lives never gets in the way of a mover starting.

:meth:`MoveJournal.mover_alive` (what ``memory-moves``, ``memory_move_status`` and a dry
run's recovery note ask) took the VM's mover lock for an instant to see whether anyone held
it: a mover claiming the VM at that instant was refused ("its memory is already being
moved") by a query.  The check now tests the lock without taking it.

The race is played by interleaving, not by timing: the moment the check makes its first
lock call, the mover claims the VM, before the check goes on.
"""
import types

import pytest

from xapi_numa.errors import NotMovable
from xapi_numa.state import locks
from xapi_numa.state.db import Database
from xapi_numa.state.moves import MoveJournal

UUID = "6f1c2a4e-0d3b-4c5a-9e8f-112233445566"
VM = types.SimpleNamespace(uuid=UUID, name="web", domid=7)


class Interleave:
    """``locks.fcntl`` as seen by the lock module: each call goes through, and while armed,
    the first one (the check's) runs ``then`` right after it, as if scheduled there."""

    def __init__(self, real) -> None:
        self.real, self.then, self.ran = real, None, []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def _after(self, result):
        then, self.then = self.then, None
        if then is not None:
            self.ran.append(then())
        return result

    def flock(self, *args):
        return self._after(self.real.flock(*args))

    def fcntl(self, *args):
        return self._after(self.real.fcntl(*args))


@pytest.fixture
def journal(tmp_path, monkeypatch):
    gate = Interleave(locks.fcntl)
    monkeypatch.setattr(locks, "fcntl", gate)
    journal = MoveJournal(Database(str(tmp_path / "state.db")))
    earlier = journal.lock_for(UUID)  # the lock file exists (a mover ran before) and is free again
    earlier.acquire()
    earlier.release()
    return journal, gate


def test_a_mover_claiming_during_the_check_gets_its_lock(journal):
    journal, gate = journal

    def claim():
        try:
            return journal.take_lock(VM)
        except NotMovable as err:
            return err
    gate.then = claim
    journal.mover_alive(UUID)
    assert gate.then is None, "the check made no lock call: the interleaving did not happen"
    claimed = gate.ran[0]
    assert not isinstance(claimed, NotMovable), "a liveness check refused a mover: {}".format(claimed.message)
    try:
        # the mover's lock is a real one: seen by the check, and a second mover is refused
        assert journal.mover_alive(UUID)
        with pytest.raises(NotMovable):
            journal.take_lock(VM)
    finally:
        claimed.release()
    assert not journal.mover_alive(UUID)


def test_the_check_sees_a_mover_holding_the_lock_through_an_inherited_descriptor(journal, tmp_path):
    """A background mover holds the lock its parent took (the same open file): still seen."""
    journal, _ = journal
    import os
    lock = journal.take_lock(VM)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if journal.lock_for(UUID).held_through(lock.fd) is None else 1)
    assert os.waitpid(pid, 0)[1] == 0
    child_holds = os.dup(lock.fd)  # what the child keeps once its parent lets go
    lock.release()
    try:
        assert journal.mover_alive(UUID)
    finally:
        os.close(child_holds)
    assert not journal.mover_alive(UUID)


def test_the_check_creates_no_lock_file(tmp_path):
    journal = MoveJournal(Database(str(tmp_path / "state.db")))
    path = journal.lock_for(UUID).path
    assert not journal.mover_alive(UUID)
    import os
    assert not os.path.exists(path)
