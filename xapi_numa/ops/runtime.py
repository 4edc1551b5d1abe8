"""Keeping running VMs well placed: one cycle of observe -> plan -> apply.

What xapi-numad does every period, as a use case the daemon, the demo, the
benchmarks and ``--dry-run`` queries share:

1. take a snapshot of the host (:mod:`.observe`);
2. ask the pure planners: undo temporary pins that did their job
   (:func:`~xapi_numa.core.homing.plan_restores`), bring displaced vCPUs home
   (:func:`~xapi_numa.core.homing.plan`), point soft affinity at the memory
   (:mod:`~xapi_numa.core.affinity_fixup`), when pages per node are read;
3. hand every action to the one executor (:mod:`.executor`);
4. every ``rebalance_period`` seconds, the rebalancer (:mod:`.rebalancing`,
   :mod:`~xapi_numa.core.rebalance`): a VM's home moves when load is uneven
   and the move is worth the memory it takes, then its memory follows;
5. upkeep: recover dead page movers, expire leases, reconcile reservations
   with the builds, settle VMs started after ``place``, each step on its own
   (one failing does not stop the others; its failure is logged once).

Pages per node, when they are read and what stands between reads, are
:mod:`.page_readings`'.
"""
import functools
import logging
from typing import Callable, Dict, FrozenSet, List, Optional, Set, Tuple

import attrs

from xapi_numa.backends.xapi import PLACE_TIMEOUT
from xapi_numa.core import affinity_fixup, homing, locality, rebalance
from xapi_numa.core import demand as cpu_demand
from xapi_numa.core.actions import MoveMemory, PinTemporarily, RestorePin, SetNodeAffinity
from xapi_numa.core.policy import Policy
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.errors import NumaError
from xapi_numa.ops import cycle_log, dry_runs, move_memory, move_recovery, observe, page_scans, upkeep
from xapi_numa.ops.backend_alignment import BackendAlignment
from xapi_numa.ops.executor import DEFERRED, DONE, Executor, Outcome, log_event
from xapi_numa.ops.left_alone import LeftAlone
from xapi_numa.ops.page_readings import PageReadings
from xapi_numa.ops.rebalancing import Decision, Rebalancer
from xapi_numa.ops.step_log import StepLog
from xapi_numa.ops.reserve import room_pages
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.db import Database
from xapi_numa.state.home_tally import HomeTally
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import MoveJournal
from xapi_numa.state.pins import PinJournal

LOG = logging.getLogger("xapi-numad")
MOVES_KEPT_S = 3600.0  # an ended page move of a VM gone from this host stays in the journal this long
LOCKS_LOOKED_AT_EVERY = 60  # cycles between looks for the lock files of VMs gone (a minute at the default period)
# Seconds from the daemon's start (the host's clock) before the first of those looks: a place or release of an
# older version still running from before an upgrade takes a VM's lock without checking that its path still names
# its file, and may hold a removed one beside the new file of another caller.  The longest its caller waits for one
# (a place stops itself at start_placement.PLACE_BUDGET, well before it; a release's every wait is bounded in it).
LOCKS_FIRST_LOOK_AFTER_S = PLACE_TIMEOUT


@attrs.frozen
class Settings:
    threshold: float = 1.0          # seconds a vCPU stays displaced before it is brought home
    pin_timeout: float = 5.0        # seconds a temporary pin may stay before it is given up
    max_writes: int = 256           # affinity writes per cycle
    fixup_every: int = 30           # cycles between fix-up passes (pages read natively)
    page_scan_interval: float = page_scans.DEFAULT_INTERVAL
    page_scan_max_memory: int = page_scans.DEFAULT_MAX_MEMORY
    scheduler: Optional[str] = None  # the guests' scheduler, when their cpupool's differs from the host's
    bounce_window: float = 10.0      # displaced again this soon after a restore: pin harder next time
    rebalancing: bool = True         # move homes (and memory) when load is uneven
    rebalance_period: float = 2.0    # seconds between the rebalancer's looks
    balance: rebalance.Settings = rebalance.Settings()
    backend_affinity: bool = True    # guests' backend threads and IRQs on their home nodes' dom0 vCPUs


