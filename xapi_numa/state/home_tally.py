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
from typing import Dict, Mapping, Optional, Tuple

from xapi_numa.state.db import Database

MAX_AGE = 5.0  # seconds: five daemon cycles at the default period

Homes = Dict[int, Tuple[str, Dict[int, int]]]  # domid -> (its uuid, {node: vCPUs homed on it alone})


class HomeTally:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._written: Optional[Homes] = None  # what this process wrote last

    def publish(self, homes: Mapping[int, Tuple[str, Mapping[int, int]]]) -> None:
        """The counts of every guest domain now (replacing the last ones): the rows only
        when they changed, the time always."""
        homes = {domid: (uuid, {int(n): int(c) for n, c in counts.items()}) for domid, (uuid, counts) in homes.items()}
        with self.db.write() as db:
            if homes != self._written:
                db.execute("DELETE FROM home_tally")
                # one row per node a domain has vCPUs homed on alone; one with node -1 for none
                db.executemany("INSERT INTO home_tally (domid, uuid, node, vcpus) VALUES (?, ?, ?, ?)",
                               [(domid, uuid, node, count) for domid, (uuid, counts) in sorted(homes.items())
                                for node, count in (sorted(counts.items()) or [(-1, 0)])])
            db.execute("INSERT OR REPLACE INTO home_tally_time (id, at) VALUES (0, ?)", (self.db.clock(),))
        self._written = homes

    def fresh(self, max_age: float = MAX_AGE) -> Optional[Homes]:
        """The last counts if written within ``max_age`` seconds, else None."""
        now = self.db.clock()
        with self.db.read() as db:
            at = db.execute("SELECT at FROM home_tally_time WHERE id = 0").fetchone()
            if at is None or not now - max_age <= at[0] <= now + 1.0:  # a clock stepped back: not to be trusted
                return None
            rows = db.execute("SELECT domid, uuid, node, vcpus FROM home_tally").fetchall()
        out: Homes = {}
        for domid, uuid, node, count in rows:
            counts = out.setdefault(domid, (uuid, {}))[1]
            if node >= 0:
                counts[node] = count
        return out
