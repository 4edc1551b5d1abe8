"""Guests' backend work on their home nodes' dom0 vCPUs: the use case.

Gathers what :func:`xapi_numa.core.backend_affinity.plan` looks at (dom0's
layout from the snapshot, the backend threads and IRQs in dom0's /proc, our
journal, irqbalance) for xapi-numad's cycle, and answers ``xapi-numa
backends``: each VM's backend threads and IRQs, where they are allowed and
where they ran.  Why nothing is aligned (dom0 not pinned per node,
irqbalance in the way) is said once in the log and in every report.
"""
import logging
import os
from typing import Callable, Dict, FrozenSet, Hashable, List, Optional, Set, Tuple

from xapi_numa.backends.dom0 import Dom0Proc
from xapi_numa.backends.open import sim_path
from xapi_numa.core import backend_affinity
from xapi_numa.core.actions import SetIrqAffinity, SetThreadAffinity
from xapi_numa.core.backend_affinity import IRQ, THREAD, BackendState, Dom0Layout
from xapi_numa.core.cpuset import format_ids
from xapi_numa.core.locality import home_nodes
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.errors import NumaError
from xapi_numa.ops.executor import DONE, GONE, REFUSED, Outcome, log_event
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.backend_pins import BackendJournal
from xapi_numa.state.db import Database

LOOK_EVERY = 10.0  # seconds between reads of dom0's backend work while nothing it depends on changed
# A write dom0's kernel refused (an IRQ whose chip cannot move, a thread it will not move) is
# tried again after this, doubling to REFUSED_RETRY_MAX: each try of an IRQ bans it from
# irqbalance and unbans it, two SIGHUPs, each a rescan and re-placement of every dom0 IRQ
REFUSED_RETRY_S = 300.0
REFUSED_RETRY_MAX = 3600.0
# irqbalance (1.0.7 as upstream) drops a SIGHUP in the first 10 s iteration after it starts or
# rescans, which a new IRQ makes it do: a change of our ban list is signalled again this late
IRQBALANCE_REMIND_S = 25.0
# dom0's vCPUs found not pinned one node each for this long (not a re-pinning under way): the
# work aligned by the old layout is handed back, as a dom0 vCPU no longer stands for a node
LAYOUT_LOST_AFTER = 60.0
DOM0_RECIPE = ("boot Xen with dom0_max_vcpus=<one or more per node> dom0_vcpus_pin "
               "(see dom0-backends.md in /opt/xapi-numa/doc, docs/ in the source)")


