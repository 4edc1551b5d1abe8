"""The backend journal: dom0 threads and IRQs whose affinity xapi-numad changed.

An entry is written before the change is made, so that whatever happens
next (the daemon killed, the guest opting out, the feature switched off) the
daemon knows what is its own to hand back, and touches nothing else.  A
thread is named by tid, comm and start time, an IRQ by number and action
name: a reused tid or IRQ number never matches an entry.
"""
import logging
from typing import List, Optional

from xapi_numa.core.backend_affinity import IRQ, THREAD, Owned
from xapi_numa.core.cpuset import format_ids
from xapi_numa.state.db import Database
from xapi_numa.state.rows import CPU_LIST, INTEGER, TEXT, LeftOut, Table, one_of

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


BACKEND_AFFINITY = Table("backend_affinity", ("kind", "ident"), {"kind": one_of(THREAD, IRQ), "ident": INTEGER,
                                                                  "uuid": TEXT, "name": TEXT, "starttime": INTEGER,
                                                                  "cpus": CPU_LIST})


class BackendJournal:
    def __init__(self, db: Database, logger: Optional[logging.Logger] = None) -> None:
        self.db = db
        self.left_out = LeftOut(logger)  # read in the daemon's every cycle, and by --hand-back
        with self.db.write() as conn:
            conn.execute(SCHEMA)
            if "cpus" not in {row[1] for row in conn.execute("PRAGMA table_info(backend_affinity)")}:
                conn.execute("ALTER TABLE backend_affinity ADD COLUMN cpus TEXT NOT NULL DEFAULT ''")

    def record(self, entry: Owned) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO backend_affinity (kind, ident, uuid, name, starttime, cpus) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (entry.kind, entry.ident, entry.uuid, entry.name,
                                                       entry.starttime, format_ids(entry.cpus or ())))

    def entries(self) -> List[Owned]:
        """What is ours to hand back; a damaged row is left out."""
        with self.db.read() as conn:
            rows = BACKEND_AFFINITY.rows(self.db, conn, ("uuid", "kind", "ident", "name", "starttime", "cpus"),
                                         "ORDER BY uuid, kind, ident", left_out=self.left_out.reading())
        return [Owned(*row[:5], cpus=row[5] or None) for row in rows]

    def drop(self, kind: str, ident: int) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM backend_affinity WHERE kind = ? AND ident = ?", (kind, ident))
