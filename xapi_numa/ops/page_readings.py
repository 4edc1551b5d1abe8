"""Where xapi-numad believes each VM's pages are: pages per node, as last read, between reads.

Pages per node are read every ``fixup_every`` cycles where the hypervisor answers
natively.  On stock Xen they come from debug key ``u``, which walks every page
of every domain under a lock (it can trip the watchdog on a big host): at most
once per ``page_scan_interval`` seconds, never on a host with more than
``page_scan_max_memory`` bytes (:mod:`.page_scans` says when); between scans the
last reading stands, and our own page moves, the only other change, report
where pages went.  :class:`PageReadings` owns those readings for the daemon's
cycle (:mod:`.runtime`): when the next is due, what a snapshot read, what a VM
not read this time keeps, and what a move of ours changed.
"""
import logging
from typing import Callable, Dict, Mapping, Optional

from xapi_numa.core import rebalance_moves
from xapi_numa.core.actions import MoveMemory
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.ops import page_scans
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.moves import MoveJournal


class PageReadings:
    """Each VM's pages per node as last read (or modelled since, on stock Xen), by UUID."""

    def __init__(self, hv: Hypervisor, moves: MoveJournal, note_once: Callable[..., None]) -> None:
        """``note_once``: logs an event once (the daemon's :meth:`StepLog.note_once`)."""
        self.hv, self.moves, self._note_once = hv, moves, note_once
        self.pages: Dict[str, Dict[int, int]] = {}  # uuid -> pages per node, as last read
        self.of_domid: Dict[str, int] = {}          # uuid -> the domain those pages were read from
        self.last_scan: Optional[float] = None

    def due(self, now: float, cycles: int, fixup_every: int, limits: page_scans.ScanLimits) -> bool:
        """Whether this cycle (the ``cycles``-th) reads pages per node."""
        if page_scans.native(self.hv):  # (or modelled): cheap
            return fixup_every > 0 and cycles % fixup_every == 1
        if page_scans.too_big(self.hv, limits):
            self._note_once("page-scan-off", logging.INFO, "pages per node are not scanned on this host",
                            reason="debug key 'u' on a host this large could trip the watchdog",
                            limit=limits.max_memory)
        return page_scans.scan_due(self.hv, limits, self.last_scan, now)

    def take(self, snap: HostSnapshot, now: float, native_pages: bool) -> None:
        """Keep what ``snap`` read at ``now``; a VM it did not read (its vCPUs or its pages),
        and that is not gone, keeps its last reading."""
        self.last_scan = now
        uuids = {d.domid: d.uuid for d in snap.domains}
        read = {uuids[domid]: dict(p) for domid, p in snap.pages.items()}
        if not native_pages:
            read.update(self._modelled_while_moving(read))
        domids = {d.uuid: d.domid for d in snap.domains}
        for uuid in set(self.pages) - set(read):  # not read this time (its vCPUs or pages), not gone: kept
            if uuid in snap.unread or domids.get(uuid, -1) == self.of_domid.get(uuid):
                read[uuid], domids[uuid] = self.pages[uuid], self.of_domid.get(uuid)
        self.pages, self.of_domid = read, {u: d for u, d in domids.items() if d is not None}

    def _modelled_while_moving(self, read: Dict[str, Dict[int, int]]) -> Dict[str, Dict[int, int]]:
        """A rare 'u' reading taken while a mover works on the VM is out of date the moment
        the mover ends, and would stand until the next scan (by default 10 minutes): the
        rebalancer once started a second memory-follow step on memory already local
        from such a reading.  For those VMs the model (where the move puts the pages,
        :meth:`account_move`) stays."""
        moving = set(self.moves.moving())
        return {uuid: self.pages[uuid] for uuid in read if uuid in moving and uuid in self.pages}

    def forget_restarted(self, domids: Mapping[str, int]) -> None:
        """Drop the readings of VMs gone, or started again since (``domids``: each running
        VM's domain now): their last domain's pages say nothing of this one's."""
        self.pages = {u: p for u, p in self.pages.items() if domids.get(u) == self.of_domid.get(u)}

    def account_move(self, move: MoveMemory) -> None:
        """Our own page moves are the other thing that changes where a VM's pages are:
        where pages are read rarely (debug key 'u'), keep the model up to date."""
        if self.hv.capabilities().features.get("node_pages") != "fallback" or move.uuid not in self.pages:
            return
        self.pages[move.uuid] = rebalance_moves.pages_after(self.pages[move.uuid], move.to, move.max_pages)
