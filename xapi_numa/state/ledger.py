"""The reservation ledger: memory promised to VMs that are starting.

Parallel ``VM.start``s read the same free-memory figures; without a record of
what the others are about to take they all pick the same node.  The ledger is
that record, in the host's state database (:mod:`.db`), shared by every
process on the host:

* ``reserve(vm, bytes per node, ttl, free_now)`` reads the hypervisor's free
  memory *inside* one short ``BEGIN IMMEDIATE`` transaction, checks
  ``free - outstanding`` on every node and writes the reservation, atomically
  against every other process.  Nothing else is locked: starts never wait on
  each other beyond that one transaction (no global boot lock).
* ``release(vm)`` drops it (only the owner's, when an owner token is given);
  leases expire after their TTL (a VM that never started, a process killed
  half-way), unless renewed while the VM's domain is still growing (see
  :mod:`xapi_numa.core.reservation`).  A claimed reservation does not: it is what cancels the claim
  when the build ends, so only reconcile (build over, domain gone) and settle
  end it, and a release by hand or a second reserve is refused.
* ``shrink``, ``renew`` (the lease of a build still growing), ``note_claim_ours`` and
  ``mark_claimed`` (which keeps only what the claim cannot hold) are how reconciling with the build
  (:func:`xapi_numa.core.reservation.plan_reconcile`, applied by the executor)
  changes a reservation.  The ledger itself never touches the hypervisor.
"""
import math
import time
from typing import Callable, Collection, Dict, List, Mapping, Optional, Tuple

from xapi_numa.core.boots import of_another_boot
from xapi_numa.core.reservation import Reservation
from xapi_numa.core.units import PAGE_SHIFT, format_size
from xapi_numa.errors import InvalidArgument, NoCapacity, VmBusy
from xapi_numa.state.db import Database, default_path
from xapi_numa.state import start_sizes
from xapi_numa.state.moves import MoveJournal
from xapi_numa.state.rows import INTEGER, NUMBER, TEXT, Table, one_of

DEFAULT_TTL = 300.0
IN_LIST = 500  # VMs per "IN (...)" query
MAX_TTL = 24 * 3600.0

__all__ = ["DEFAULT_TTL", "MAX_TTL", "Ledger", "Reservation", "default_path"]

RESERVATION = Table("reservation", ("vm",), {"vm": TEXT, "created": NUMBER, "expires": NUMBER,
                                             "claimed": one_of(0, 1), "owner": TEXT,
                                             "claim_ours": one_of(0, 1), "claim_domid": INTEGER,
                                             "claim_node": INTEGER, "lease": NUMBER, "seen_pages": INTEGER,
                                             "boot": TEXT})
RESERVATION_NODE = Table("reservation_node", ("vm", "node"), {"vm": TEXT, "node": INTEGER, "bytes": INTEGER,
                                                              "initial": INTEGER})
RESERVATION_TOTAL = Table("reservation_total", ("node",), {"node": INTEGER, "bytes": INTEGER})


