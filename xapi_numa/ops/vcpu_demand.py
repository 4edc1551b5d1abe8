"""Each unit's CPU demand, read from its vCPUs' CPU time between the rebalancer's looks.

A unit is what the rebalancer moves as one: a VM, or one vnode of a vNUMA VM.  Its
sample in a period is the sum of its vCPUs' busy shares (the CPU time each ran over the
time passed since the last look), a vCPU found waiting to run counting as wanting a whole
pCPU, and a vCPU's first look (no interval yet: its state stands in) as busy if it runs.
The samples are smoothed (:data:`SMOOTHING`) and kept, one value per period, over the last
:data:`WINDOW` periods: what the planner judges moves on.

A reading that cannot be trusted is no sample: a CPU time or a look's time that is no
finite number (>= 0, for a CPU time), a look's time not after the last (a zero or negative
interval), or a CPU time below the last (the vCPU's counter started again: a vCPU reset).
Its share was clamped into 0..1 before: a NaN read as idle (and, kept as the base, made the
vCPU idle every period after), an inf as busy, a reset as one idle period.  Now its unit
takes no sample that period (its smoothed demand stays, and stands for the period in its
history, as the planner's stand-ins do: :mod:`xapi_numa.core.demand_window`), the vCPU is
re-based on the reading where its numbers are sound (else the last base stays), and
why is kept in :attr:`DemandReadings.skipped` (xapi-numad logs it when the vCPUs in it
change).  A base is of one domain: a VM started again is a new domain, whose counters start
at 0, and its vCPUs' next look is a first one.
"""
import math
from typing import Callable, Dict, List, Optional, Set, Tuple

from xapi_numa.core.host import VcpuInfo
from xapi_numa.core.snapshot import HostSnapshot

SMOOTHING = 0.5  # weight of the newest period in the demand average
WINDOW = 150     # periods of demand history the planner judges moves on (5 minutes at 2 s)
Unit = Tuple[str, Optional[int]]  # (VM uuid, vnode or None): what the planner moves as one
Base = Tuple[int, float, float]   # a vCPU's last trusted reading: (domid, CPU time, the look's time)


def untrusted(cpu_time: float, now: float, before: Optional[Base]) -> Optional[str]:
    """Why a vCPU's reading (``cpu_time`` at ``now``, after ``before``) is no sample, or None."""
    if not math.isfinite(now):
        return "the look's time read {!r}".format(now)
    if not (math.isfinite(cpu_time) and cpu_time >= 0):
        return "its CPU time read {!r}".format(cpu_time)
    if before is None:
        return None
    if now <= before[2]:
        return "the look's time ({!r} s) is not after the last one's ({!r} s)".format(now, before[2])
    if cpu_time < before[1]:
        return "its CPU time went back from {!r} s to {!r} s (its counter started again)".format(before[1], cpu_time)
    return None


class DemandReadings:
    def __init__(self) -> None:
        self.unit_demand: Dict[Unit, float] = {}
        self.history: Dict[Unit, List[float]] = {}  # unit -> smoothed demand, one value per period
        self.skipped: Dict[Tuple[str, int], str] = {}  # (uuid, vcpu) -> why its reading of the last look was none
        self._base: Dict[Tuple[str, int], Base] = {}

    def observe(self, snap: HostSnapshot, unit_of: Callable[[str], Callable[[int], Optional[int]]]) -> None:
        """Take each unit's sample of this look (``unit_of(uuid)(vcpu)``: the vnode a vCPU is of,
        None for a VM taken whole); forget the units and vCPUs gone (not those not read)."""
        seen: Set[Tuple[str, int]] = set()
        units: Set[Unit] = set()
        self.skipped = {}
        for d in snap.domains:
            if d.domid == 0:
                continue
            of = unit_of(d.uuid)
            wanted: Dict[Unit, Optional[float]] = {}
            for v in snap.vcpus.get(d.domid, ()):
                key = (d.uuid, v.vcpu)
                seen.add(key)
                share = self._share(key, d.name, v, snap.time)
                unit = (d.uuid, of(v.vcpu))
                sum_so_far = wanted.get(unit, 0.0)
                wanted[unit] = None if share is None or sum_so_far is None else sum_so_far + share
            for unit, now in sorted(wanted.items(), key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1])):
                units.add(unit)
                self._add(unit, now)
        unread = snap.unread  # not read this time, not gone: what is known of them is kept
        self._base = {k: v for k, v in self._base.items() if k in seen or k[0] in unread}
        self.unit_demand = {u: x for u, x in self.unit_demand.items() if u in units or u[0] in unread}
        self.history = {u: x for u, x in self.history.items() if u in units or u[0] in unread}

    def _share(self, key: Tuple[str, int], name: str, v: VcpuInfo, now: float) -> Optional[float]:
        """The vCPU's busy share since the last look, or None if its reading is no sample (said in
        :attr:`skipped`); the reading becomes its base where its numbers are sound."""
        before = self._base.get(key)
        if before is not None and before[0] != v.domid:
            before = None  # another domain of the VM: its counters started at 0
        why = untrusted(v.cpu_time, now, before)
        if why is None or untrusted(v.cpu_time, now, None) is None:  # (the numbers sound, their order not)
            self._base[key] = (v.domid, v.cpu_time, now)
        if why is not None:
            self.skipped[key] = "{} ({}) vCPU {}: {}".format(name, key[0], key[1], why)
            return None
        if v.state == "runnable":
            return 1.0  # waiting to run: it wants a whole pCPU
        if before is None:
            return 1.0 if v.state == "running" else 0.0
        return min(1.0, (v.cpu_time - before[1]) / (now - before[2]))  # (a little over 1: the clocks' jitter)

    def _add(self, unit: Unit, now: Optional[float]) -> None:
        """The unit's sample of this period (None: none; its smoothed demand stands for it)."""
        old = self.unit_demand.get(unit)
        if now is None and old is None:
            return  # nothing known of it yet
        value = old if now is None else now if old is None else SMOOTHING * now + (1 - SMOOTHING) * old
        self.unit_demand[unit] = value
        self.history.setdefault(unit, []).append(value)
        del self.history[unit][:-WINDOW]
