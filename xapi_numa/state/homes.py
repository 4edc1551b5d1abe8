"""The home-move log: every time the rebalancer moved a VM's home node, when, from
where to where and why.  It is what the hold-down reads (a VM is not moved
again within minutes) and what ``top`` counts (moves by kind).

Times are the host clock's (monotonic on Xen: it restarts at every boot).  Each
row says which boot it was stamped in (``Hypervisor.boot_id``, where the host
says): a row of another boot holds nothing down, whatever its stamp, and the
next record drops it.  A row that does not say (written before rows did, or by
a host that cannot) is told by its stamp, as before: stamped later than now, it
is an earlier boot's and holds nothing down, and a record stamped more than
:data:`SAME_BOOT_SLACK` earlier drops it.  Rows are kept in the order they were
written."""
import json
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

import attrs

from xapi_numa.core.boots import of_another_boot
from xapi_numa.core.cpuset import format_ids
from xapi_numa.state.db import Database
from xapi_numa.state.rows import CPU_LISTS, INTEGER, NUMBER, TEXT, Table

HAND = "by hand"  # the kind of a home move an admin made (a page move whose affinity followed), not the rebalancer
# How much later than a row being written a row of this boot can be stamped (rows whose boot is
# not known; a stale one stamped less far ahead of a new boot's clock stays until its boot is told): writers stamp
# before they write (xapi-numad its period's snapshot time, recorded once the period's writes
# and memory-follow steps are made; move-memory by hand, another process, in between)
SAME_BOOT_SLACK = 600.0
KEEP = 1000  # rows kept beyond those still holding a VM down (``keep_for``): for the counters
HOME_MOVE = Table("home_move", ("rowid",), {
    "rowid": INTEGER, "uuid": TEXT, "moved_at": NUMBER, "from_node": INTEGER, "to_node": INTEGER, "kind": TEXT,
    "reason": TEXT, "followed_domid": INTEGER, "followed_pages": INTEGER, "boot": TEXT})
HOME_MOVE_INTENT = Table("home_move_intent", ("uuid",), {"uuid": TEXT, "domid": INTEGER, "from_node": INTEGER,
                                                         "to_node": INTEGER, "vnode": INTEGER,
                                                         "soft_before": CPU_LISTS, "boot": TEXT})


@attrs.frozen
class Intent:
    """A home move noted before its writes: of domain ``domid``, ``vnode`` (None: the VM)."""

    domid: int
    from_node: int
    to_node: int
    vnode: Optional[int] = None
    soft_before: Mapping[int, FrozenSet[int]] = attrs.field(factory=dict)  # each vCPU's, before the move


@attrs.frozen
class HomeMove:
    uuid: str
    moved_at: float
    from_node: int
    to_node: int
    kind: str
    reason: str
    # the pages memory-following steps of domain followed_domid have taken to to_node
    # since (the mover takes gfns in order: a restart must skip those, not move them again)
    followed_domid: int = -1
    followed_pages: int = 0

    def to_dict(self) -> dict:
        return attrs.asdict(self)


