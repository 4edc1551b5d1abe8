"""The vCPU-home tally xapi-numad publishes every cycle, for starts to read.

A start weighs each node's vCPU load: how many vCPUs of running VMs are homed
there alone.  Worked out from the hypervisor, that is every vCPU of every
domain read (two affinity maps each: about 10 000 hypercalls on a host of 1000
VMs) at every start, 32 times over in a boot storm.  xapi-numad reads them all
every second anyway, so it writes the per-domain counts here and a start
takes them while they are fresh (a few seconds old at most, by the wall
clock, which every process on the host shares); a domain the tally does not
name (started since), or a tally gone stale (the daemon stopped, or its period
set long), is read from the hypervisor as before.  A count a few seconds old
only weighs a choice; the memory a start needs is always read now.
"""
import json
import logging
from typing import Collection, Dict, List, Mapping, Optional, Set, Tuple

from xapi_numa.core.live_domains import LiveDomains, fingerprint_of
from xapi_numa.errors import DamagedRow
from xapi_numa.state.db import Database
from xapi_numa.state.rows import INTEGER, NUMBER, TEXT, Table, json_of

LOG = logging.getLogger("xapi-numa")
MAX_AGE = 5.0  # seconds: five daemon cycles at the default period
HOME_TALLY = Table("home_tally", ("domid", "node"), {"domid": INTEGER, "uuid": TEXT, "node": INTEGER, "vcpus": INTEGER})


def _node_counts(data: object) -> bool:
    """[[node, vCPUs homed there alone], ...], as :meth:`HomeTally.publish` writes it."""
    return isinstance(data, list) and all(isinstance(pair, list) and len(pair) == 2
                                          and type(pair[0]) is int and type(pair[1]) is int for pair in data)


HOME_TALLY_TIME = Table("home_tally_time", ("id",), {
    "id": INTEGER, "at": NUMBER, "summed": TEXT,
    "totals": json_of("a JSON list of [node, vCPUs] pairs of integers", _node_counts)})

Homes = Dict[int, Tuple[str, Dict[int, int]]]  # domid -> (its uuid, {node: vCPUs homed on it alone})


class HomeTally:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._written: Optional[Homes] = None  # what this process wrote last
        self._said: Set[str] = set()  # damage warned of (a start's retries share one tally: once)

    def publish(self, homes: Mapping[int, Tuple[str, Mapping[int, int]]]) -> None:
        """The counts of every guest domain now (replacing the last ones): the rows only
        when they changed, the time always; with them, the sums per node and the
        domains summed (their fingerprint), so that a start that lists the same
        domains reads one row."""
        homes = {domid: (uuid, {int(n): int(c) for n, c in counts.items()}) for domid, (uuid, counts) in homes.items()}
        with self.db.write() as db:
            # a damaged tally (a hand, a disk) is written again whole: a start would not use it
            if homes != self._written or self._damaged(db):
                db.execute("DELETE FROM home_tally")
                # one row per node a domain has vCPUs homed on alone; one with node -1 for none
                db.executemany("INSERT INTO home_tally (domid, uuid, node, vcpus) VALUES (?, ?, ?, ?)",
                               [(domid, uuid, node, count) for domid, (uuid, counts) in sorted(homes.items())
                                for node, count in (sorted(counts.items()) or [(-1, 0)])])
                totals: Dict[int, int] = {}
                for _, counts in homes.values():
                    for node, count in counts.items():
                        totals[node] = totals.get(node, 0) + count
                summed = fingerprint_of({domid: uuid for domid, (uuid, _) in homes.items()})
                # domids: what no list of schema 8's is (it reads this pair as its fingerprint,
                # and "", "" is its fingerprint of no domains: a host whose guests are all gone)
                db.execute("INSERT OR REPLACE INTO home_tally_time (id, at, domids, summed, totals) "
                           "VALUES (0, ?, '-', ?, ?)", (self.db.clock(), summed, json.dumps(sorted(totals.items()))))
            else:
                db.execute("UPDATE home_tally_time SET at = ? WHERE id = 0", (self.db.clock(),))
        self._written = homes

    def _damaged(self, conn) -> bool:
        """Whether the tally holds what :meth:`publish` never writes: its rows checked by SQLite
        by each value's type (one pass, no Python per row: a cycle's cost), its one time row
        read as a start reads it."""
        if conn.execute("SELECT 1 FROM home_tally WHERE typeof(domid) != 'integer' OR typeof(node) != 'integer' "
                        "OR typeof(vcpus) != 'integer' OR typeof(uuid) != 'text' LIMIT 1").fetchone():
            return True
        try:
            return not HOME_TALLY_TIME.rows(self.db, conn, ("at", "summed", "totals"), "WHERE id = 0")
        except DamagedRow:
            return True

    def count(self, live: LiveDomains, nodes: int, skip: Collection[int] = (0,),
              max_age: float = MAX_AGE) -> Optional[Tuple[List[int], List[int]]]:
        """The vCPUs homed alone on each of ``nodes`` nodes, summed over the domains of
        ``live`` (domid -> UUID, read just now) that the tally names with the same UUID,
        and the domids of ``live`` it does not name (started since the daemon's cycle, or
        a domid now another VM's), for the caller to read; ``skip``: domids counted in
        neither.  None if the tally is not fresh, or is damaged: it only saves the caller
        reading the hypervisor, and no VM start is refused over it (a warning names the
        row; the daemon's next cycle writes it all again).  SQLite sums
        the rows, so only the domains that came or went since the cycle cost Python work
        (a start on a host of a thousand domains)."""
        try:
            return self._count(live, nodes, skip, max_age)
        except DamagedRow as err:
            if err.message not in self._said:
                self._said.add(err.message)
                LOG.warning("the vCPU-home tally is not used (read from the hypervisor instead): %s", err.message)
            return None

    def _count(self, live: LiveDomains, nodes: int, skip: Collection[int],
               max_age: float) -> Optional[Tuple[List[int], List[int]]]:
        now = self.db.clock()
        fingerprint = live.fingerprint(skip)  # (no UUID formatted)
        vcpus = [0] * nodes
        with self.db.read() as db:
            row = HOME_TALLY_TIME.rows(self.db, db, ("at", "summed", "totals"), "WHERE id = 0")  # (one read)
            if not row or not now - max_age <= row[0][0] <= now + 1.0:  # (a clock stepped back: not to be trusted)
                return None
            _, summed, totals = row[0]
            if summed == fingerprint:  # the very domains it summed: its sums are the answer
                for node, count in totals:
                    if 0 <= node < nodes:
                        vcpus[node] = count
                return vcpus, []
            for node, count in HOME_TALLY.sums(self.db, db, "node", "vcpus", "WHERE node >= 0").items():
                if node < nodes:
                    vcpus[node] = count
            named = set(HOME_TALLY.rows(self.db, db, ("domid", "uuid"), "GROUP BY domid"))
            listed = set(live.items())  # (each UUID formatted once, here only)
            gone = named - listed  # stopped since, or their domid reused
            gone.update((domid, live[domid]) for domid in skip if (domid, live.get(domid)) in named)
            for domid, _ in gone:
                for node, count in HOME_TALLY.rows(self.db, db, ("node", "vcpus"), "WHERE domid = ? AND node >= 0",
                                                   (domid,)):
                    if node < nodes:
                        vcpus[node] -= count
        unread = sorted(domid for domid, _ in listed - named if domid not in skip)
        return vcpus, unread

