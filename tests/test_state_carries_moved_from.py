"""The masks xapi-numad's backend writes moved threads off (``backend_moved_from``) were not
carried into a replaced or deleted state database, as the undo journals are: the next look
took a thread still on such a mask for one an admin pinned, and left it on the guest's old
home for good.  They go with the journals now, with their ids (a look forgets those up to
the last id it read) and their times (one too old counts no more)."""
import os

from xapi_numa.core.backend_affinity import THREAD, Owned
from xapi_numa.state.backend_pins import MOVED_FROM_KEPT_S, BackendJournal
from xapi_numa.state.db import Database

UUID = "11111111-2222-4333-8444-555555555555"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _delete_files(directory: str) -> None:
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))


def test_the_moved_from_masks_outlive_a_deleted_database(tmp_path):
    path = str(tmp_path / "l.db")
    clock = Clock()
    journal = BackendJournal(Database(path, clock))
    journal.record(Owned(UUID, THREAD, 4242, "vif7.0-q0-guest", 99, cpus=frozenset({4, 5})),
                   moved_from=frozenset({0, 1}))
    journal.record(Owned(UUID, THREAD, 4243, "vif7.0-q1-guest", 98, cpus=frozenset({4, 5})),
                   moved_from=frozenset({2, 3}))
    masks, last = journal.moved_from()
    assert masks == ((UUID, frozenset({0, 1})), (UUID, frozenset({2, 3}))) and last == 2
    _delete_files(str(tmp_path))
    Database(path).close()  # another process makes the new file
    # the daemon's next look still counts them, in the one file every process uses
    assert journal.moved_from() == (masks, last)
    assert BackendJournal(Database(path, clock)).moved_from() == (masks, last)
    # a later write's mask comes after them, and forgetting what the look read keeps it
    journal.record(Owned(UUID, THREAD, 4244, "vif7.0-q2-guest", 97), moved_from=frozenset({6}))
    journal.forget_moved_from(last)
    assert journal.moved_from() == (((UUID, frozenset({6})),), 3)
    # their time came with them: once too old, they count no more
    clock.now += MOVED_FROM_KEPT_S + 1
    assert journal.moved_from()[0] == ()