class Ledger:
    """One host's reservations.  Safe to use from many processes at once."""

    def __init__(self, path: Optional[str] = None, clock: Callable[[], float] = time.time,
                 db: Optional[Database] = None) -> None:
        self.db = db or Database(path, clock)
        self.path = self.db.path
        self.clock = self.db.clock

    def close(self) -> None:
        self.db.close()

    # --- queries ------------------------------------------------------------------------------
    def _outstanding_in(self, db, now: float, exclude: Optional[str] = None) -> Dict[int, int]:
        """Nodes with bytes reserved: SQLite's running sums (:data:`~xapi_numa.state.schema.TRIGGERS`)
        less the leases expired but not yet dropped and ``exclude``'s, read by index."""
        # SQLite orders any text or blob after every number, so a lease whose expiry is one would
        # never expire here, nor one of infinity: such rows sort at or past infinity, found by the
        # expiry's index, and refused.
        RESERVATION.rows(self.db, db, ("expires",), "WHERE expires >= ?", (math.inf,))
        totals = dict(RESERVATION_TOTAL.rows(self.db, db, ("node", "bytes")))
        # (a claimed row, or one whose claim call was made, outlives its lease, and counts what
        # it holds: see _expire_in)
        not_counted = "WHERE vm IN (SELECT vm FROM reservation WHERE (expires <= ? AND claimed = 0 " \
            "AND claim_ours = 0) OR vm = ?)"
        for node, gone in RESERVATION_NODE.sums(self.db, db, "node", "bytes", not_counted, (now, exclude)).items():
            totals[node] = totals.get(node, 0) - gone
        return {node: total for node, total in totals.items() if total}

    def outstanding(self, node: Optional[int] = None, exclude: Optional[str] = None) -> Dict[int, int]:
        """Reserved bytes per node (unexpired), or for one node under key ``node``; without
        ``exclude``'s own (a VM placed again replaces its reservation)."""
        with self.db.read() as db:
            totals = self._outstanding_in(db, self.clock(), exclude)
        return {node: totals.get(node, 0)} if node is not None else totals

    def reservations(self) -> List[Reservation]:
        """Every reservation in force (unexpired, or claimed)."""
        with self.db.read() as db:
            return self._reservations_in(db, self.clock(), None)

    def totals_and_reservations_of(self, of: Callable[[List[str]], Collection[str]], exclude: Optional[str] = None,
                                   now: Optional[float] = None,
                                   boot: str = "") -> Tuple[Dict[int, int], List[Reservation]]:
        """In one read: :meth:`outstanding` (without ``exclude``'s), and the reservations of
        the VMs that ``of``, given every VM with a reservation, names, and the claimed ones,
        but ``exclude``'s.  A
        start's dry run names those with a live domain: the reservations whose builds have
        begun, the only ones a reconcile changes, are read whole, and SQLite sums the others
        (a reservation lists every node); those placed in another boot than ``boot`` too (a
        reconcile releases them).  ``now``: the instant expiry is judged at (the clock's now
        by default)."""
        now = self.clock() if now is None else now
        with self.db.read() as db:
            return (self._outstanding_in(db, now, exclude),
                    [r for r in self._reservations_in(db, now, of, boot) if r.vm != exclude])

    def _reservations_in(self, db, now: float, of: Optional[Callable[[List[str]], Collection[str]]],
                         boot: str = "") -> List[Reservation]:
        rows = RESERVATION.rows(self.db, db, ("vm", "created", "expires", "claimed", "owner", "claim_ours", "lease",
                                              "seen_pages", "boot"),
                                "WHERE expires > ? OR claimed = 1 OR claim_ours = 1 ORDER BY created", (now,))
        columns = ("vm", "node", "bytes", "initial")
        if of is None:
            nodes = RESERVATION_NODE.rows(self.db, db, columns)
        else:
            # and every claimed one: a reconcile ends it once its domain is gone, and it counts
            # what its claim cannot hold until then; and one of another boot: a reconcile ends it
            wanted = of([row[0] for row in rows])
            rows, nodes = [row for row in rows if row[0] in wanted or row[3] or of_another_boot(row[8], boot)], []
            for i in range(0, len(rows), IN_LIST):  # (SQLite before 3.32 takes at most 999 parameters)
                vms = [row[0] for row in rows[i:i + IN_LIST]]
                nodes += RESERVATION_NODE.rows(self.db, db, columns, "WHERE vm IN ({})".format(
                    ",".join("?" * len(vms))), vms)
        outstanding: Dict[str, Dict[int, int]] = {vm: {} for vm, *_ in rows}
        initial: Dict[str, Dict[int, int]] = {vm: {} for vm, *_ in rows}
        for vm, node, nbytes, first in nodes:
            if vm in outstanding:  # (rows of expired reservations are not wanted)
                outstanding[vm][node] = nbytes
                initial[vm][node] = first
        return [Reservation(vm, c, e, bool(cl), outstanding[vm], initial[vm], owner, bool(ours), lease, seen, boot)
                for vm, c, e, cl, owner, ours, lease, seen, boot in rows]

    def reservation(self, vm: str) -> Optional[Reservation]:
        return next((r for r in self.reservations() if r.vm == vm), None)

    # --- changes ---------------------------------------------------------------------------------
    def reserve(self, vm: str, bytes_per_node: Mapping[int, int], ttl: float,
                free_now: Callable[[], Mapping[int, int]], owner: str = "",
                host_free_now: Optional[Callable[[], int]] = None, boot: str = "", started: int = 0) -> Reservation:
        """Reserve memory for ``vm`` if every node has it free after other reservations.
        ``boot``: the host's boot id (a reconcile in another boot releases the row);
        ``started``: the VM's memory, counted in the host's start sizes with the reservation
        (:mod:`.start_sizes`; 0: not counted, the VM fits no node), unless it replaces the VM's own.

        ``free_now`` (and ``host_free_now``, what the whole host has: a host-wide
        claim bounds the nodes' sum) is called inside the transaction so that the
        check and the write see one instant.  A VM's earlier reservation is replaced,
        unless its build holds it as claims (refused: see :meth:`release`).
        """
        if not vm or len(vm) > 256:
            raise InvalidArgument("vm", "a VM reference of 1..256 characters is required")
        if not 0 < ttl <= MAX_TTL:
            raise InvalidArgument("ttl", "{}".format(ttl), "0 < ttl <= {:g} seconds".format(MAX_TTL))
        if any(int(b) < 0 for b in bytes_per_node.values()):
            raise InvalidArgument("bytes", "negative reservation")
        wanted = {int(n): int(b) for n, b in bytes_per_node.items() if int(b) > 0}
        with self.db.write() as db:
            now = self.clock()
            self._expire_in(db, now)
            self._refuse_if_claimed(db, vm, "replaced")
            taken = self._outstanding_in(db, now, exclude=vm)
            free = free_now()
            # pages running memory moves have yet to bring: free now, but theirs (a move counts
            # reservations the same way when it claims, so the two never promise one page twice)
            moving = MoveJournal(self.db, boot=boot).pending()
            for node, nbytes in sorted(wanted.items()):
                available = free.get(node, 0) - taken.get(node, 0) - (moving.get(node, 0) << PAGE_SHIFT)
                if nbytes > available:
                    raise NoCapacity("node {} has {} left after other reservations and memory moves under way; "
                                     "{} requested".format(node, format_size(max(available, 0)), format_size(nbytes)),
                                     ("node", str(node), str(nbytes), str(max(available, 0))))
            total = host_free_now() - sum(taken.values()) if host_free_now is not None else None
            if total is not None and sum(wanted.values()) > total:
                raise NoCapacity("the host has {} left after host-wide claims and other reservations; {} "
                                 "requested".format(format_size(max(total, 0)), format_size(sum(wanted.values()))),
                                 ("host", str(sum(wanted.values())), str(max(total, 0))))
            replaced = db.execute("DELETE FROM reservation WHERE vm = ?", (vm,)).rowcount > 0
            db.execute("INSERT INTO reservation (vm, created, expires, owner, lease, boot) VALUES (?, ?, ?, ?, ?, ?)",
                       (vm, now, now + ttl, owner, ttl, boot))
            db.executemany("INSERT INTO reservation_node (vm, node, bytes, initial) VALUES (?, ?, ?, ?)",
                           [(vm, n, b, b) for n, b in sorted(wanted.items())])
            if started and not replaced:  # (a start placed again, its reservation replaced, is one start)
                start_sizes.record(db, started)
        return Reservation(vm, now, now + ttl, False, wanted, dict(wanted), owner, lease=ttl, boot=boot)

    def release(self, vm: str, owner: Optional[str] = None, created: Optional[float] = None,
                claimed: Optional[bool] = None) -> bool:
        """Drop ``vm``'s reservation; True if there was one.  With ``owner``, only a
        reservation made by that owner; with ``created``, only that very one; with
        ``claimed``, only while it is (or is not) claimed, as its planner saw it.

        A claimed reservation goes only by ``created``: that is reconcile or settle,
        which cancel the build's claims with it.  Dropped by name alone it would leave
        those claims in the hypervisor with nothing to cancel them: refused."""
        query, params = "DELETE FROM reservation WHERE vm = ?", [vm]
        if owner is not None:
            query, params = query + " AND owner = ?", params + [owner]
        if created is not None:
            query, params = query + " AND created = ?", params + [created]
        if claimed is not None:
            query, params = query + " AND claimed = ?", params + [int(claimed)]
        with self.db.write() as db:
            if created is None:
                self._refuse_if_claimed(db, vm, "released by hand")
            return db.execute(query, params).rowcount > 0

    @staticmethod
    def _refuse_if_claimed(db, vm: str, what: str) -> None:
        # (a row whose claim call was made may hold a claim too: its process was killed after it)
        if db.execute("SELECT 1 FROM reservation WHERE vm = ? AND (claimed = 1 OR claim_ours = 1)",
                      (vm,)).fetchone():
            raise VmBusy("the reservation of {} is held as claims by its build, so it cannot be {}: "
                         "xapi-numad ends it (and cancels the claims) when the build is over or the domain "
                         "is gone".format(vm, what), (vm,))

    @staticmethod
    def _expire_in(db, now: float) -> int:
        # Leases are stamped by the wall clock (humans read them; every process shares it).
        # A lease made "in the future" means the clock was stepped back: it keeps its TTL
        # from now at most, never the size of the step.  (A step forward expires leases
        # early: nothing a wall clock can tell.)  The TTL is the lease as placed: one renewed
        # (a build still growing) runs further than that past its creation.
        ttl = "(CASE WHEN lease > 0 THEN lease ELSE expires - created END)"  # (0: a row an older version wrote)
        db.execute("UPDATE reservation SET expires = ? + {0} WHERE created > ? AND expires > ? + {0}".format(ttl),
                   (now, now, now))
        # A claimed reservation stays past its lease: dropping it would leave the domain's
        # per-node claims in the hypervisor for good (a VM started paused, a build slower
        # than the TTL), with nothing left to cancel them.  Reconcile ends it when the
        # build is over or the domain is gone (its claims with it).  Not a lease renewed
        # by reconcile: that lapses too whenever reconcile runs late (daemon stopped).
        # So does one whose claim call was made (its process killed before it marked the row).
        return db.execute("DELETE FROM reservation WHERE expires <= ? AND claimed = 0 AND claim_ours = 0",
                          (now,)).rowcount

    def renew(self, vm: str, created: float, expires: float, seen_pages: int) -> bool:
        """Extend that very reservation's lease to ``expires`` (never shortened), its domain
        having had ``seen_pages`` (:func:`xapi_numa.core.reservation.renewed`).  A lease that
        ran out meanwhile is not brought back: False, as for a row that is gone."""
        with self.db.write() as db:
            return db.execute("UPDATE reservation SET expires = MAX(expires, ?), seen_pages = ? "
                              "WHERE vm = ? AND created = ? AND (expires > ? OR claimed = 1 OR claim_ours = 1)",
                              (float(expires), int(seen_pages), vm, created, self.clock())).rowcount > 0

    def expire(self) -> int:
        with self.db.write() as db:
            return self._expire_in(db, self.clock())

    def shrink(self, vm: str, outstanding: Mapping[int, int], created: Optional[float] = None) -> bool:
        """Set what is still outstanding per node (never more than was reserved).  With
        ``created``, only on that very reservation: one placed since by another caller (the
        VM placed again) is not the one the shrink was planned on.  False if there is none."""
        query, params = "SELECT 1 FROM reservation WHERE vm = ?", [vm]
        if created is not None:
            query, params = query + " AND created = ?", params + [created]
        with self.db.write() as db:
            if not db.execute(query, params).fetchone():
                return False
            for node, nbytes in outstanding.items():
                db.execute("UPDATE reservation_node SET bytes = MIN(initial, ?) WHERE vm = ? AND node = ?",
                           (max(0, int(nbytes)), vm, int(node)))
        return True

    def note_claim_ours(self, vm: str, created: Optional[float] = None, domid: int = -1,
                        node: Optional[int] = None) -> bool:
        """Before our claim call: the domain's claim will be ours (to cancel at the build's
        end), for domain ``domid`` on ``node`` (None: host-wide), written first so that a
        process killed right after the call leaves that known.  With ``created``, only that
        very reservation.  False if there is none (gone meanwhile: no claim is to be made)."""
        query = "UPDATE reservation SET claim_ours = 1, claim_domid = ?, claim_node = ? WHERE vm = ?"
        params = [int(domid), -1 if node is None else int(node), vm]
        if created is not None:
            query, params = query + " AND created = ?", params + [created]
        with self.db.write() as db:
            return db.execute(query, params).rowcount > 0

    def forget_claim_ours(self, vm: str, created: Optional[float] = None) -> None:
        """Our claim call was refused and the domain has no claim: undo
        :meth:`note_claim_ours`, so that the unclaimed row expires with its lease again."""
        query, params = ("UPDATE reservation SET claim_ours = 0, claim_domid = -1, claim_node = -1 "
                         "WHERE vm = ? AND claimed = 0"), [vm]
        if created is not None:
            query, params = query + " AND created = ?", params + [created]
        with self.db.write() as db:
            db.execute(query, params)

    def node_claims_made(self) -> List[Tuple[str, int, int]]:
        """(VM, domid, node) of each claim we made on one node (or may have: the process was
        killed after its claim call), for :func:`xapi_numa.ops.observe.known_node_claims`."""
        with self.db.read() as db:
            return RESERVATION.rows(self.db, db, ("vm", "claim_domid", "claim_node"),
                                    "WHERE claim_ours = 1 AND claim_node >= 0 AND claim_domid >= 0")

    def mark_claimed(self, vm: str, created: Optional[float] = None,
                     unclaimed: Optional[Mapping[int, int]] = None, node: Optional[int] = None) -> bool:
        """The hypervisor now protects the memory: stop counting it here, but for
        ``unclaimed`` (bytes per node the claim cannot hold: the build's overhead above the
        domain's maximum, counted until the build is over).  With ``created``, only that
        very reservation.  False if there is none (gone meanwhile).  Whether the claim is
        ours is :meth:`note_claim_ours`'s to say; ``node``: where our claim call put it at
        last (-1: host-wide, where the node claim was refused), if we made it."""
        query, params = "UPDATE reservation SET claimed = 1 WHERE vm = ?", [vm]
        if node is not None:
            query, params = query.replace(" WHERE", ", claim_node = ? WHERE"), [int(node)] + params
        if created is not None:
            query, params = query + " AND created = ?", params + [created]
        kept = {int(n): max(0, int(b)) for n, b in (unclaimed or {}).items()}
        with self.db.write() as db:
            if db.execute(query, params).rowcount == 0:
                return False
            for (node,) in db.execute("SELECT node FROM reservation_node WHERE vm = ?", (vm,)).fetchall():
                db.execute("UPDATE reservation_node SET bytes = MIN(initial, ?) WHERE vm = ? AND node = ?",
                           (kept.get(node, 0), vm, node))
        return True
