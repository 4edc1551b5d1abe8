"""The host's state database: one SQLite file, its schema (:mod:`.schema`), and its transactions.

Every xapi-numa process on a host (plugin calls, the CLI, xapi-numad, page
movers) shares ``/var/lib/xapi-numa/ledger.db`` (or ``$XAPI_NUMA_LEDGER``).
SQLite in WAL mode: readers never block, a writer holds the lock for one
short ``BEGIN IMMEDIATE`` transaction, and a process killed mid-transaction
leaves nothing half-applied.

What this module guarantees beyond SQLite:

* the files are private to root (0600) and the default directory is made
  0700; an explicit path in a missing directory is refused, not created;
* the first open retries while another process is switching the file to WAL
  (that switch does not wait on the busy timeout);
* every transaction checks that the path still names the file it has open:
  if someone deleted or replaced it, the connection is reopened, so two
  processes never go on with two different ledgers, and the undo journals of
  the file it had (:data:`CARRIED`) are written into the new one;
* every SQLite failure becomes a :class:`~xapi_numa.errors.StateError` that
  names the file and what to do;
* a file of a newer schema than this code's (a downgrade) is refused, unread and
  unchanged, with a StateError naming both versions and what the admin can do;
* a query or a dry run (:func:`open_to_read`) creates nothing: where there is no
  file yet, it reads an empty database in memory, not one it made on disk.
"""
import contextlib
import errno
import os
import sqlite3
import time
from typing import Callable, Iterator, Optional, Tuple

from xapi_numa.errors import StateError
from xapi_numa.state.schema import SCHEMA_VERSION, create_or_upgrade

DEFAULT_PATH = "/var/lib/xapi-numa/ledger.db"
OPEN_ATTEMPTS = 50
OPEN_RETRY_S = 0.05
BUSY_TIMEOUT_S = 60.0  # how long a transaction waits for another process's write lock
AFRESH = "stop xapi-numad, then move the database and its -wal and -shm files aside to start afresh"
# What a process that finds its file deleted or replaced writes into the new one: the undo
# journals of what it did to the world (temporary pins, backend threads' and IRQs' affinity,
# soft affinity noted before a home move), the masks its backend writes moved threads off
# (the next look counts a thread still on one as its own, not an admin's) and the home-move
# log (the hold-down).  Not the reservations or memory moves: the room they count may have
# been promised anew meanwhile.
CARRIED = ("temp_pin", "backend_affinity", "backend_moved_from", "home_move_intent", "home_move")


def default_path() -> str:
    return os.environ.get("XAPI_NUMA_LEDGER") or DEFAULT_PATH  # set but empty (an unset $VAR) is not given


def _identity(path: str) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _why_no_directory(directory: str) -> str:
    """Why the database's ``directory`` cannot hold it, and what to do."""
    at = directory
    while not os.path.lexists(at) and os.path.dirname(at) != at:  # the nearest part of it that is there
        at = os.path.dirname(at)
    if os.path.lexists(at) and not os.path.isdir(at):  # (a file there: "create it" would not help)
        return "{} is not a directory (set $XAPI_NUMA_LEDGER / --ledger to a path in one)".format(at)
    return "directory {} does not exist (create it, or set $XAPI_NUMA_LEDGER / --ledger to another path)".format(
        directory)


def open_to_read(path: Optional[str] = None, clock: Callable[[], float] = time.time) -> "Database":
    """The state database for a query or a dry run, which must create nothing.  Where the file
    is there: opened as every process opens it (an older schema brought up to date, as
    xapi-numad's own first open would).  Where it is not (xapi-numad never ran, nothing was
    placed or moved here): an empty database in memory standing for it (``in_memory``), so the
    answer is that of an empty one and neither the file nor its directory is made.  A path
    given in a directory that is not there is refused, naming it, as by every open."""
    full = os.path.abspath(path or default_path())
    absent = not os.path.lexists(full) and (full == os.path.abspath(DEFAULT_PATH)
                                            or os.path.isdir(os.path.dirname(full)))
    return Database(full, clock, in_memory=absent)


