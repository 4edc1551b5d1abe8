"""The state database's schema: its tables and triggers (schema 17), and how a file
made by an older version becomes it (columns added since, sums made once, tables
renamed).  :mod:`.db` applies it, once per file, in the transaction that opens it."""
import sqlite3

SCHEMA_VERSION = 17

SCHEMA = """
CREATE TABLE IF NOT EXISTS reservation (
    vm       TEXT PRIMARY KEY,
    created  REAL NOT NULL,
    expires  REAL NOT NULL,
    claimed  INTEGER NOT NULL DEFAULT 0,
    owner    TEXT NOT NULL DEFAULT '',
    claim_ours INTEGER NOT NULL DEFAULT 0,  -- the domain's claim is (or may be) one we made: ours to cancel
    claim_domid INTEGER NOT NULL DEFAULT -1,  -- the domain we claimed for
    claim_node INTEGER NOT NULL DEFAULT -1,  -- the node we claimed on (-1: host-wide, or not ours)
    lease    REAL NOT NULL DEFAULT 0,        -- the lease's length as placed (renewed by that much)
    seen_pages INTEGER NOT NULL DEFAULT 0,   -- the domain's pages when its lease was last renewed
    boot     TEXT NOT NULL DEFAULT ''        -- the host's boot id when placed ('': not known)
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
    boot          TEXT NOT NULL DEFAULT '',  -- the host's boot id when pinned ('': not known)
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
    followed_pages INTEGER NOT NULL DEFAULT 0,
    boot      TEXT NOT NULL DEFAULT ''   -- the boot id its clock was read under ('': not known)
);
CREATE TABLE IF NOT EXISTS home_move_intent (
    uuid      TEXT PRIMARY KEY,
    domid     INTEGER NOT NULL,
    from_node INTEGER NOT NULL,
    to_node   INTEGER NOT NULL,
    boot      TEXT NOT NULL DEFAULT ''   -- the host's boot id when noted ('': not known)
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
    updated   REAL NOT NULL,
    host_updated REAL,                  -- the host's clock when updated (NULL: not known)
    boot      TEXT NOT NULL DEFAULT ''  -- the host's boot id when begun ('': not known)
);
CREATE TABLE IF NOT EXISTS start_size (  -- schema 17: the VMs placed here that fit a node, per size
    size      INTEGER PRIMARY KEY,      -- bytes: a start's memory rounded up to its bucket (core.start_sizes)
    count     INTEGER NOT NULL          -- how many such starts were placed
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
                 ("reservation", "claim_ours", "INTEGER NOT NULL DEFAULT 0"),
                 ("reservation", "claim_domid", "INTEGER NOT NULL DEFAULT -1"),
                 ("reservation", "claim_node", "INTEGER NOT NULL DEFAULT -1"),
                 ("reservation", "lease", "REAL NOT NULL DEFAULT 0"),  # schema 13: leases of growing builds renewed
                 ("reservation", "seen_pages", "INTEGER NOT NULL DEFAULT 0"),
                 ("reservation", "boot", "TEXT NOT NULL DEFAULT ''"),  # schema 15: a start of an earlier boot goes
                 ("temp_pin", "pinned_to", "TEXT NOT NULL DEFAULT ''"),
                 ("temp_pin", "boot", "TEXT NOT NULL DEFAULT ''"),  # schema 14: a pin of an earlier boot is forgotten
                 ("home_move_intent", "vnode", "INTEGER NOT NULL DEFAULT -1"),
                 ("home_move_intent", "soft_before", "TEXT NOT NULL DEFAULT '{}'"),  # vCPU -> CPU list
                 ("home_move_intent", "boot", "TEXT NOT NULL DEFAULT ''"),  # schema 15: as the reservation's
                 ("home_move", "followed_domid", "INTEGER NOT NULL DEFAULT -1"),
                 ("home_move", "followed_pages", "INTEGER NOT NULL DEFAULT 0"),
                 ("home_move", "boot", "TEXT NOT NULL DEFAULT ''"),  # rows written before: '', as unknown
                 ("memory_move", "host_updated", "REAL"),  # schema 16: a move's age on the host's clock
                 ("memory_move", "boot", "TEXT NOT NULL DEFAULT ''"),  # schema 16: a mover of an earlier boot
                 # the domains the sums are over, as schema 8 listed them ("-" since, which matches no list)
                 ("home_tally_time", "domids", "TEXT NOT NULL DEFAULT ''"),
                 ("home_tally_time", "uuids", "TEXT NOT NULL DEFAULT ''"),
                 ("home_tally_time", "totals", "TEXT NOT NULL DEFAULT '[]'"),  # [[node, vCPUs homed there]]
                 ("home_tally_time", "summed", "TEXT NOT NULL DEFAULT ''"))  # their LiveDomains.fingerprint


def create_or_upgrade(db: sqlite3.Connection) -> None:
    """Create what is missing and bring an older file's tables to this schema (inside the
    caller's transaction)."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    for table, column, declaration in ADDED_COLUMNS:
        columns = {row[1] for row in db.execute("PRAGMA table_info({})".format(table))}
        if column not in columns:
            db.execute("ALTER TABLE {} ADD COLUMN {} {}".format(table, column, declaration))
            if column == "claim_ours":  # a build claimed before: its end cancels the claim, as it did
                db.execute("UPDATE reservation SET claim_ours = claimed")
            if column == "lease":  # a row made before: its lease as placed
                db.execute("UPDATE reservation SET lease = expires - created")
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
        db.execute("INSERT OR IGNORE INTO memory_move (uuid, domid, pid, state, target, report, started, updated) "
                   "SELECT uuid, domid, pid, state, target, report, started, updated FROM migration")
        db.execute("DROP TABLE migration")
