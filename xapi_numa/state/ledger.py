"""The reservation ledger: memory promised to VMs that are starting.

Parallel ``VM.start``s read the same free-memory figures; without a record of
what the others are about to take they all pick the same node.  The ledger
is that record, in SQLite (stdlib, WAL mode) so that every process on the
host shares it:

* ``reserve(vm, bytes per node, ttl, free_now)`` reads the hypervisor's free
  memory *inside* one short ``BEGIN IMMEDIATE`` transaction, checks
  ``free - outstanding`` on every node and writes the reservation, atomically
  against every other process.  Nothing else is locked: starts never wait on
  each other beyond that one transaction (no global boot lock).
* ``release(vm)`` drops it; leases expire after their TTL (a VM that never
  started, a process killed half-way).
* ``reconcile(hypervisor)`` shrinks a reservation as the VM's pages appear on
  its nodes, drops it once the domain is built (running, or all its memory
  in place), and where the hypervisor has per-node claims turns it into
  claims as soon as the domain exists.

SQLite's transactions survive a SIGKILL at any point: a killed writer's
transaction is rolled back, never half-applied.
"""

import contextlib
import os
import sqlite3
import time
from typing import Callable, Dict, Iterator, List, Mapping, Optional

import attrs

from xapi_numa.errors import InvalidArgument, NoCapacity, NumaError, StateError
from xapi_numa.core.units import PAGE_SHIFT, format_size

