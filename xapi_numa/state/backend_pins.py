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

Their age is told by the host's clock (dom0's monotonic clock: no NTP step or
``date -s`` moves it) with the boot it is of (``host_at``, ``boot``), where the
journal is given them: by the wall clock, a step forward of more than that between
a write and the next look, a second later, dropped the mask, and a step back kept
one of long ago counting.  A mask of another boot counts no more (its threads went
with it).  A row without ``host_at`` (written by an older version, or by a journal
given no host clock) is told by its wall-clock stamp ``at``, as before.
"""
import logging
from typing import Callable, FrozenSet, List, Optional, Tuple

from xapi_numa.core.backend_affinity import IRQ, THREAD, Owned
from xapi_numa.core.boots import age, of_another_boot
from xapi_numa.core.cpuset import format_ids
from xapi_numa.state.db import Database
from xapi_numa.state.rows import CPU_LIST, INTEGER, NUMBER, TEXT, LeftOut, Table, one_of, optional

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
    at    REAL NOT NULL,                      -- when (the database's clock: the wall clock)
    UNIQUE (uuid, cpus)
);
"""
# (table, column, declaration) added since: the host's clock when written (NULL: not known), its boot id
MOVED_FROM_ADDED = (("backend_moved_from", "host_at", "REAL"),
                    ("backend_moved_from", "boot", "TEXT NOT NULL DEFAULT ''"))
MOVED_FROM_KEPT_S = 600.0  # a restart takes seconds; a mask older than this counts no more


BACKEND_AFFINITY = Table("backend_affinity", ("kind", "ident"), {"kind": one_of(THREAD, IRQ), "ident": INTEGER,
                                                                  "uuid": TEXT, "name": TEXT, "starttime": INTEGER,
                                                                  "cpus": CPU_LIST})
BACKEND_MOVED_FROM = Table("backend_moved_from", ("id",), {"id": INTEGER, "uuid": TEXT, "cpus": CPU_LIST,
                                                           "at": NUMBER, "host_at": optional(NUMBER), "boot": TEXT})


class BackendJournal:
    def __init__(self, db: Database, logger: Optional[logging.Logger] = None,
                 clock: Optional[Callable[[], float]] = None, boot: str = "") -> None:
        """``clock``, ``boot``: the host's clock and boot id (:meth:`Hypervisor.clock`,
        :meth:`Hypervisor.boot_id`), which tell the moved-from masks' age (None: the wall clock)."""
        self.db, self.clock, self.boot = db, clock, boot
        self.left_out = LeftOut(logger)  # read in the daemon's every cycle, and by --hand-back
        self._moved_left_out = LeftOut(logger)  # (a damaged one is only not counted: nothing to hand back)
        with self.db.write() as conn:
            conn.execute(SCHEMA)
            conn.execute(MOVED_FROM_SCHEMA)
            for table, column, declaration in (("backend_affinity", "cpus", "TEXT NOT NULL DEFAULT ''"),
                                               ) + MOVED_FROM_ADDED:
                if column not in {row[1] for row in conn.execute("PRAGMA table_info({})".format(table))}:
                    conn.execute("ALTER TABLE {} ADD COLUMN {} {}".format(table, column, declaration))

    def record(self, entry: Owned, moved_from: Optional[FrozenSet[int]] = None) -> None:
        """``entry`` (a write about to be made); with ``moved_from``, the mask that write moves
        the thread off, for the next look (in the same transaction)."""
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO backend_affinity (kind, ident, uuid, name, starttime, cpus) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (entry.kind, entry.ident, entry.uuid, entry.name,
                                                       entry.starttime, format_ids(entry.cpus or ())))
            if moved_from:
                conn.execute("INSERT OR REPLACE INTO backend_moved_from (uuid, cpus, at, host_at, boot) "
                             "VALUES (?, ?, ?, ?, ?)", (entry.uuid, format_ids(moved_from), self.db.clock(),
                                                        None if self.clock is None else self.clock(), self.boot))

    def moved_from(self) -> Tuple[Tuple[Tuple[str, FrozenSet[int]], ...], int]:
        """The masks writes moved threads off since the last look that counted them, as (uuid,
        mask) pairs, and the last row's id (for :meth:`forget_moved_from`); those older than
        :data:`MOVED_FROM_KEPT_S` are left out."""
        with self.db.read() as conn:
            rows = BACKEND_MOVED_FROM.rows(self.db, conn, ("id", "uuid", "cpus", "at", "host_at", "boot"),
                                           "ORDER BY id", left_out=self._moved_left_out)
            last = conn.execute("SELECT MAX(id) FROM backend_moved_from").fetchone()[0]
        counts = self._counts()
        return tuple((uuid, cpus) for _, uuid, cpus, *when in rows if counts(*when) and cpus), last or 0

    def forget_moved_from(self, up_to: int) -> None:
        """Drop the masks a look has counted (rows up to id ``up_to``; those its own writes
        journalled are newer) and any too old to count."""
        with self.db.write() as conn:
            counts = self._counts()
            old = [row_id for row_id, *when in conn.execute("SELECT id, at, host_at, boot FROM backend_moved_from")
                   if not counts(*when)]  # (a row or two a look)
            conn.executemany("DELETE FROM backend_moved_from WHERE id = ?", [(i,) for i in old])
            conn.execute("DELETE FROM backend_moved_from WHERE id <= ?", (up_to,))

    def _counts(self) -> Callable[[float, Optional[float], str], bool]:
        """Does a mask written at ``at`` (the wall clock), ``host_at`` (the host's, None: not
        known) in boot ``boot`` still count now?"""
        wall = self.db.clock()
        host = None if self.clock is None else self.clock()

        def counts(at: float, host_at: Optional[float], boot: str) -> bool:
            # a mask of an earlier boot named threads gone with it; else its age as core.boots tells any row's
            return not of_another_boot(boot, self.boot) and age(at, host_at, boot, wall, host, self.boot) \
                <= MOVED_FROM_KEPT_S
        return counts

    def entries(self) -> List[Owned]:
        """What is ours to hand back; a damaged row is left out."""
        with self.db.read() as conn:
            rows = BACKEND_AFFINITY.rows(self.db, conn, ("uuid", "kind", "ident", "name", "starttime", "cpus"),
                                         "ORDER BY uuid, kind, ident", left_out=self.left_out.reading())
        return [Owned(*row[:5], cpus=row[5] or None) for row in rows]

    def drop(self, kind: str, ident: int) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM backend_affinity WHERE kind = ? AND ident = ?", (kind, ident))
