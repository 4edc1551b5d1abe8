"""The host's state database: one SQLite file, its schema, and its transactions.

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
  names the file and what to do.
"""
import contextlib
import errno
import os
import sqlite3
import time
from typing import Callable, Iterator, Optional, Tuple

from xapi_numa.errors import StateError

DEFAULT_PATH = "/var/lib/xapi-numa/ledger.db"
SCHEMA_VERSION = 9
OPEN_ATTEMPTS = 50
OPEN_RETRY_S = 0.05
BUSY_TIMEOUT_S = 60.0  # how long a transaction waits for another process's write lock
AFRESH = "stop xapi-numad, then move the database and its -wal and -shm files aside to start afresh"
# What a process that finds its file deleted or replaced writes into the new one: the undo
# journals of what it did to the world (temporary pins, backend threads' and IRQs' affinity,
# soft affinity noted before a home move) and the home-move log (the hold-down).  Not the
# reservations or memory moves: the room they count may have been promised anew meanwhile.
CARRIED = ("temp_pin", "backend_affinity", "home_move_intent", "home_move")

SCHEMA = """
CREATE TABLE IF NOT EXISTS reservation (
    vm       TEXT PRIMARY KEY,
    created  REAL NOT NULL,
    expires  REAL NOT NULL,
    claimed  INTEGER NOT NULL DEFAULT 0,
    owner    TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS reservation_node (
    vm       TEXT NOT NULL REFERENCES reservation(vm) ON DELETE CASCADE,
    node     INTEGER NOT NULL,
    bytes    INTEGER NOT NULL CHECK (bytes >= 0),
    initial  INTEGER NOT NULL,
    PRIMARY KEY (vm, node)
);
CREATE TABLE IF NOT EXISTS reservation_total (
    node     INTEGER PRIMARY KEY,
    bytes    INTEGER NOT NULL   -- the sum of reservation_node.bytes on the node (expired leases too)
);
CREATE INDEX IF NOT EXISTS reservation_expiry ON reservation (expires);
CREATE TABLE IF NOT EXISTS temp_pin (
    uuid          TEXT NOT NULL,
    vcpu          INTEGER NOT NULL,
    domid         INTEGER NOT NULL,
    original_hard TEXT NOT NULL,
    pinned_at     REAL NOT NULL,
    pinned_to     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (uuid, vcpu)
);
CREATE TABLE IF NOT EXISTS home_move (
    uuid      TEXT NOT NULL,
    moved_at  REAL NOT NULL,
    from_node INTEGER NOT NULL,
    to_node   INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    reason    TEXT NOT NULL DEFAULT '',
    followed_domid INTEGER NOT NULL DEFAULT -1,
    followed_pages INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS home_move_intent (
    uuid      TEXT PRIMARY KEY,
    domid     INTEGER NOT NULL,
    from_node INTEGER NOT NULL,
    to_node   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS home_tally (
    domid     INTEGER NOT NULL,
    uuid      TEXT NOT NULL,
    node      INTEGER NOT NULL,   -- -1: the domain has no vCPU homed on one node alone
    vcpus     INTEGER NOT NULL,
    PRIMARY KEY (domid, node)
);
CREATE TABLE IF NOT EXISTS home_tally_time (
    id        INTEGER PRIMARY KEY CHECK (id = 0),
    at        REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS memory_move (
    uuid      TEXT PRIMARY KEY,
    domid     INTEGER NOT NULL,
    pid       INTEGER NOT NULL,
    state     TEXT NOT NULL,
    target    INTEGER NOT NULL,
    report    TEXT NOT NULL DEFAULT '{}',
    started   REAL NOT NULL,
    updated   REAL NOT NULL
);
"""

