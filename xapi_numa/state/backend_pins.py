"""The backend journal: dom0 threads and IRQs whose affinity xapi-numad changed.

An entry is written before the change is made, so that whatever happens
next (the daemon killed, the guest opting out, the feature switched off) the
daemon knows what is its own to hand back, and touches nothing else.  A
thread is named by tid, comm and start time, an IRQ by number and action
name: a reused tid or IRQ number never matches an entry.
"""
from typing import List

from xapi_numa.core.backend_affinity import Owned
from xapi_numa.state.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS backend_affinity (
    kind      TEXT NOT NULL,
    ident     INTEGER NOT NULL,
    uuid      TEXT NOT NULL,
    name      TEXT NOT NULL,
    starttime INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, ident)
);
"""


class BackendJournal:
    def __init__(self, db: Database) -> None:
        self.db = db
        with self.db.write() as conn:
            conn.execute(SCHEMA)

    def record(self, entry: Owned) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO backend_affinity (kind, ident, uuid, name, starttime) "
                         "VALUES (?, ?, ?, ?, ?)", (entry.kind, entry.ident, entry.uuid, entry.name,
                                                    entry.starttime))

    def entries(self) -> List[Owned]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT uuid, kind, ident, name, starttime FROM backend_affinity "
                                "ORDER BY uuid, kind, ident").fetchall()
        return [Owned(uuid, kind, int(ident), name, int(start)) for uuid, kind, ident, name, start in rows]

    def drop(self, kind: str, ident: int) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM backend_affinity WHERE kind = ? AND ident = ?", (kind, ident))