class BackendAlignment:
    """One host's backend alignment, as the daemon's cycle uses it."""

    def __init__(self, dom0: Dom0Proc, db: Database, logger: logging.Logger,
                 opted_out: Callable[[str], bool] = lambda uuid: False, look_every: float = LOOK_EVERY,
                 host_clock: Optional[Callable[[], float]] = None, boot: str = "") -> None:
        """``host_clock``, ``boot``: the host's clock and boot id, which tell the journal's
        moved-from masks' age (:mod:`xapi_numa.state.backend_pins`)."""
        self.dom0 = dom0
        self.journal = BackendJournal(db, logger, host_clock, boot)
        self.logger = logger
        self.opted_out = opted_out
        self.look_every = look_every
        self._noted: Set[str] = set()
        self._last_look: Optional[Tuple[float, Hashable]] = None  # (when, what it depended on)
        self._refused: Dict[Tuple[str, int, str], Tuple[float, float]] = {}  # write -> (retry at, back-off)
        self._banned_seen: Optional[FrozenSet[int]] = None  # the ban list as last read
        self._remind_at: Optional[float] = None  # when irqbalance is sent SIGHUP again
        self._irq_written: Dict[Tuple[int, str], FrozenSet[int]] = {}  # IRQ -> the CPUs we last wrote
        self._unusable_since: Optional[float] = None  # since when dom0's vCPUs, read, are not pinned per node
        self._moved_read: Optional[int] = None  # the last journalled moved-from mask this look counted

    def _note_once(self, key: str, message: Optional[str]) -> None:
        """Log a reason once while it holds, and once more when it stops holding."""
        if message and key not in self._noted:
            self._noted.add(key)
            log_event(self.logger, logging.WARNING, "backend alignment limited", why=message)
        elif not message and key in self._noted:
            self._noted.discard(key)
            log_event(self.logger, logging.INFO, "backend alignment limit lifted", what=key)

    def state(self, snap: HostSnapshot, layout: Dom0Layout, enabled: bool = True) -> BackendState:
        """What the planner looks at: dom0's backend work read now, our journal, and the masks
        the last look's writes moved threads off (journalled with them, so that they count
        after a restart too: :mod:`xapi_numa.state.backend_pins`)."""
        self._note_once("layout", "; ".join(layout.problems) + "; " + DOM0_RECIPE if layout.problems else None)
        self._note_once("uncovered", _uncovered(layout) if layout.uncovered else None)
        # a guest not read this time is not gone: its work is read too, so that it stays put
        guests = [d.domid for d in snap.domains if d.domid != 0] + sorted(snap.unread.values())
        conflict = self.dom0.irqbalance_conflict()
        self._note_once("irqbalance", conflict)
        moved_from, self._moved_read = self.journal.moved_from()
        return BackendState(layout, self.dom0.tasks(guests), self.dom0.irqs(guests), tuple(self.journal.entries()),
                            frozenset(d.uuid for d in snap.domains if d.domid != 0 and self.opted_out(d.uuid)),
                            enabled, conflict is None, self.dom0.default_irq_cpus(), self._layout_lost(snap, layout),
                            moved_from)

    @property
    def refused_writes(self) -> Set[Tuple[str, int]]:
        """(kind, tid or IRQ) of the writes dom0 refused that wait to be tried again."""
        return {(kind, ident) for kind, ident, _ in self._refused}

    def _layout_lost(self, snap: HostSnapshot, layout: Dom0Layout) -> bool:
        """dom0's vCPUs read and not pinned one node each for LAYOUT_LOST_AFTER seconds (dom0's
        vCPUs not read at all say nothing of its layout, and do not count)."""
        if layout.usable or not layout.online:
            if layout.usable:
                self._unusable_since = None
            return False
        if self._unusable_since is None:
            self._unusable_since = snap.time
        return snap.time - self._unusable_since >= LAYOUT_LOST_AFTER

    def _due(self, snap: HostSnapshot, layout: Dom0Layout, enabled: bool) -> bool:
        """Reading dom0's backend work walks every process in its /proc (about 4 ms a cycle
        with 65 processes, measured natively; more on a big dom0).  So it is read
        at once when what the plan depends on changes (the guests, their homes, their
        opt-outs, dom0's vCPU layout, the switch), and otherwise every ``look_every``
        seconds, which bounds how late a backend thread that appears later is aligned."""
        depends_on = (enabled, tuple(sorted(layout.node_of_vcpu.items())), layout.problems, tuple(
            (d.domid, d.uuid, tuple(sorted(home_nodes(snap.vcpus.get(d.domid, ()), snap.topology))),
             self.opted_out(d.uuid)) for d in sorted(snap.domains, key=lambda d: d.domid) if d.domid != 0),
            tuple(sorted(snap.unread.items())))
        last = self._last_look
        if last is not None and last[1] == depends_on and snap.time - last[0] < self.look_every:
            return False
        self._last_look = (snap.time, depends_on)
        return True

    def plan(self, snap: HostSnapshot, enabled: bool = True) -> List[object]:
        """The planner's actions, when due (:meth:`_due`); a dom0 we cannot read this
        cycle plans nothing (logged once)."""
        self._remind_irqbalance(snap.time)
        layout = backend_affinity.read_layout(snap.vcpus.get(0, ()), snap.topology)
        if not self._due(snap, layout, enabled):
            return []
        try:
            state = self.state(snap, layout, enabled)
        except (NumaError, OSError) as err:
            self._note_once("read", "cannot read dom0's backend work: {}".format(getattr(err, "message", err)))
            return []
        self._note_once("read", None)
        present = {(THREAD, t.tid, t.name) for t in state.tasks} | {(IRQ, q.irq, q.name) for q in state.irqs}
        self._refused = {k: v for k, v in self._refused.items() if k in present}
        self._irq_written = {k: v for k, v in self._irq_written.items() if (IRQ,) + k in present}
        actions = [a for a in backend_affinity.plan(snap, state)
                   if self._refused.get(_write_of(a), (0.0, 0.0))[0] <= snap.time]
        now_allowed = {(q.irq, q.name): q.allowed for q in state.irqs}
        if any(isinstance(a, SetIrqAffinity) and a.irq in (self._banned_seen or ())
               and now_allowed.get((a.irq, a.name)) != self._irq_written.get((a.irq, a.name))
               for a in actions):
            # banned, yet not where we last put it (or where, we do not know: since our start):
            # irqbalance has not heard of the ban.  (A new target alone, the guest re-homed, is not it.)
            self.dom0.remind_irqbalance()
        return actions

    def _remind_irqbalance(self, now: float) -> None:
        """Signal irqbalance once more IRQBALANCE_REMIND_S after the ban list changed: the
        SIGHUP sent with the change may have come while it ignores them."""
        try:
            banned = self.dom0.banned()
        except OSError:
            return
        if banned != self._banned_seen:
            # (at our start, a list left by the run before: its last change may be as recent as that)
            self._remind_at = None if self._banned_seen is None and not banned else now + IRQBALANCE_REMIND_S
            self._banned_seen = banned
        elif self._remind_at is not None and now >= self._remind_at:
            self._remind_at = None
            self.dom0.remind_irqbalance()

    def heard(self, outcomes: List[Outcome], now: float) -> None:
        """What the executor did with this cycle's writes: one dom0 refused waits a back-off
        (REFUSED_RETRY_S doubling to REFUSED_RETRY_MAX) before it is tried again.  The masks
        the last look's writes moved threads off count for the look that read them only:
        dropped now that its own writes are made, each journalled with the mask it moved a
        thread off, for the next look (a thread its creator started between this look's read
        and the write has that mask: Linux gives a new thread its creator's)."""
        if self._moved_read is not None:
            try:
                self.journal.forget_moved_from(self._moved_read)
                self._moved_read = None
            except NumaError:
                pass  # (kept: counted at the next look once more, or dropped once too old)
        for o in outcomes:
            key = _write_of(o.action)
            if key is None:
                continue
            if o.status == DONE and isinstance(o.action, SetIrqAffinity):
                self._irq_written[(o.action.irq, o.action.name)] = o.action.cpus
            if o.status == REFUSED:
                delay = min(2 * self._refused[key][1], REFUSED_RETRY_MAX) if key in self._refused \
                    else REFUSED_RETRY_S
                self._refused[key] = (now + delay, delay)
            elif o.status in (DONE, GONE):
                self._refused.pop(key, None)