# The reserved bytes per node, kept by SQLite itself as reservation_node changes,
# whichever code (or version of it) changes it: a start reads 16 rows, not a row
# per reservation and node (a sum over a boot storm's ledger took most of a
# millisecond).  A deleted reservation takes its rows with it here too, so that
# the sum never counts an orphan, even on a connection without foreign keys.
TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS reservation_total_insert AFTER INSERT ON reservation_node BEGIN
        INSERT OR IGNORE INTO reservation_total (node, bytes) VALUES (NEW.node, 0);
        UPDATE reservation_total SET bytes = bytes + NEW.bytes WHERE node = NEW.node;
    END""",
    """CREATE TRIGGER IF NOT EXISTS reservation_total_delete AFTER DELETE ON reservation_node BEGIN
        UPDATE reservation_total SET bytes = bytes - OLD.bytes WHERE node = OLD.node;
    END""",
    """CREATE TRIGGER IF NOT EXISTS reservation_total_update AFTER UPDATE OF node, bytes ON reservation_node BEGIN
        UPDATE reservation_total SET bytes = bytes - OLD.bytes WHERE node = OLD.node;
        INSERT OR IGNORE INTO reservation_total (node, bytes) VALUES (NEW.node, 0);
        UPDATE reservation_total SET bytes = bytes + NEW.bytes WHERE node = NEW.node;
    END""",
    """CREATE TRIGGER IF NOT EXISTS reservation_rows_delete AFTER DELETE ON reservation BEGIN
        DELETE FROM reservation_node WHERE vm = OLD.vm;
    END""",
)

# Columns added since the first schema: (table, column, declaration).
ADDED_COLUMNS = (("reservation", "owner", "TEXT NOT NULL DEFAULT ''"),
                 ("temp_pin", "pinned_to", "TEXT NOT NULL DEFAULT ''"),
                 ("home_move_intent", "vnode", "INTEGER NOT NULL DEFAULT -1"),
                 ("home_move_intent", "soft_before", "TEXT NOT NULL DEFAULT '{}'"),  # vCPU -> CPU list
                 ("home_move", "followed_domid", "INTEGER NOT NULL DEFAULT -1"),
                 ("home_move", "followed_pages", "INTEGER NOT NULL DEFAULT 0"),
                 # the domains the sums are over, as schema 8 listed them ("-" since, which matches no list)
                 ("home_tally_time", "domids", "TEXT NOT NULL DEFAULT ''"),
                 ("home_tally_time", "uuids", "TEXT NOT NULL DEFAULT ''"),
                 ("home_tally_time", "totals", "TEXT NOT NULL DEFAULT '[]'"),  # [[node, vCPUs homed there]]
                 ("home_tally_time", "summed", "TEXT NOT NULL DEFAULT ''"))  # their LiveDomains.fingerprint


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


class Database:
    """One connection to the host's state database (not shared between threads)."""

    def __init__(self, path: Optional[str] = None, clock: Callable[[], float] = time.time) -> None:
        self.path = os.path.abspath(path or default_path())
        self.clock = clock
        self._db: Optional[sqlite3.Connection] = None
        self._identity: Optional[Tuple[int, int]] = None
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

    @staticmethod
    def _setup(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            for table, column, declaration in ADDED_COLUMNS:
                columns = {row[1] for row in db.execute("PRAGMA table_info({})".format(table))}
                if column not in columns:
                    db.execute("ALTER TABLE {} ADD COLUMN {} {}".format(table, column, declaration))
            if db.execute("SELECT 1 FROM sqlite_master WHERE type='trigger' AND name='reservation_total_insert'"
                          ).fetchone() is None:  # (a database older than the totals: summed once, here)
                db.execute("DELETE FROM reservation_node WHERE vm NOT IN (SELECT vm FROM reservation)")
                db.execute("DELETE FROM reservation_total")
                db.execute("INSERT INTO reservation_total (node, bytes) "
                           "SELECT node, SUM(bytes) FROM reservation_node GROUP BY node")
            for trigger in TRIGGERS:
                db.execute(trigger)
            # moves journalled by a version that called them "migrations"
            if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='migration'").fetchone():
                db.execute("INSERT OR IGNORE INTO memory_move SELECT uuid, domid, pid, state, target, report, "
                           "started, updated FROM migration")
                db.execute("DROP TABLE migration")
            db.execute("PRAGMA user_version={}".format(SCHEMA_VERSION))
            db.execute("COMMIT")
        except BaseException:
            _end(db, "ROLLBACK")  # (SQLite may have ended it: the error to report is the first)
            raise

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
        if self._db is not None:
            self._db.execute("PRAGMA busy_timeout = {:d}".format(int(seconds * 1000)))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- transactions ----------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        """The connection, reopened if the path no longer names the file we have open; the
        undo journals of the file we had go with us (:data:`CARRIED`)."""
        if self._db is None:
            self._open()
        elif _identity(self.path) != self._identity:
            kept = _journal_rows(self._db)  # (the old file is still open: deleted, not gone)
            self.close()
            self._open()
            self._carry_over(kept)
        return self._db

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