class Runtime:
    """The daemon's work, one cycle at a time (the loop and the process are the daemon's)."""

    def __init__(self, hv: Hypervisor, db: Database, settings: Settings = Settings(),
                 policy_of: Optional[Callable[[str], Policy]] = None,
                 settler: Optional[Callable[[], List[str]]] = None, dry_run: bool = False,
                 logger: logging.Logger = LOG, opted_out: Optional[Callable[[str], bool]] = None,
                 dom0=None, backend_opt_out: Callable[[str], bool] = lambda uuid: False,
                 guest_cpus: Callable[[], Optional[FrozenSet[int]]] = lambda: None,
                 stopping: Callable[[], bool] = lambda: False,
                 policy_error: Callable[[str], Optional[str]] = lambda uuid: None,
                 xapi_use: Optional[Callable[[Callable[[object], object]], object]] = None) -> None:
        """``policy_error``: why a VM's stored policy cannot be read (None: it can); such a VM is left alone.
        ``xapi_use``: xapi (a link's ``use``), asked between batches by a move made here (a simulated host)."""
        self.hv, self.db, self.settings = hv, db, settings
        self.stopping = stopping  # a stop was asked (SIGTERM): the rest of a cycle is skipped
        # guests' backend work in dom0 (None: dom0's procfs is not reachable from here)
        self.backends = None if dom0 is None else BackendAlignment(dom0, db, logger, backend_opt_out,
                                                                   host_clock=hv.clock, boot=hv.boot_id())
        self.policy_of = policy_of or (lambda uuid: Policy())
        self.left_alone = LeftAlone(self.policy_of, policy_error, logger)
        self.guest_cpus = guest_cpus  # the host's guest mask, where xapi says (see HostSnapshot.unpinned)
        self.settler, self.logger = settler, logger
        modelled = hv.capabilities().modelled_time
        self.executor = Executor(hv, db, logger, dry_run=dry_run, max_writes=settings.max_writes, dom0=dom0,
                                 start_mover=functools.partial(move_memory.move_now, xapi_use=xapi_use) if modelled
                                 else move_memory.start_for)
        # a host with modelled time moves memory in this process, one period's worth per step
        self.chunk_pages = int(settings.balance.rate * settings.rebalance_period) >> 12 if modelled else None
        self.boot = hv.boot_id()  # (a process never outlives a boot of its host: read once)
        self.rebalancer = Rebalancer(db, settings.balance, self.policy_of, opted_out, read_layout=hv.vnuma,
                                     move_blockers=hv.move_blockers, boot=self.boot)
        self.last_rebalance: Optional[float] = None
        self.last_decision: Optional[Decision] = None
        self.samples_dropped: Tuple[str, ...] = ()  # said when it changes (core.demand_window.sound_samples)
        self.readings_skipped: Set[Tuple[str, int]] = set()  # vCPUs whose last reading was none, as said
        self.outside: Dict[str, List[float]] = {}  # uuid -> [vCPU samples outside soft affinity, all samples]
        self.pins = PinJournal(db, logger)
        self.moves = MoveJournal.of_host(db, hv)
        self.home_tally = HomeTally(db)
        self.ledger = Ledger(db=db)
        self.displaced_since: Dict[Tuple[int, int], float] = {}
        self.restored_at: Dict[str, float] = {}    # uuid -> when its temporary pins were last undone
        self.bounced_vms: Set[str] = set()          # uuids pinned after a bounce: held longer (credit2)
        self.demand: Optional[Dict[int, int]] = None  # domid -> vCPUs running or runnable, last cycle
        self.demand_changed_at: Optional[float] = None  # when that last changed a lot (credit2 settles after)
        self.demand_rose_at: Dict[int, float] = {}  # domid -> when its demand last rose a lot (credit2: it lags)
        # (uuid, domid) -> when its displaced vCPUs were all re-picked (a VM started again is a new domain)
        self.repicked_at: Dict[Tuple[str, int], float] = {}
        self.cycles, self._fixup_now = 0, False
        self.started_at = hv.clock()  # (the host's clock: what no step of the wall clock moves)
        self.alive: Optional[Set[str]] = None        # the VMs of the last snapshot (those not read included)
        self.upkeep_log = StepLog(logger)
        self._failing = self.upkeep_log.failing      # upkeep steps failing now
        self._recovery_failing: Set[str] = set()     # mover recoveries that failed last cycle (said then)
        self.readings = PageReadings(hv, self.moves, self._note_once)  # pages per node, as last read

    @property
    def writes(self) -> int:
        return self.executor.writes

    # --- what to read ------------------------------------------------------------------------------
    def _pages_due(self, now: float) -> bool:
        limits = page_scans.ScanLimits(self.settings.page_scan_interval, self.settings.page_scan_max_memory)
        return self.readings.due(now, self.cycles, self.settings.fixup_every, limits)

    def _rebalance_due(self, now: float) -> bool:
        return self.settings.rebalancing and (self.last_rebalance is None
                                            or now - self.last_rebalance >= self.settings.rebalance_period - 1e-9)

    def snapshot(self, refuse: bool = False) -> HostSnapshot:
        now = self.hv.clock()
        native_pages = self.hv.capabilities().features.get("node_pages") != "fallback"
        fixup_due = self._pages_due(now)
        with_pages = fixup_due or (native_pages and self._rebalance_due(now))
        snap = self.masked(observe.take(self.hv, now, with_pages=with_pages), refuse)
        self._fixup_now, self.alive = fixup_due, {d.uuid for d in snap.domains} | set(snap.unread)
        if with_pages:
            self.readings.take(snap, now, native_pages)
        if self.settings.scheduler:
            snap = attrs.evolve(snap, scheduler=self.settings.scheduler)
        return snap

    def masked(self, snap: HostSnapshot, refuse: bool) -> HostSnapshot:
        """``snap`` with the host's guest mask; one that cannot be read leaves every VM alone
        (:mod:`.left_alone`), never placed as if there were none; a dry run's (``refuse``) is refused."""
        try:
            return attrs.evolve(snap, guest_cpus=self.guest_cpus())
        except NumaError as err:
            if refuse:
                raise
            return attrs.evolve(snap, guest_mask_error=err.message)

    # --- who is left alone --------------------------------------------------------------------------
    def excluded(self, snap: HostSnapshot) -> Set[int]:
        """VMs whose memory is being moved, whose policy is ``any`` or ``strict``, or whose
        stored policy cannot be read (:mod:`.left_alone`)."""
        return self.left_alone.excluded(snap, self.moves.moving())

    def forget_the_gone(self, snap: HostSnapshot) -> None:
        """Drop what homing remembers of VMs that no longer run: a daemon lives for months
        of VM starts and stops."""
        alive = {d.uuid for d in snap.domains} | set(snap.unread)
        # a VM started again since its pages were read (stock Xen reads them rarely) is unread:
        # its last domain's pages said where this one's are not, and a move was judged on them
        domids = dict({d.uuid: d.domid for d in snap.domains}, **snap.unread)
        self.readings.forget_restarted(domids)
        self.restored_at = {u: t for u, t in self.restored_at.items() if u in alive}
        self.repicked_at = {k: t for k, t in self.repicked_at.items() if domids.get(k[0]) == k[1]}
        self.demand_rose_at = {d: t for d, t in self.demand_rose_at.items() if d in domids.values()}
        self.bounced_vms &= alive
        self.outside = {u: counts for u, counts in self.outside.items() if u in alive}
        dom0_refused = None if self.backends is None else self.backends.refused_writes
        self.executor.forget_gone(set(domids.values()), dom0_refused)

    # --- one cycle -------------------------------------------------------------------------------------
    def plan(self, snap: HostSnapshot, fresh_pages: bool) -> List[object]:
        pins = self.pins.entries()
        self.forget_the_gone(snap)
        self.displaced_since = homing.displaced_since(snap, self.displaced_since)
        demand = cpu_demand.demand(snap, self.demand)
        if cpu_demand.demand_changed(self.demand, demand, snap):
            self.demand_changed_at = snap.time
        self.demand_rose_at.update(dict.fromkeys(cpu_demand.demand_rose(self.demand, demand, snap), snap.time))
        self.demand = demand
        excluded = self.excluded(snap)
        actions: List[object] = list(homing.plan_restores(snap, pins, self.settings.pin_timeout,
                                                          demand_changed_at=self.demand_changed_at,
                                                          bounced_vms=self.bounced_vms, boot=self.boot))
        bounced = homing.bounced(snap, self.restored_at, self.settings.bounce_window)
        pins_made = homing.plan(snap, self.displaced_since, self.settings.threshold, excluded,
                                homing.pinned_keys(snap, pins), bounced,
                                settling=cpu_demand.is_settling(snap, self.demand_changed_at),
                                lagging={d for d, t in self.demand_rose_at.items() if cpu_demand.is_settling(snap, t)},
                                # re-picked within bounce_window: its stragglers are left to Xen's balancer
                                repicked={d.domid for d in snap.domains
                                          if snap.time - self.repicked_at.get((d.uuid, d.domid), -1e9)
                                          < self.settings.bounce_window})
        # a VM pinned again because it bounced while demand stood still is held longer
        # (homing.holds_longer): the unevenness that pushed it out lasts
        for_good = homing.pushed_out_for_good(snap, bounced, self.restored_at, self.demand_changed_at)
        self.bounced_vms |= {p.uuid for p in pins_made if p.domid in for_good and isinstance(p, PinTemporarily)}
        actions += pins_made
        if fresh_pages:
            actions += self.fixup(snap, excluded)
        if self.backends is not None:  # a home the rebalancer moves is followed in the next cycle
            actions += self.backends.plan(snap, self.settings.backend_affinity)
        return actions

    def fixup(self, snap: HostSnapshot, excluded: Set[int]) -> List[object]:
        """The affinity fix-up of a cycle and of its dry run (:meth:`what_now`): VMs whose memory follows a home
        the rebalancer moved are not pulled back (rebalancer off: nothing would let them go, the fix-up decides)."""
        held = self.rebalancer.following.held_domains(snap) if self.settings.rebalancing else set()
        return affinity_fixup.plan(snap, excluded | held)

    def cycle(self) -> dict:
        """One cycle; once a stop is asked, all but mover recovery is skipped (a write may wait 60 s)."""
        self.cycles += 1
        outcomes: List[Outcome] = []
        try:
            snap = self.snapshot()
            # for starts (state/home_tally); a state database that cannot take it costs them reads, not this cycle
            self._step("publish-homes", lambda: self.home_tally.publish({
                d.domid: (d.uuid, locality.single_homes(snap.vcpus[d.domid], snap.topology))
                for d in snap.domains if d.domid != 0 and d.domid in snap.vcpus}))
            if self.stopping():
                return {"host_clock": snap.time, "stopping": True}
            pinned_in_snap = {(p.uuid, p.vcpu) for p in self.pins.entries()}  # undone below, still in snap
            outcomes = self.executor.apply(self.plan(snap, self._fixup_now))
            for o in outcomes:
                if o.status == DONE and isinstance(o.action, RestorePin) and o.action.domid is not None:
                    self.restored_at[o.action.uuid] = snap.time
                if isinstance(o.action, RestorePin) and o.status == DONE:
                    self.bounced_vms.discard(o.action.uuid)
            self.repicked_at.update(dict.fromkeys(cycle_log.fully_repicked(outcomes), snap.time))
            if self.backends is not None:  # a write dom0 refused waits before it is tried again
                self.backends.heard(outcomes, snap.time)
            locality.count_outside(((d.uuid, snap.vcpus.get(d.domid, ())) for d in snap.domains if d.domid != 0),
                                   snap.topology, self.outside)  # per VM: how much of its time it runs away
            # a home the fix-up moved is not in ``snap``: the rebalancer looks at the next cycle's
            if self._rebalance_due(snap.time) and not self.stopping() and not cycle_log.homes_moved(outcomes):
                outcomes += self.rebalance(snap, pinned_in_snap)
        finally:
            # whatever failed above, a guest a dead mover left paused is still unpaused
            kept = self.upkeep()
        report = {"host_clock": snap.time, "displaced": len(self.displaced_since)}
        report.update(cycle_log.tally(outcomes))
        report.update(kept)
        cycle_log.log_changes(self.logger, outcomes)
        return report

    # --- rebalancing --------------------------------------------------------------------------------------
    def rebalance(self, snap: HostSnapshot, pinned_in_snap: Set[Tuple[str, int]] = frozenset()) -> List[Outcome]:
        """``pinned_in_snap``: pins of ours when ``snap`` was taken; one undone since is still
        in it, and is no admin's pin (taken for one, its VM would not be moved this period)."""
        self.last_rebalance = snap.time
        ours = {(p.uuid, p.vcpu) for p in self.pins.entries()} | set(pinned_in_snap)
        decision = self.rebalancer.decide(snap, self.readings.pages, self.excluded(snap), self.chunk_pages, ours,
                                          room=room_pages(self.hv, self.ledger), max_writes=self.settings.max_writes)
        self.last_decision = decision
        if decision.assessment.dropped and decision.assessment.dropped != self.samples_dropped:
            log_event(self.logger, logging.WARNING, "demand samples dropped", vms=list(decision.assessment.dropped))
        self.samples_dropped = decision.assessment.dropped
        skipped = self.rebalancer.readings.skipped  # (a vCPU reset is one look's; a broken counter, every look's)
        if skipped and set(skipped) != self.readings_skipped:
            log_event(self.logger, logging.WARNING, "demand readings skipped", vcpus=sorted(skipped.values()))
        self.readings_skipped = set(skipped)
        if not decision.actions:
            return []
        outcomes = self.executor.apply(decision.actions)
        # the moves made count, and their memory starts following now; vNUMA layouts follow vnode moves
        outcomes += self.executor.apply(self.rebalancer.applied(outcomes))
        for o in outcomes:
            if not isinstance(o.action, MoveMemory):
                continue
            said = True
            if o.status == DONE and o.action.vnode is None:
                self.rebalancer.following.moved(o.action.uuid, o.action.to, o.action.max_pages or 0)
                self.readings.account_move(o.action)
            elif o.action.vnode is None:  # (refused again, each period until a hold-down: said once)
                said = self.rebalancer.following.refused(o.action.uuid, snap.time)
            if said:  # a step that was not started would otherwise leave no trace: say why
                log_event(self.logger, logging.INFO if o.status == DONE else logging.WARNING, "memory move",
                          domid=o.action.domid, to=o.action.to, pages=o.action.max_pages, vnode=o.action.vnode,
                          status=o.status, detail=o.detail, reason=o.action.reason)
        homes = [o for o in outcomes if isinstance(o.action, SetNodeAffinity)]
        if homes:
            log_event(self.logger, logging.INFO, "home moved", vms=[o.action.uuid for o in homes],
                      reason=decision.note, loads=decision.assessment.to_dict()["loads"],
                      status=[o.status for o in homes])
        return outcomes

    def outside_share(self, uuid: str) -> float:
        outside, total = self.outside.get(uuid, (0.0, 0.0))
        return outside / total if total else 0.0

    def rebalance_dry_run(self, samples: int = 3) -> Decision:
        return dry_runs.rebalance_dry_run(self, samples)

    def what_now(self) -> List[Outcome]:
        return dry_runs.what_now(self)

    def restore_all_pins(self, why: str) -> int:
        """Undo every temporary pin of ours still in place (daemon start and stop); how many (``pins_left``: not)."""
        pins = self.pins.entries()
        self.pins_left = len(pins) + self.pins.left_out.count  # (a damaged row, left out, stays)
        if not pins:
            return 0
        actions = list(homing.restore_all(observe.take(self.hv), pins, self.boot))
        outcomes: List[Outcome] = []
        self.executor.forget_backoff()  # a refusal a moment ago (another write) defers no restore now
        while actions:  # all of them, a write budget at a time: a stop must not leave pins behind
            batch = self.executor.apply(actions)
            done = [o for o in batch if o.status != DEFERRED]
            outcomes, actions = outcomes + done, [o.action for o in batch if o.status == DEFERRED] if done else []
        restored = sum(1 for o in outcomes if o.status == DONE and o.action.domid is not None)
        not_done = len([o for o in outcomes if o.status != DONE])
        left = self.pins_left = not_done + len(pins) - len(outcomes) + self.pins.left_out.count  # refused, not read
        log_event(self.logger, logging.INFO if not left else logging.WARNING, "temporary pins restored",
                  why=why, restored=restored, forgotten=len(outcomes) - restored - not_done, left=left)
        return restored

    # --- upkeep ------------------------------------------------------------------------------------------
    def upkeep(self) -> dict:
        out: dict = {}
        # even at a stop: a guest a dead mover left paused must not wait for the next start
        self._step("recover-movers", lambda: out.update(recovered=self._recover_movers()), at_stop=True)
        self._step("expire", lambda: out.update(expired=self.ledger.expire()))
        if self.alive is not None:  # an hour of history for `memory-moves`
            self._step("forget-moves", lambda: self.moves.forget_ended(self.alive, MOVES_KEPT_S))
        if self.alive is not None and self.cycles % LOCKS_LOOKED_AT_EVERY == 1 and \
                self.hv.clock() - self.started_at >= LOCKS_FIRST_LOOK_AFTER_S:  # (a stat per lock file)
            self._step("forget-locks", lambda: upkeep.forget_vm_locks(self.ledger, self.moves, self.alive))
        self._step("reconcile", lambda: out.update(
            reconciled=len(upkeep.reconcile(self.hv, self.ledger, self.executor))))
        if self.settler is not None:
            self._step("settle", lambda: out.update(settled=len(self.settler())))
        return out

    def _recover_movers(self) -> int:
        """Recover dead movers; what was done is said, and a failure (tried again every cycle)
        once while it lasts: it was a line a second for as long as the guest's record stayed."""
        notes = move_recovery.recover(self.hv, self.moves)
        failing = {note for note in notes if isinstance(note, move_recovery.Failure)}
        for note in notes:
            if note not in self._recovery_failing:
                log_event(self.logger, logging.WARNING, "page move recovered", what=note)
        self._recovery_failing = failing
        return len(notes) - len(failing)

    def _step(self, name: str, step: Callable[[], None], at_stop: bool = False) -> None:
        """Run one upkeep step unless a stop was asked (``at_stop``: even then); failures logged by :mod:`.step_log`.
        A state database refused as of a newer schema (:attr:`Database.refused`) ends the cycle instead: no step
        can work, and the daemon stops on it, saying it once."""
        if self.db.refused is not None:
            raise self.db.refused
        if self.stopping() and not at_stop:
            return
        try:
            step()
        except Exception as err:  # noqa: BLE001 - the daemon must outlive xapi, a full disk, a bug
            if self.db.refused is not None:
                raise self.db.refused from None
            self.upkeep_log.failed(name, err.message if isinstance(err, NumaError) else "{}: {}".format(
                type(err).__name__, err))
            return
        self.upkeep_log.worked(name)

    def _note_once(self, key: str, level: int, event: str, **fields) -> None:
        self.upkeep_log.note_once(key, level, event, **fields)
