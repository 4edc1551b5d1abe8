"""How often pages per node are read: every time where Xen answers natively, rarely on stock Xen.

On stock Xen (XenServer 8.4, XCP-ng 8.3) the only way to see where a guest's
pages are is debug key 'u': it walks every page of every domain under a lock
(xen-api's docs call it unsafe on big hosts: it can trip the watchdog) and
writes it all to the hypervisor's console ring.  Every process that wants
pages per node on such a host (xapi-numad, xapi-numa-rrdd) asks this module
first: at most one scan per ``interval`` seconds, none on a host with more
memory than ``max_memory``, and between scans the last reading stands.
"""
import argparse
from typing import Dict, List, Optional, Tuple

import attrs

from xapi_numa.core.numbers import signed_decimal_number, signed_whole_number
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.ops import observe
from xapi_numa.ports.hypervisor import Hypervisor

DEFAULT_INTERVAL = 600.0
DEFAULT_MAX_MEMORY = 1 << 40  # 1 TiB


@attrs.frozen
class ScanLimits:
    interval: float = DEFAULT_INTERVAL
    max_memory: int = DEFAULT_MAX_MEMORY


def add_arguments(parser: argparse.ArgumentParser, between: str = "") -> None:
    """``--page-scan-interval`` and ``--page-scan-max-memory`` (GiB), for every process
    that scans; ``between``: what it does between scans, for the help."""
    parser.add_argument("--page-scan-interval", dest="page_scan_interval", type=signed_decimal_number,
                        default=DEFAULT_INTERVAL,
                        help="on stock Xen, seconds between reads of pages per node through debug key 'u' "
                             "(default 600{})".format("; " + between if between else ""))
    parser.add_argument("--page-scan-max-memory", dest="page_scan_max_memory", type=signed_whole_number,
                        default=DEFAULT_MAX_MEMORY >> 30,
                        help="on stock Xen, never use debug key 'u' on a host with more GiB than this "
                             "(default 1024)")


def argument_ranges(args: argparse.Namespace) -> List[Tuple[str, float, float, float]]:
    """(flag, value, lowest, highest) of those two, for the entry point's range check."""
    return [("--page-scan-interval", args.page_scan_interval, 1, 7 * 86400),
            ("--page-scan-max-memory", args.page_scan_max_memory, 0, 1 << 20)]


def limits_of(args: argparse.Namespace) -> ScanLimits:
    return ScanLimits(args.page_scan_interval, args.page_scan_max_memory << 30)


def native(hv: Hypervisor) -> bool:
    """Does Xen answer pages per node itself (cheap), or is it debug key 'u'?"""
    return hv.capabilities().features.get("node_pages") != "fallback"


def too_big(hv: Hypervisor, limits: ScanLimits) -> bool:
    """A host on which debug key 'u' is never pressed."""
    return hv.topology().memory_total() > limits.max_memory


def scan_due(hv: Hypervisor, limits: ScanLimits, last_scan: Optional[float], now: float) -> bool:
    """May a stock-Xen host be scanned now?"""
    return not too_big(hv, limits) and (last_scan is None or now - last_scan >= limits.interval)


class PageReadings:
    """Snapshots with pages per node, for a process that wants them on every reading
    (the metrics): read each time where Xen answers natively; on stock Xen scanned
    within the limits, each VM's last reading standing in between (while its domain
    is the one read: a VM started again has none until the next scan)."""

    def __init__(self, limits: ScanLimits = ScanLimits()) -> None:
        self.limits = limits
        self.last_scan: Optional[float] = None
        self.read: Dict[str, Tuple[int, Dict[int, int]]] = {}  # uuid -> (domid read, pages per node)

    def snapshot(self, hv: Hypervisor) -> HostSnapshot:
        if native(hv):
            return observe.take(hv, with_pages=True)
        now = hv.clock()
        due = scan_due(hv, self.limits, self.last_scan, now)
        snap = observe.take(hv, now, with_pages=due)
        if due:
            self.last_scan = now
            fresh = {d.uuid: (d.domid, dict(snap.pages[d.domid])) for d in snap.domains if d.domid in snap.pages}
            there = dict(snap.unread, **{d.uuid: d.domid for d in snap.domains})
            # not read this time (its vCPUs or pages failed), its domain still there: kept
            kept = {u: r for u, r in self.read.items() if u not in fresh and there.get(u) == r[0]}
            self.read = dict(kept, **fresh)
        pages = {d.domid: dict(self.read[d.uuid][1]) for d in snap.domains
                 if d.uuid in self.read and self.read[d.uuid][0] == d.domid}
        return attrs.evolve(snap, pages=pages)