def _write_of(action: object) -> Optional[Tuple[str, int, str]]:
    """The thread or IRQ a write aligns, or None for any other action."""
    if isinstance(action, SetThreadAffinity):
        return THREAD, action.tid, action.name
    if isinstance(action, SetIrqAffinity):
        return IRQ, action.irq, action.name
    return None


def dom0_for(spec: str, hv: Hypervisor) -> Optional[Dom0Proc]:
    """The dom0 that goes with a backend: a simulated host's tree, or this machine's
    procfs when it is dom0 of a Xen host (None otherwise)."""
    path = sim_path(spec)
    if path:
        from xapi_numa.backends.sim.dom0_tree import SimDom0

        return SimDom0(hv, path)
    if os.path.isdir("/proc/xen"):
        from xapi_numa.backends.xenstore import XenstoreReader

        return Dom0Proc("/", tapdisks=XenstoreReader().tapdisk_pids)
    return None


def report(snap: HostSnapshot, dom0: Dom0Proc, domid: Optional[int] = None) -> dict:
    """Each guest's backend work (of domain ``domid`` only, if given: resolved by the caller,
    as a name may be another domain's domid): home nodes, the dom0 vCPUs it belongs on, its
    threads and IRQs with where they may run and where they ran."""
    layout = backend_affinity.read_layout(snap.vcpus.get(0, ()), snap.topology)
    guests = [d for d in snap.domains if d.domid != 0 and (domid is None or d.domid == domid)]
    domids = [d.domid for d in guests]
    tasks, irqs = dom0.tasks(domids), dom0.irqs(domids)
    rows = []
    for d in guests:
        homes = home_nodes(snap.vcpus.get(d.domid, ()), snap.topology)
        target = layout.vcpus_on(homes) if layout.usable else frozenset()
        rows.append({
            "domid": d.domid, "name": d.name, "uuid": d.uuid, "home_nodes": sorted(homes),
            "dom0_vcpus": format_ids(target),
            "threads": [{"tid": t.tid, "kind": t.kind, "name": t.name, "allowed": format_ids(t.allowed),
                         "last_cpu": t.last_cpu, "cpu_time": round(t.cpu_time, 2),
                         "aligned": bool(target) and t.allowed == target}
                        for t in tasks if t.domid == d.domid],
            "irqs": [{"irq": q.irq, "name": q.name, "allowed": format_ids(q.allowed),
                      "ran_on": _ran_on(q.counts), "aligned": bool(target) and q.allowed == target}
                     for q in irqs if q.domid == d.domid]})
    return {"dom0_layout": {str(v): n for v, n in sorted(layout.node_of_vcpu.items())},
            "problems": list(layout.problems) + ([DOM0_RECIPE] if layout.problems else []) + (
                [_uncovered(layout)] if layout.uncovered else []),
            "irqbalance": dom0.irqbalance_conflict() or "no conflict", "vms": rows}


def _uncovered(layout: Dom0Layout) -> str:
    remedy = ("spread dom0's vCPUs over the nodes (xapi-numad --pin-dom0, or xl vcpu-pin Domain-0 <vCPU> "
              "node:<node>)" if layout.can_spread else "dom0 has no vCPU to spare: boot it with one or more per node "
              "(dom0_max_vcpus)")
    return ("dom0 has no vCPU on node(s) {}: backend work of guests homed there stays where dom0's default puts "
            "it; {}".format(",".join(map(str, sorted(layout.uncovered))), remedy))


def _ran_on(counts) -> Dict[str, int]:
    """dom0 vCPU -> interrupts taken there (only those that took any)."""
    return {str(cpu): n for cpu, n in counts if n}

