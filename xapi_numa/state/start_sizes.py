"""The memory sizes of the VMs placed on this host that fit a node (table ``start_size``):
counted by a place that reserves (:meth:`xapi_numa.state.ledger.Ledger.reserve`, in its
transaction), read by every place, dry runs too (:mod:`xapi_numa.ops.reserve`).  One row
per size bucket (:mod:`xapi_numa.core.start_sizes`): a few hundred rows at most."""
import sqlite3

from xapi_numa.core.start_sizes import StartSizes, bucket, valid
from xapi_numa.state.db import Database


def record(conn: sqlite3.Connection, memory: int) -> None:
    """Count one start of ``memory`` bytes (inside the caller's write transaction)."""
    size = bucket(memory)
    conn.execute("INSERT OR IGNORE INTO start_size (size, count) VALUES (?, 0)", (size,))
    conn.execute("UPDATE start_size SET count = count + 1 WHERE size = ?", (size,))


def read(db: Database) -> StartSizes:
    """The history (rows no version of this code writes, such as a hand's, are left out)."""
    with db.read() as conn:
        rows = conn.execute("SELECT size, count FROM start_size").fetchall()
    return StartSizes(filter(valid, rows))
