"""The backend journal: dom0 threads and IRQs whose affinity xapi-numad changed.

An entry is written before the change is made, so that whatever happens
next (the daemon killed, the guest opting out, the feature switched off) the
daemon knows what is its own to hand back, and touches nothing else.  A
thread is named by tid, comm and start time, an IRQ by number and action
name: a reused tid or IRQ number never matches an entry.

The journal also keeps, for one look, the masks our writes moved threads off
(``backend_moved_from``): a thread born to one between the look's read of dom0
and our write to it has its creator's mask as it was, one of ours (see
:func:`xapi_numa.core.backend_affinity._ours_to_take`), which the next look
counts as ours.  Written with the write's entry (before the write), so that
xapi-numad restarted before its next look (an upgrade, a crash) judges such a
thread as it would have: kept in its memory only, the new process took the
mask for an admin's taskset and left the thread on the guest's old home for
good.  The look that counted them drops them once its own writes are made (its
own moves are journalled anew meanwhile); one older than :data:`MOVED_FROM_KEPT_S`
(xapi-numad stopped for long: an admin may have set that mask since) counts no
more.  A write that fails leaves its row: the mask was one the plan counted as
ours anyway.
"""
import logging
from typing import FrozenSet, List, Optional, Tuple

from xapi_numa.core.backend_affinity import IRQ, THREAD, Owned
from xapi_numa.core.cpuset import format_ids
from xapi_numa.state.db import Database
from xapi_numa.state.rows import CPU_LIST, INTEGER, NUMBER, TEXT, LeftOut, Table, one_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS backend_affinity (
    kind      TEXT NOT NULL,
    ident     INTEGER NOT NULL,
    uuid      TEXT NOT NULL,
    name      TEXT NOT NULL,
    starttime INTEGER NOT NULL DEFAULT 0,
    cpus      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (kind, ident)
);
"""
MOVED_FROM_SCHEMA = """
CREATE TABLE IF NOT EXISTS backend_moved_from (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,  -- in the order written: a look drops those it read
    uuid  TEXT NOT NULL,
    cpus  TEXT NOT NULL,                      -- the mask a write of ours moved a thread of the guest off
    at    REAL NOT NULL,                      -- when (the database's clock)
    UNIQUE (uuid, cpus)
);
"""
MOVED_FROM_KEPT_S = 600.0  # a restart takes seconds; a mask older than this counts no more


BACKEND_AFFINITY = Table("backend_affinity", ("kind", "ident"), {"kind": one_of(THREAD, IRQ), "ident": INTEGER,
                                                                  "uuid": TEXT, "name": TEXT, "starttime": INTEGER,
                                                                  "cpus": CPU_LIST})
BACKEND_MOVED_FROM = Table("backend_moved_from", ("id",), {"id": INTEGER, "uuid": TEXT, "cpus": CPU_LIST,
                                                           "at": NUMBER})


class BackendJournal:
    def __init__(self, db: Database, logger: Optional[logging.Logger] = None) -> None:
        self.db = db
        self.left_out = LeftOut(logger)  # read in the daemon's every cycle, and by --hand-back
        self._moved_left_out = LeftOut(logger)  # (a damaged one is only not counted: nothing to hand back)
        with self.db.write() as conn:
            conn.execute(SCHEMA)
            conn.execute(MOVED_FROM_SCHEMA)
            if "cpus" not in {row[1] for row in conn.execute("PRAGMA table_info(backend_affinity)")}:
                conn.execute("ALTER TABLE backend_affinity ADD COLUMN cpus TEXT NOT NULL DEFAULT ''")

    def record(self, entry: Owned, moved_from: Optional[FrozenSet[int]] = None) -> None:
        """``entry`` (a write about to be made); with ``moved_from``, the mask that write moves
        the thread off, for the next look (in the same transaction)."""
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO backend_affinity (kind, ident, uuid, name, starttime, cpus) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (entry.kind, entry.ident, entry.uuid, entry.name,
                                                       entry.starttime, format_ids(entry.cpus or ())))
            if moved_from:
                conn.execute("INSERT OR REPLACE INTO backend_moved_from (uuid, cpus, at) VALUES (?, ?, ?)",
                             (entry.uuid, format_ids(moved_from), self.db.clock()))

    def moved_from(self) -> Tuple[Tuple[Tuple[str, FrozenSet[int]], ...], int]:
        """The masks writes moved threads off since the last look that counted them, as (uuid,
        mask) pairs, and the last row's id (for :meth:`forget_moved_from`); those older than
        :data:`MOVED_FROM_KEPT_S` are left out."""
        with self.db.read() as conn:
            rows = BACKEND_MOVED_FROM.rows(self.db, conn, ("id", "uuid", "cpus", "at"), "ORDER BY id",
                                           left_out=self._moved_left_out)
            last = conn.execute("SELECT MAX(id) FROM backend_moved_from").fetchone()[0]
        since = self.db.clock() - MOVED_FROM_KEPT_S
        return tuple((uuid, cpus) for _, uuid, cpus, at in rows if at >= since and cpus), last or 0

    def forget_moved_from(self, up_to: int) -> None:
        """Drop the masks a look has counted (rows up to id ``up_to``; those its own writes
        journalled are newer) and any too old to count."""
        with self.db.write() as conn:
            conn.execute("DELETE FROM backend_moved_from WHERE id <= ? OR at < ?",
                         (up_to, self.db.clock() - MOVED_FROM_KEPT_S))

    def entries(self) -> List[Owned]:
        """What is ours to hand back; a damaged row is left out."""
        with self.db.read() as conn:
            rows = BACKEND_AFFINITY.rows(self.db, conn, ("uuid", "kind", "ident", "name", "starttime", "cpus"),
                                         "ORDER BY uuid, kind, ident", left_out=self.left_out.reading())
        return [Owned(*row[:5], cpus=row[5] or None) for row in rows]

    def drop(self, kind: str, ident: int) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM backend_affinity WHERE kind = ? AND ident = ?", (kind, ident))