class Database:
    """One connection to the host's state database (not shared between threads); with
    ``in_memory``, an empty one in memory standing for the file at ``path``, which is not
    there (:func:`open_to_read`): what is written to it goes nowhere."""

    def __init__(self, path: Optional[str] = None, clock: Callable[[], float] = time.time,
                 in_memory: bool = False) -> None:
        self.path = os.path.abspath(path or default_path())
        self.clock = clock
        self.in_memory = in_memory
        self._db: Optional[sqlite3.Connection] = None
        self._identity: Optional[Tuple[int, int]] = None
        # set while the file is of a newer schema than this code's (refused at each open):
        # xapi-numad stops on it rather than fail every cycle
        self.refused: Optional[StateError] = None
        # the undo journals' rows of the file this connection had, not yet written into the one the
        # path names now (its reopen failed, or was refused): see _journal_rows
        self._uncarried: list = []
        self.busy_timeout = BUSY_TIMEOUT_S
        self._open()

    # --- opening ---------------------------------------------------------------------------
    def _prepare_directory(self) -> None:
        directory = os.path.dirname(self.path)
        if os.path.isdir(directory):
            return
        if self.path != os.path.abspath(DEFAULT_PATH):
            raise StateError("cannot open the state database {}: {}".format(self.path, _why_no_directory(directory)))
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as err:
            raise StateError("cannot create {} for the state database: {}".format(directory, err.strerror)) from None

    def _create_private(self) -> None:
        """Create the file 0600 before SQLite does (its journals take the file's mode).
        Never open an existing one: closing any descriptor of a database drops every POSIX
        lock this process holds on it (SQLite's own connections' too), and another process
        then takes itself for the last user and deletes the live WAL."""
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            return
        except FileExistsError:
            if not os.path.isfile(self.path):  # SQLite would take a device (its journal beside it, e.g. in /dev)
                raise StateError("cannot open the state database {}: it is {}, not a file (set $XAPI_NUMA_LEDGER / "
                                 "--ledger to a file's path)".format(self.path, "a directory" if os.path.isdir(
                                     self.path) else "a device or other special file")) from None
            err = None if os.access(self.path, os.R_OK | os.W_OK) else PermissionError(errno.EACCES, "Permission denied")
        except OSError as failed:
            err = failed
        if err is not None:
            raise StateError("cannot open the state database {}: {}".format(self.path, err.strerror)) from None

    def _open(self) -> None:
        if self.in_memory:
            self._open_in_memory()
            return
        self._prepare_directory()
        self._create_private()
        last: Optional[Exception] = None
        for _ in range(OPEN_ATTEMPTS):
            try:
                db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            except sqlite3.Error as err:
                raise self._failure("open", err) from None
            try:
                self._setup(db)
            except StateError:  # (a file of a newer schema: said, and left as it is)
                db.close()
                raise
            except sqlite3.OperationalError as err:
                db.close()
                last = err
                if "locked" in str(err) or "busy" in str(err):
                    time.sleep(OPEN_RETRY_S)  # another process is switching it to WAL: try again
                    continue
                raise self._failure("set up", err) from None
            except sqlite3.Error as err:
                db.close()
                raise self._failure("set up", err) from None
            self._db, self._identity = db, _identity(self.path)
            return
        raise self._failure("set up", last or sqlite3.OperationalError("busy"))

    def _open_in_memory(self) -> None:
        db = sqlite3.connect(":memory:", isolation_level=None)
        try:
            self._setup(db)  # (the same schema: every query reads it as an empty file)
        except sqlite3.Error as err:
            db.close()
            raise self._failure("set up", err) from None
        self._db = db

    def _setup(self, db: sqlite3.Connection) -> None:
        """Bring the file to :data:`SCHEMA_VERSION`; one of a newer schema is refused before
        anything is written to it (not even its journal mode)."""
        self._check_schema(db.execute("PRAGMA user_version").fetchone()[0])
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            # read again under the write lock: another process may have set it up meanwhile,
            # perhaps a newer version, whose number written over would hide its schema from it
            found = db.execute("PRAGMA user_version").fetchone()[0]
            self._check_schema(found)
            if found < SCHEMA_VERSION:
                create_or_upgrade(db)
                db.execute("PRAGMA user_version={}".format(SCHEMA_VERSION))
            db.execute("COMMIT")
        except BaseException:
            _end(db, "ROLLBACK")  # (SQLite may have ended it: the error to report is the first)
            raise

    def _check_schema(self, found: int) -> None:
        """Refuse a file of a schema newer than this code's (:attr:`refused` says so after)."""
        if found <= SCHEMA_VERSION:
            self.refused = None
            return
        self.refused = StateError(
            "state database {}: its schema is version {}, newer than version {} that this xapi-numa knows "
            "(a newer xapi-numa wrote it: was the package downgraded?); nothing in it was read or changed. "
            "Upgrade xapi-numa again, or {} (what it holds is then lost: the reservations of VM starts under "
            "way, the journals that undo xapi-numad's temporary pins and dom0 backend affinity, which stay as "
            "they are, the home-move log and the memory-move records)".format(self.path, found, SCHEMA_VERSION,
                                                                               AFRESH))
        raise self.refused

    def _failure(self, what: str, err: Exception) -> StateError:
        text = str(err)
        damaged = "malformed" in text or "not a database" in text  # ("database disk image is malformed")
        hint = ("the disk holding it may be full or read-only" if not damaged and ("disk" in text or "readonly" in text
                                                                                    or "full" in text)
                else "another process holds it locked; try again" if "locked" in text
                else "if it is damaged: " + AFRESH)
        return StateError("state database {}: cannot {}: {} ({})".format(self.path, what, err, hint))

    def set_busy_timeout(self, seconds: float) -> None:
        """Wait at most this long for another process's write lock from now on (a stopping
        daemon has little time left: systemd's stop timeout)."""
        self.busy_timeout = seconds
        if self._db is None:
            return
        try:
            self._db.execute("PRAGMA busy_timeout = {:d}".format(int(seconds * 1000)))
        except sqlite3.Error as err:
            raise self._failure("set how long it waits for another process's lock", err) from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- transactions ----------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        """The connection, reopened if the path no longer names the file we have open; the
        undo journals of the file we had go with us (:data:`CARRIED`), kept until they are
        written into the new file (a reopen that fails or is refused keeps them for the next)."""
        if self._db is not None and not self.in_memory and _identity(self.path) != self._identity:
            self._uncarried += _journal_rows(self._db)  # (the old file is still open: deleted, not gone)
            self.close()
        if self._db is None:
            self._open()
        if self._uncarried:
            self._carry_over(self._uncarried)
            self._uncarried = []
        return self._db

    def keep_in_memory(self) -> None:
        """Go on with an empty database in memory holding the undo journals' rows of the file
        this connection had before its reopen was refused (:attr:`refused`, which stays set):
        what xapi-numad, stopping on that refusal, restores its temporary pins from (the new
        file's journal is not readable by this code).  Nothing written from now on reaches a file."""
        refused, kept = self.refused, self._uncarried
        self.close()
        self.in_memory, self._uncarried = True, []
        self._open_in_memory()
        self.refused = refused
        self._carry_over(kept)

    def _carry_over(self, kept) -> None:
        """Write the old file's journal rows into the new one (the rows another process
        wrote there meanwhile win): a pin or backend affinity we made is still in the world,
        and nothing would undo it once its row were gone."""
        if not kept:
            return
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            for table, create, columns, rows in kept:
                db.execute(create if "IF NOT EXISTS" in create else create.replace("TABLE ", "TABLE IF NOT EXISTS ", 1))
                have = {row[1] for row in db.execute("PRAGMA table_info({})".format(table))}
                picks = [i for i, c in enumerate(columns) if c in have]
                db.executemany("INSERT OR IGNORE INTO {} ({}) VALUES ({})".format(table, ", ".join(
                    columns[i] for i in picks), ", ".join("?" * len(picks))), [tuple(r[i] for i in picks) for r in rows])
            db.execute("COMMIT")
        except sqlite3.Error as err:
            _end(db, "ROLLBACK")
            raise self._failure("carry the undo journals into the new file", err) from None

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One short IMMEDIATE transaction (takes the write lock up front)."""
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise self._failure("start a transaction", err) from None
        try:
            yield db
        except sqlite3.Error as err:
            _end(db, "ROLLBACK")
            raise self._failure("write", err) from None
        except BaseException:
            _end(db, "ROLLBACK")
            raise
        try:
            db.execute("COMMIT")
        except sqlite3.Error as err:
            _end(db, "ROLLBACK")
            raise self._failure("commit", err) from None

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read (one snapshot of the file).  Inside this connection's own
        transaction (a check made in a write, before it writes), it reads in that one."""
        if self._db is not None and self._db.in_transaction:
            yield self._db
            return
        db = self._connection()
        try:
            db.execute("BEGIN")
        except sqlite3.Error as err:
            raise self._failure("read", err) from None
        try:
            yield db
        except sqlite3.Error as err:
            _end(db, "COMMIT")
            raise self._failure("read", err) from None
        except BaseException:
            _end(db, "COMMIT")
            raise
        _end(db, "COMMIT")


def _journal_rows(db: sqlite3.Connection) -> list:
    """The undo journals' rows of an open file (its path deleted or replaced): per table of
    :data:`CARRIED` that it has, (name, CREATE statement, columns, rows).  Best effort: a
    table that cannot be read is left behind, as the whole file was."""
    out = []
    for table in CARRIED:
        try:
            found = db.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone()
            if found is None:
                continue
            columns = [row[1] for row in db.execute("PRAGMA table_info({})".format(table))]
            rows = db.execute("SELECT {} FROM {}".format(", ".join(columns), table)).fetchall()
        except sqlite3.Error:
            continue
        if rows:
            out.append((table, found[0], columns, rows))
    return out


def _end(db: sqlite3.Connection, how: str) -> None:
    """End the transaction if SQLite has not already (it rolls back by itself on a full disk,
    an I/O error or no memory): the error to report is the one that ended it, never this."""
    if not db.in_transaction:
        return
    try:
        db.execute(how)
    except sqlite3.Error:
        pass