DEFAULT_PATH = "/var/lib/xapi-numa/ledger.db"
DEFAULT_TTL = 300.0
MAX_TTL = 24 * 3600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS reservation (
    vm       TEXT PRIMARY KEY,
    created  REAL NOT NULL,
    expires  REAL NOT NULL,
    claimed  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS reservation_node (
    vm       TEXT NOT NULL REFERENCES reservation(vm) ON DELETE CASCADE,
    node     INTEGER NOT NULL,
    bytes    INTEGER NOT NULL CHECK (bytes >= 0),
    initial  INTEGER NOT NULL,
    PRIMARY KEY (vm, node)
);
CREATE TABLE IF NOT EXISTS temp_pin (
    uuid          TEXT NOT NULL,
    vcpu          INTEGER NOT NULL,
    domid         INTEGER NOT NULL,
    original_hard TEXT NOT NULL,
    pinned_at     REAL NOT NULL,
    PRIMARY KEY (uuid, vcpu)
);
CREATE TABLE IF NOT EXISTS migration (
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


@attrs.frozen
class Reservation:
    vm: str
    created: float
    expires: float
    claimed: bool
    nodes: Mapping[int, int]  # outstanding bytes per node

    def to_dict(self) -> dict:
        return {"vm": self.vm, "created": self.created, "expires": self.expires, "claimed": self.claimed,
                "nodes": {str(n): b for n, b in sorted(self.nodes.items())},
                "total": sum(self.nodes.values())}


def default_path() -> str:
    return os.environ.get("XAPI_NUMA_LEDGER", DEFAULT_PATH)


class Ledger:
    """One host's reservations.  Safe to use from many processes at once."""

    def __init__(self, path: Optional[str] = None, clock: Callable[[], float] = time.time) -> None:
        self.path = path or default_path()
        self.clock = clock
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise StateError(f"cannot open the reservation ledger {self.path}: {err}") from None

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short IMMEDIATE transaction (takes the write lock up front)."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise StateError(f"reservation ledger {self.path} is unavailable: {err}") from None
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    # --- queries ------------------------------------------------------------------------------
    @staticmethod
    def _outstanding_in(db: sqlite3.Connection, now: float, exclude: Optional[str] = None) -> Dict[int, int]:
        rows = db.execute(
            "SELECT n.node, SUM(n.bytes) FROM reservation_node n JOIN reservation r ON r.vm = n.vm "
            "WHERE r.expires > ? AND r.vm IS NOT ? GROUP BY n.node", (now, exclude)).fetchall()
        return {int(node): int(total) for node, total in rows}

    def outstanding(self, node: Optional[int] = None) -> Dict[int, int]:
        """Reserved bytes per node (unexpired), or for one node under key ``node``."""
        with self._read() as db:
            totals = self._outstanding_in(db, self.clock())
        return {node: totals.get(node, 0)} if node is not None else totals

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            self._db.execute("COMMIT")

    def reservations(self) -> List[Reservation]:
        now = self.clock()
        with self._read() as db:
            rows = db.execute("SELECT vm, created, expires, claimed FROM reservation WHERE expires > ? "
                              "ORDER BY created", (now,)).fetchall()
            nodes = db.execute("SELECT vm, node, bytes FROM reservation_node").fetchall()
        per_vm: Dict[str, Dict[int, int]] = {}
        for vm, node, nbytes in nodes:
            per_vm.setdefault(vm, {})[int(node)] = int(nbytes)
        return [Reservation(vm, c, e, bool(cl), per_vm.get(vm, {})) for vm, c, e, cl in rows]

    # --- changes ---------------------------------------------------------------------------------
    def reserve(self, vm: str, bytes_per_node: Mapping[int, int], ttl: float,
                free_now: Callable[[], Mapping[int, int]]) -> Reservation:
        """Reserve memory for ``vm`` if every node has it free after other reservations.

        ``free_now`` is called inside the transaction so that the check and
        the write see one instant.  A VM's earlier reservation is replaced.
        """
        if not vm or len(vm) > 256:
            raise InvalidArgument("vm", "a VM reference of 1..256 characters is required")
        if not 0 < ttl <= MAX_TTL:
            raise InvalidArgument("ttl", f"{ttl}", f"0 < ttl <= {MAX_TTL:g} seconds")
        wanted = {int(n): int(b) for n, b in bytes_per_node.items() if int(b) > 0}
        if any(b < 0 for b in bytes_per_node.values()):
            raise InvalidArgument("bytes", "negative reservation")
        with self._write() as db:
            now = self.clock()
            self._expire_in(db, now)
            taken = self._outstanding_in(db, now, exclude=vm)
            free = free_now()
            for node, nbytes in sorted(wanted.items()):
                available = free.get(node, 0) - taken.get(node, 0)
                if nbytes > available:
                    raise NoCapacity(f"node {node} has {format_size(max(available, 0))} left after other "
                                     f"reservations; {format_size(nbytes)} requested",
                                     ("node", str(node), str(nbytes), str(max(available, 0))))
            db.execute("DELETE FROM reservation WHERE vm = ?", (vm,))
            db.execute("INSERT INTO reservation (vm, created, expires) VALUES (?, ?, ?)", (vm, now, now + ttl))
            db.executemany("INSERT INTO reservation_node (vm, node, bytes, initial) VALUES (?, ?, ?, ?)",
                           [(vm, n, b, b) for n, b in sorted(wanted.items())])
        return Reservation(vm, now, now + ttl, False, wanted)

    def release(self, vm: str) -> bool:
        """Drop ``vm``'s reservation; True if there was one."""
        with self._write() as db:
            return db.execute("DELETE FROM reservation WHERE vm = ?", (vm,)).rowcount > 0

    @staticmethod
    def _expire_in(db: sqlite3.Connection, now: float) -> int:
        return db.execute("DELETE FROM reservation WHERE expires <= ?", (now,)).rowcount

    def expire(self) -> int:
        with self._write() as db:
            return self._expire_in(db, self.clock())

    def reconcile(self, hypervisor) -> Dict[str, str]:
        """Bring reservations in line with what the hypervisor shows; returns what changed per VM."""
        changes: Dict[str, str] = {}
        doms = {d.uuid: d for d in hypervisor.domains()}
        node_claims = _supports_node_claims(hypervisor)
        for r in self.reservations():
            dom = doms.get(r.vm)
            if dom is None:
                continue  # not built yet; expiry takes care of VMs that never start
            try:
                pages = hypervisor.node_pages(dom.domid)
            except NumaError:
                continue  # the domain went away between the two calls
            landed = {n: p << PAGE_SHIFT for n, p in pages.items()}
            built = (not dom.paused) or dom.memory >= sum(self._initial(r.vm).values())
            if built:
                self._drop_if_unchanged(r)
                if node_claims and r.claimed:
                    for node in r.nodes:
                        with contextlib.suppress(NumaError):
                            hypervisor.claim(dom.domid, 0, node)
                changes[r.vm] = "built: released"
                continue
            if node_claims and not r.claimed:
                claimed = self._claim(hypervisor, dom.domid, r, landed)
                changes[r.vm] = "claimed" if claimed else "claim refused: kept reservation"
                continue
            self._shrink(r.vm, landed)
            changes.setdefault(r.vm, "shrunk")
        return changes

    # --- reconcile helpers --------------------------------------------------------------------------
    def _initial(self, vm: str) -> Dict[int, int]:
        with self._read() as db:
            return {int(n): int(b) for n, b in db.execute(
                "SELECT node, initial FROM reservation_node WHERE vm = ?", (vm,)).fetchall()}

    def _drop_if_unchanged(self, r: Reservation) -> None:
        with self._write() as db:
            db.execute("DELETE FROM reservation WHERE vm = ? AND created = ?", (r.vm, r.created))

    def _shrink(self, vm: str, landed: Mapping[int, int]) -> None:
        with self._write() as db:
            for node, initial in db.execute("SELECT node, initial FROM reservation_node WHERE vm = ?",
                                            (vm,)).fetchall():
                remaining = max(0, int(initial) - landed.get(int(node), 0))
                db.execute("UPDATE reservation_node SET bytes = ? WHERE vm = ? AND node = ?", (remaining, vm, node))

    def _claim(self, hypervisor, domid: int, r: Reservation, landed: Mapping[int, int]) -> bool:
        initial = self._initial(r.vm)
        done = []
        try:
            for node, nbytes in sorted(initial.items()):
                remaining = max(0, nbytes - landed.get(node, 0)) >> PAGE_SHIFT
                if remaining:
                    hypervisor.claim(domid, remaining, node)
                    done.append(node)
        except NumaError:
            for node in done:
                with contextlib.suppress(NumaError):
                    hypervisor.claim(domid, 0, node)
            return False
        # The hypervisor now protects the memory: stop counting it here.
        with self._write() as db:
            db.execute("UPDATE reservation SET claimed = 1 WHERE vm = ?", (r.vm,))
            db.execute("UPDATE reservation_node SET bytes = 0 WHERE vm = ?", (r.vm,))
        return True


class PinJournal:
    """Temporary hard pins of the daemon, written before the pin and removed after
    the restore, in the ledger database: a daemon killed in between finds them
    at its next start and puts the original affinity back."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def record(self, uuid: str, vcpu: int, domid: int, original_hard: str, now: float) -> None:
        with self.ledger._write() as db:
            db.execute("INSERT OR IGNORE INTO temp_pin (uuid, vcpu, domid, original_hard, pinned_at) "
                       "VALUES (?, ?, ?, ?, ?)", (uuid, vcpu, domid, original_hard, now))

    def entries(self) -> List[tuple]:
        """(uuid, vcpu, domid, original_hard, pinned_at) rows."""
        with self.ledger._read() as db:
            return [tuple(r) for r in db.execute(
                "SELECT uuid, vcpu, domid, original_hard, pinned_at FROM temp_pin ORDER BY uuid, vcpu").fetchall()]

    def drop(self, uuid: str, vcpu: int) -> None:
        with self.ledger._write() as db:
            db.execute("DELETE FROM temp_pin WHERE uuid = ? AND vcpu = ?", (uuid, vcpu))


def _supports_node_claims(hypervisor) -> bool:
    return hypervisor.capabilities().node_claims
