"""Review 14 (xapi-numad's lifecycle): the state database deleted while xapi-numad held
temporary pins.  The daemon's next transaction reopened the path, a new empty file, so
the pins' journal was gone: a stop restored nothing, said it had, and exited 0, with
every pinned vCPU left hard-pinned for good.  A process that finds its file deleted or
replaced now writes the old file's undo journals (still open: deleted, not gone) into
the new one; reservations are not carried (their room may have been promised anew)."""
import os

from xapi_numa.core.backend_affinity import IRQ, THREAD, Owned
from xapi_numa.core.homing import PinRecord
from xapi_numa.state.backend_pins import BackendJournal
from xapi_numa.state.db import Database
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.pins import PinJournal

G = 1 << 30
PIN = PinRecord("11111111-2222-4333-8444-555555555555", 3, 7, frozenset({0, 1}), frozenset(range(8)), 100.0)


def _delete_files(directory):
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))  # the ledger deleted under the running daemon


def test_the_undo_journals_outlive_a_deleted_ledger(tmp_path):
    path = str(tmp_path / "l.db")
    daemon_db = Database(path)
    pins, backends = PinJournal(daemon_db), BackendJournal(daemon_db)
    pins.record(PIN)
    backends.record(Owned(PIN.uuid, THREAD, 4242, "vif7.0-q0-guest", 99))
    backends.record(Owned(PIN.uuid, IRQ, 77, "vif7.0-q0-tx", 0))
    Ledger(path).reserve("vm-a", {0: 6 * G}, 60, lambda: {0: 7 * G})
    _delete_files(str(tmp_path))
    other = Ledger(path)  # another process makes the new file and reserves on it
    other.reserve("vm-b", {0: 4 * G}, 60, lambda: {0: 7 * G})
    # the daemon's next look: its journals are there, in the one file every process uses
    assert pins.entries() == [PIN]
    assert {(o.kind, o.ident) for o in backends.entries()} == {(THREAD, 4242), (IRQ, 77)}
    fresh = Database(path)
    assert PinJournal(fresh).entries() == [PIN]
    assert len(BackendJournal(fresh).entries()) == 2
    # and no reservation came back with them: the room was promised anew
    assert Ledger(path).outstanding() == {0: 4 * G}