class HomeMoves:
    def __init__(self, db: Database, boot: str = "") -> None:
        """``boot``: the boot id of the clock the moves are stamped with ("": not known)."""
        self.db, self.boot = db, boot

    def record(self, move: HomeMove, keep_for: float = 0.0) -> None:
        """Log a move; the last :data:`KEEP` rows stay, and every row of the last ``keep_for``
        seconds (the rebalancer's hold-down) whatever their number: up to 8 rows a period
        (4 swaps), a hold-down's rows can outnumber KEEP, and a VM whose row went was moved
        again within it."""
        with self.db.write() as db:
            # an earlier boot's rows: by their boot id where both say one, else by their stamp
            db.execute("DELETE FROM home_move WHERE CASE WHEN boot != '' AND ? != '' THEN boot != ? "
                       "ELSE moved_at > ? END", (self.boot, self.boot, move.moved_at + SAME_BOOT_SLACK))
            db.execute("INSERT INTO home_move (uuid, moved_at, from_node, to_node, kind, reason, followed_domid, "
                       "followed_pages, boot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", attrs.astuple(move) + (self.boot,))
            db.execute("DELETE FROM home_move WHERE moved_at < ? AND rowid NOT IN "
                       "(SELECT rowid FROM home_move ORDER BY rowid DESC LIMIT ?)", (move.moved_at - keep_for, KEEP))

    def followed(self, uuid: str, domid: int, pages: int) -> None:
        """A memory-following step of domain ``domid`` took ``pages`` more pages to the
        home of the VM's last move (a step of another domain of the VM starts afresh)."""
        with self.db.write() as db:
            db.execute("UPDATE home_move SET followed_pages = CASE WHEN followed_domid = ? THEN followed_pages + ? "
                       "ELSE ? END, followed_domid = ? WHERE rowid = (SELECT max(rowid) FROM home_move "
                       "WHERE uuid = ?)", (domid, pages, pages, domid, uuid))

    # A home move's writes are several hypercalls: each move is noted before them, and the
    # note stays until the VM is known whole again (all made, or what was made mended):
    # a process killed or failing in between leaves it for the next look to mend
    # (ops.part_moves.PartMoves.left_unwritten).  A note says its boot: one of an earlier
    # boot names a domain gone with it (the VM may run as that domid again, its affinity
    # set anew), so it is mended never, and dropped by the next note (core.boots).
    def intend(self, uuid: str, domid: int, from_node: int, to_node: int, vnode: Optional[int] = None,
               soft_before: Optional[Mapping[int, FrozenSet[int]]] = None) -> None:
        before = json.dumps({str(v): format_ids(cpus) for v, cpus in sorted((soft_before or {}).items())})
        with self.db.write() as db:
            db.execute("DELETE FROM home_move_intent WHERE boot != '' AND ? != '' AND boot != ?",
                       (self.boot, self.boot))
            db.execute("INSERT OR REPLACE INTO home_move_intent (uuid, domid, from_node, to_node, vnode, soft_before, "
                       "boot) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (uuid, domid, from_node, to_node, -1 if vnode is None else vnode, before, self.boot))

    def written(self, uuids: Iterable[str]) -> None:
        uuids = list(uuids)
        if not uuids:
            return
        with self.db.write() as db:
            for uuid in uuids:
                db.execute("DELETE FROM home_move_intent WHERE uuid = ?", (uuid,))

    def unwritten(self) -> Dict[str, Intent]:
        """uuid -> the home move noted in this boot (or not known to be of another) and not yet known whole."""
        with self.db.read() as db:
            rows = HOME_MOVE_INTENT.rows(self.db, db, ("uuid", "domid", "from_node", "to_node", "vnode", "soft_before",
                                                       "boot"))
        return {uuid: Intent(domid, a, b, None if v < 0 else v, before)
                for uuid, domid, a, b, v, before, boot in rows if not of_another_boot(boot, self.boot)}

    def recent(self) -> List[HomeMove]:
        return [m for m, _ in self._rows()]

    def _rows(self) -> List[Tuple[HomeMove, str]]:
        """Every row, in the order written, with the boot it was stamped in."""
        with self.db.read() as db:
            rows = HOME_MOVE.rows(self.db, db, ("uuid", "moved_at", "from_node", "to_node", "kind", "reason",
                                                "followed_domid", "followed_pages", "boot"), "ORDER BY rowid")
        return [(HomeMove(*row[:-1]), row[-1]) for row in rows]

    def latest(self, now: Optional[float] = None) -> Dict[str, HomeMove]:
        """Each VM's last home move; with ``now``, of this boot only (a row of another boot
        id, or stamped later than now: an earlier boot's clock)."""
        out: Dict[str, HomeMove] = {}
        for m, boot in self._rows():  # in the order written: the last one wins
            if now is None or (m.moved_at <= now and not (boot and self.boot and boot != self.boot)):
                out[m.uuid] = m
        return out

    def last_moved(self, now: Optional[float] = None) -> Dict[str, float]:
        """When each VM's home last moved (see :meth:`latest`)."""
        return {uuid: m.moved_at for uuid, m in self.latest(now).items()}

    def counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for m in self.recent():
            out[m.kind] = out.get(m.kind, 0) + 1
        return out
