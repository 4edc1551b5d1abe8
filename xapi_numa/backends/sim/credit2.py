"""Xen's credit2 scheduler, modelled on xen/common/sched/credit2.c.

Run queues per socket (credit2's default ``runqueue=socket``), at most 16
pCPUs each (``sched_credit2_max_cpus_runqueue``, spread evenly: a 28-pCPU
socket gets two of 14, as ``cpu_add_to_runqueue`` does since Xen 4.14), shared
by their pCPUs and ordered by credit.  What matters for NUMA, and is modelled:

* a vCPU belongs to one run queue; it changes run queue only when the pick
  logic runs (creation, affinity change: ``csched2_res_pick`` prefers the
  least loaded run queue that meets its soft affinity) or when the load
  balancer moves it;
* inside a run queue soft affinity is honoured where Xen 4.17 honours it:
  a pCPU leaves its current vCPU when one of that vCPU's soft-affine pCPUs
  idles (``runq_candidate``), tickling prefers soft-affine idle pCPUs and,
  to preempt, the pCPUs that are in the woken vCPU's soft affinity and not
  in the current one's (``runq_tickle``, ``tickle_score``); the run queue
  itself is scanned by credit only;
* credits are reset when the best candidate's credit (or the head of the
  run queue's) is spent (``csched2_schedule``, Xen 4.14 on), and they never
  fall below ``-CREDIT_INIT``;
* ``balance_load`` runs when credits are reset and looks only at load: it
  pushes, pulls or swaps the vCPU(s) that best even out the averaged loads
  of the local run queue and the one that differs most from it, and does
  nothing when they differ by less than the tolerance (one vCPU under 100%
  load, 1/8 above).  Two equally loaded run queues are never rebalanced,
  whatever their vCPUs' soft affinity; paused vCPUs stay on their run queue
  and are moved like any other, with the loads they last had.
Loads are fixed point (18 bits) averaged over a 2^30 ns window in time units
of 1024 ns, with ``update_runq_load``'s and ``update_svc_load``'s arithmetic,
so saturated vCPUs tie exactly and list order decides, as in Xen.  Both
averages are updated only where Xen updates them, with the load that held
since their last update (an average left alone for more than the window
restarts from that load):

* a run queue's (its count of queued and running vCPUs) by ``update_load``
  and ``update_runq_load``: on wake and on sleep off the run queue, when a
  vCPU leaves its pCPU for good (``csched2_context_saved``), when
  ``csched2_schedule`` keeps the current vCPU or idles, when ``migrate()``
  moves a queued vCPU (both run queues), and in ``balance_load`` (every run
  queue, before the tolerance check);
* a vCPU's own by ``update_svc_load``: on wake (not runnable since), on sleep
  off the run queue and in ``csched2_context_saved`` (runnable since), when
  ``csched2_schedule`` keeps it running, and in ``balance_load`` past the
  tolerance check (the local run queue's vCPUs, and the other's once a local
  one may move there).  Nothing else touches it: a vCPU that ``migrate()``
  moves while blocked or paused (an affinity write, the balancer) takes the
  load it last had from one run queue's ``b_avgload`` to the other's.
Not modelled: weights and caps, ratelimiting, SMT (beyond keeping sibling
threads in one run queue).
"""

from typing import Dict, List, Optional

from xapi_numa.backends.sim.resched import Rescheduling
from xapi_numa.backends.sim.masks import bit, count, cycle, first, has, iter_bits, soft_effective

CREDIT_INIT = 10_000  # microseconds
CREDIT_MIN = -CREDIT_INIT
IDLE_CREDIT = CREDIT_MIN - 1
MIGRATE_RESIST = 500
MIGRATE_COMPENSATION = 50
CARRYOVER_MAX = 500
TICK_US = 10_000
MAX_CPUS_RUNQ = 16
LOAD_SHIFT = 18
LOAD_ONE = 1 << LOAD_SHIFT
WINDOW_SHIFT = 30  # ns (LOADAVG_WINDOW_SHIFT)
GRANULARITY_SHIFT = 10  # LOADAVG_GRANULARITY_SHIFT: load times are NOW() >> 10
LOAD_WINDOW = WINDOW_SHIFT - GRANULARITY_SHIFT  # prv->load_window_shift
TICK_NS = TICK_US * 1000
SOFT, HARD = 0, 1


def load_time(tick: int) -> int:
    """The time ``update_*_load`` works in at this tick: NOW() >> LOADAVG_GRANULARITY_SHIFT."""
    return (tick * TICK_NS) >> GRANULARITY_SHIFT


def updated_load(avg: int, load: int, last: int, now: int) -> int:
    """An average after ``load`` (vCPUs runnable) held from ``last`` to ``now`` (load times):
    update_runq_load's and update_svc_load's arithmetic, which restarts from the load
    once more than the window has passed."""
    if last + (1 << LOAD_WINDOW) < now:
        return load << LOAD_SHIFT
    delta = now - last
    return avg + ((delta * (load << LOAD_SHIFT)) >> LOAD_WINDOW) - ((delta * avg) >> LOAD_WINDOW)


def runqueue_layout(topology) -> List[int]:
    """The pCPU mask of each run queue, as ``cpu_add_to_runqueue`` builds them while
    the pCPUs come up (``runqueue=socket``, ``sched_credit2_max_cpus_runqueue=16``):
    a pCPU joins its sibling threads' run queue, else the least full run queue of
    its socket that has room for it and its siblings, else a new one."""
    cpus = sorted(topology.cpus, key=lambda c: c.id)
    min_rqs = (len(cpus) - 1) // MAX_CPUS_RUNQ + 1
    max_cpus = len(cpus) // min_rqs
    siblings: Dict[tuple, int] = {}
    for c in cpus:
        siblings[(c.socket, c.core)] = siblings.get((c.socket, c.core), 0) | bit(c.id)
    socket_of = {c.id: c.socket for c in cpus}
    sib_of = {c.id: siblings[(c.socket, c.core)] for c in cpus}
    rqs: List[List[int]] = []  # [first pCPU, mask, pCPUs in it]
    for c in cpus:
        chosen = None
        for rq in rqs:
            if socket_of[rq[0]] != c.socket:
                continue
            if rq[1] & sib_of[c.id]:
                chosen = rq
                break
            groups = {sib_of[r] for r in iter_bits(rq[1])}
            room = sum(count(g) for g in groups) + count(sib_of[c.id]) <= max_cpus
            if rq[2] < max_cpus and room and (chosen is None or rq[2] < chosen[2]):
                chosen = rq
        if chosen is None:
            chosen = [c.id, 0, 0]
            rqs.append(chosen)
        chosen[1] |= bit(c.id)
        chosen[2] += 1
    return [rq[1] for rq in rqs]


class RunQueue:
    __slots__ = ("id", "cpus", "svc", "runq", "b_avgload", "load_last", "pick_bias", "idle", "tickled")

    def __init__(self, rid: int, cpus: int, tick: int = 0) -> None:
        self.id = rid
        self.cpus = cpus
        self.svc: List[object] = []  # assigned vCPUs, in assignment order
        self.runq: List[object] = []  # queued vCPUs by credit, highest first
        self.b_avgload = 0
        self.load_last = tick  # the tick b_avgload was last updated at
        self.pick_bias = first(cpus)
        self.idle = cpus
        self.tickled = 0


class Credit2(Rescheduling):
    name = "credit2"

    def __init__(self, host) -> None:
        self.host = host
        self.rqs = [RunQueue(i, mask, host.tick) for i, mask in enumerate(runqueue_layout(host.topology))]
        self.rq_of = [0] * len(host.cpu_node)
        for rq in self.rqs:
            for cpu in iter_bits(rq.cpus):
                self.rq_of[cpu] = rq.id
        self.curr: List[Optional[object]] = [None] * len(host.cpu_node)
        self.resched = 0
        self._leaving = None  # the vCPU _schedule took off its pCPU, until its context_saved

    def current(self, cpu: int):
        return self.curr[cpu]

    def _has_soft(self, v) -> bool:
        return soft_effective(v.hard, v.soft, self.host.online)

    # --- load averages -------------------------------------------------------------------
    def _update_runq_load(self, rq: RunQueue) -> None:
        """update_runq_load.  Called, as Xen does, before the run queue's count of queued
        and running vCPUs changes: the count has held since the last update."""
        now = self.host.tick
        if rq.load_last != now:  # no time passed: Xen's formula leaves it as it is
            load = 0
            for v in rq.svc:
                load += v.running or v.queued
            rq.b_avgload = updated_load(rq.b_avgload, load, load_time(rq.load_last), load_time(now))
            rq.load_last = now

    def _update_svc_load(self, v, load: int) -> None:
        """update_svc_load: ``load`` is 1 if the vCPU was runnable since its last update."""
        now = self.host.tick
        if v.load_last != now:
            v.avgload = updated_load(v.avgload, load, load_time(v.load_last), load_time(now))
            v.load_last = now

    def _update_load(self, v, load: int) -> None:
        """update_load(rqd, svc, change) on the vCPU's run queue and the vCPU."""
        self._update_runq_load(self.rqs[v.rqd])
        self._update_svc_load(v, load)

    def _runnable_load(self, v) -> int:
        """update_svc_load's unit_runnable(), for the balancer's updates (a vCPU being
        migrated has _VPF_migrating set)."""
        return int(v.migrate_rqd < 0 and not v.migrating and self.host.runnable(v))

    # --- run queue membership ----------------------------------------------------------
    def _assign(self, v, rq: RunQueue) -> None:
        v.rqd = rq.id
        rq.svc.append(v)
        # _runq_assign: the expected load moves with the vCPU at once, so the
        # balancer does not keep pushing while the averages catch up.
        rq.b_avgload += v.avgload

    def _deassign(self, v) -> None:
        if v.rqd >= 0:
            rq = self.rqs[v.rqd]
            rq.svc.remove(v)
            rq.b_avgload = max(rq.b_avgload - v.avgload, 0)
        v.rqd = -1

    def _runq_insert(self, v) -> None:
        q = self.rqs[v.rqd].runq
        i = 0
        while i < len(q) and q[i].credit >= v.credit:
            i += 1
        q.insert(i, v)
        v.queued = True

    def _runq_remove(self, v) -> None:
        self.rqs[v.rqd].runq.remove(v)
        v.queued = False

    def _tickle_cpu(self, cpu: int) -> None:
        rq = self.rqs[self.rq_of[cpu]]
        rq.tickled |= bit(cpu)
        rq.idle &= ~bit(cpu)
        self.resched |= bit(cpu)

    # --- csched2_res_pick ------------------------------------------------------------------
    def _pick(self, v) -> int:
        online = self.host.online
        hard = v.hard & online
        soft_ok = self._has_soft(v)
        best = best_s = None
        best_load = best_s_load = None
        for rq in self.rqs:
            if not hard & rq.cpus:
                continue
            load = rq.b_avgload
            if rq.id == v.rqd:
                load = max(load - v.avgload, 0)
            if soft_ok and v.soft & rq.cpus & hard:
                if best_s_load is None or load < best_s_load:
                    best_s, best_s_load = rq, load
            if best_load is None or load < best_load:
                best, best_load = rq, load
        if soft_ok and best_s is not None:
            mask = hard & v.soft & best_s.cpus
        else:
            mask = hard & best.cpus
        # as in Xen 4.17: the hard-affinity minimum's pick_bias, whichever run queue is picked
        cpu = cycle(best.pick_bias, mask)
        best.pick_bias = cpu
        return cpu

    def _move_to(self, v, cpu: int) -> None:
        """Put a not-running vCPU on ``cpu``, changing run queue if needed (a queued one
        leaves one run queue's load and joins the other's, as in migrate())."""
        was_queued = v.queued
        if was_queued:
            self._update_runq_load(self.rqs[v.rqd])
            self._runq_remove(v)
        target = self.rq_of[cpu]
        if v.rqd != target:
            self._deassign(v)
            self._assign(v, self.rqs[target])
        v.processor = cpu
        if was_queued:
            self._update_runq_load(self.rqs[target])
            self._runq_insert(v)
            self._tickle(v)

    # --- scheduler hooks ---------------------------------------------------------------------
    def insert(self, v) -> None:
        v.credit = CREDIT_INIT
        v.avgload = LOAD_ONE >> 1  # csched2_alloc_udata: a new vCPU starts at 50 % load
        v.load_last = self.host.tick
        cpu = self._pick(v)
        self._assign(v, self.rqs[self.rq_of[cpu]])
        v.processor = cpu

    def remove(self, v) -> None:
        self.sleep(v)
        if v.running:
            cpu = v.processor
            self._update_runq_load(self.rqs[self.rq_of[cpu]])
            self.curr[cpu] = None
            v.running = False
            self.rqs[self.rq_of[cpu]].idle |= bit(cpu)
        self._deassign(v)
        self._run_resched()

    def sleep(self, v) -> None:
        if v.running:  # csched2_context_saved updates the loads once it is off the pCPU
            self.resched |= bit(v.processor)
            self._run_resched()
        elif v.queued:
            self._update_load(v, 1)
            self._runq_remove(v)

    def wake(self, v) -> None:
        if v.running or v.queued:
            return
        self._update_load(v, 0)
        self._runq_insert(v)
        self._tickle(v)
        self._run_resched()

    def affinity_changed(self, v) -> None:
        if v.running:
            v.migrating = True
            self.resched |= bit(v.processor)
            self._run_resched()
            return
        # sched_unit_migrate_start puts it to sleep: csched2_unit_sleep updates a queued
        # vCPU's load; a blocked or paused one's goes with it as it is (migrate())
        if v.queued:
            self._update_load(v, 1)
        if not has(v.hard, v.processor):
            v.processor = cycle(v.processor, v.hard)
        self._move_to(v, self._pick(v))
        self._run_resched()

    # --- runq_tickle ---------------------------------------------------------------------------
    def _tickle(self, new) -> None:
        rq = self.rqs[new.rqd]
        cpu = new.processor
        candidates = rq.idle & ~rq.tickled & self.host.online
        for step in (SOFT, HARD):
            if step == SOFT and not self._has_soft(new):
                continue
            mask = candidates & (new.hard & new.soft if step == SOFT else new.hard)
            if mask:
                target = cpu if has(mask, cpu) else cycle(cpu, mask)
                new.tickled_cpu = target
                self._tickle_cpu(target)
                return
        # No idler: preempt the busy pCPU with the best tickle_score, its own first.
        busy = rq.cpus & ~rq.idle & ~rq.tickled & new.hard & self.host.online
        best, best_score = -1, 0
        if has(busy, cpu):
            busy &= ~bit(cpu)
            score = self._tickle_score(new, cpu)
            if score > best_score:
                best, best_score = cpu, score
                if has(new.soft, cpu):
                    busy = 0
        for c in iter_bits(busy):
            score = self._tickle_score(new, c)
            if score > best_score:
                best, best_score = c, score
        if best >= 0:
            new.tickled_cpu = best
            self._tickle_cpu(best)

    def _tickle_score(self, new, cpu: int) -> int:
        """Xen's tickle_score: credit difference, less the migration resistance off its
        own pCPU; if positive, a bonus where ``cpu`` is in the new vCPU's soft affinity
        and another where it is not in the current one's."""
        cur = self.curr[cpu]
        if cur is None:
            return -1
        score = new.credit - cur.credit - (MIGRATE_RESIST if new.processor != cpu else 0)
        if score > 0:
            score += CREDIT_INIT if has(new.soft, cpu) else 0
            score += CREDIT_INIT if not has(cur.soft, cpu) else 0
        return score

    # --- csched2_schedule --------------------------------------------------------------------------
    def _schedule(self, cpu: int) -> None:
        host = self.host
        rq = self.rqs[self.rq_of[cpu]]
        rq.tickled &= ~bit(cpu)
        scurr = self.curr[cpu]
        saved = None  # a vCPU off its pCPU for good, whose csched2_context_saved is still to come
        if scurr is not None:
            moving = scurr.migrate_rqd >= 0 or scurr.migrating
            if moving or not host.runnable(scurr):
                # the run queue's load while it still counts the vCPU (its count changes now)
                self._update_runq_load(rq)
                saved = scurr
            self.curr[cpu] = None
            scurr.running = False
            if saved is not None:
                scurr = None
        self._leaving = saved
        snext = self._candidate(rq, scurr, cpu)
        # the head of the run queue once snext leaves it (Xen puts scurr back after the switch)
        head = next((v for v in rq.runq if v is not snext), None)
        if scurr is not None and snext is not scurr:
            self._runq_insert(scurr)
            self._tickle(scurr)
        if snext is None:
            rq.idle |= bit(cpu)
            self._update_runq_load(rq)  # "make sure avgload gets updated periodically"
            self._context_saved(saved)
            return
        if snext.queued:
            self._runq_remove(snext)
        rq.idle &= ~bit(cpu)
        migrated = snext.processor != cpu
        snext.processor = cpu
        self.curr[cpu] = snext
        snext.running = True
        if snext is scurr:  # it keeps running: csched2_schedule's update_load
            now = host.tick
            if rq.load_last != now:
                self._update_runq_load(rq)
            if snext.load_last != now:
                self._update_svc_load(snext, 1)
        # an epoch ends when the best credit left in the run queue is spent (Xen 4.14 on)
        if max(snext.credit, head.credit if head is not None else snext.credit) <= 0:
            self._reset_credit(rq, snext)
            self._balance_load(cpu)
        snext.tickled_cpu = -1
        if migrated:
            snext.credit += MIGRATE_COMPENSATION
        self._context_saved(saved)  # after this schedule's choice and balance_load, as in Xen

    def _context_saved(self, v) -> None:
        """csched2_context_saved for a vCPU that left its pCPU for good (its own load), then
        vcpu_migrate_finish for one being moved: the re-pick, the move and the wake come
        once the pCPU it left has chosen its next vCPU (or idles, and so is an idler the
        woken vCPU may be tickled to)."""
        self._leaving = None
        if v is None:
            return
        self._update_svc_load(v, 1)
        if v.migrate_rqd >= 0:  # res_pick honours the balancer's request first
            target = self.rqs[v.migrate_rqd]
            v.migrate_rqd, v.migrating = -1, False
            self._deassign(v)
            self._assign(v, target)
            v.processor = cycle(target.pick_bias, v.hard & target.cpus)
            target.pick_bias = v.processor
        elif v.migrating:
            v.migrating = False
            if not has(v.hard, v.processor):
                v.processor = cycle(v.processor, v.hard)
            self._move_to(v, self._pick(v))
        else:
            return
        if self.host.runnable(v):  # vcpu_wake on the new pCPU: csched2_unit_wake
            self._update_runq_load(self.rqs[v.rqd])
            self._runq_insert(v)
            self._tickle(v)

    def _candidate(self, rq: RunQueue, scurr, cpu: int):
        online = self.host.online
        snext = None
        if scurr is not None and has(scurr.hard, cpu):
            preempt = False
            if self._has_soft(scurr) and not has(scurr.soft & scurr.hard, cpu):
                preempt = bool(scurr.soft & scurr.hard & rq.idle & ~rq.tickled & online)
            if not preempt:
                snext = scurr
        best_credit = snext.credit if snext is not None else IDLE_CREDIT
        # Xen 4.17's scan: by credit only (soft affinity is runq_tickle's business)
        for svc in rq.runq:
            if svc.credit <= best_credit:
                break
            if not self.host.runnable(svc) or not has(svc.hard, cpu):
                continue
            if svc.tickled_cpu not in (-1, cpu) and has(rq.tickled, svc.tickled_cpu):
                continue
            if svc.processor != cpu and best_credit + MIGRATE_RESIST > svc.credit:
                continue
            return svc
        return snext

    def _reset_credit(self, rq: RunQueue, snext) -> None:
        reset = CREDIT_INIT * (2 if snext.credit == CREDIT_MIN else 1)
        for v in rq.svc:
            v.credit = min(v.credit + reset, CREDIT_INIT + CARRYOVER_MAX)
        rq.runq.sort(key=lambda x: -x.credit)

    # --- balance_load -----------------------------------------------------------------------------------
    def _balance_load(self, cpu: int) -> None:
        lrq = self.rqs[self.rq_of[cpu]]
        self._update_runq_load(lrq)
        orq = None
        max_delta = 0
        for rq in self.rqs:
            if rq is lrq:
                continue
            self._update_runq_load(rq)
            delta = abs(lrq.b_avgload - rq.b_avgload)
            if delta > max_delta:
                max_delta, orq = delta, rq
        if orq is None:
            return
        # As Xen 4.17 (and later) does: its st.orqd is still the last run queue of the
        # search loop here, not the one that differs most, when it picks the tolerance.
        last = self.rqs[-1]
        load_max = max(lrq.b_avgload, last.b_avgload)
        cpus_max = max(count(lrq.cpus), count(last.cpus))
        if load_max < cpus_max << LOAD_SHIFT:
            if max_delta < LOAD_ONE:
                return
        elif max_delta < LOAD_ONE >> 3:
            return
        # update_svc_load on every vCPU of the local run queue, and on every one of
        # the other in the inner loop of the first local vCPU that may move there
        now = self.host.tick
        for push in lrq.svc:
            if push.load_last != now:
                self._update_svc_load(push, self._runnable_load(push))
        if any(push.migrate_rqd < 0 and push.hard & orq.cpus for push in lrq.svc):
            for pull in orq.svc:
                if pull.load_last != now:
                    self._update_svc_load(pull, self._runnable_load(pull))
        l_load, o_load = lrq.b_avgload, orq.b_avgload
        best = max_delta
        best_push = best_pull = None
        pulls = [p for p in orq.svc if p.migrate_rqd < 0 and p.hard & lrq.cpus]
        # Distinct pull loads, each with its first vCPU in list order: the
        # outcome of a swap depends on the loads only, so this is Xen's
        # O(n^2) search with the same tie-breaking, done in O(n * distinct).
        first_pull: Dict[int, tuple] = {}
        for idx, p in enumerate(pulls):
            first_pull.setdefault(p.avgload, (p, idx))
        for push in lrq.svc:
            if push.migrate_rqd >= 0 or not push.hard & orq.cpus:
                continue
            pick = None
            pick_delta = best
            pick_index = None
            for load, (p, idx) in first_pull.items():
                d = abs((l_load - push.avgload + load) - (o_load + push.avgload - load))
                if d < pick_delta or (d == pick_delta and pick is not None and idx < pick_index):
                    pick, pick_delta, pick_index = p, d, idx
            if pick is not None and pick_delta < best:
                best, best_push, best_pull = pick_delta, push, pick
            d = abs((l_load - push.avgload) - (o_load + push.avgload))
            if d < best:
                best, best_push, best_pull = d, push, None
        for p in pulls:
            d = abs((l_load + p.avgload) - (o_load - p.avgload))
            if d < best:
                best, best_push, best_pull = d, None, p
        if best_push is not None:
            self._migrate(best_push, orq)
        if best_pull is not None:
            self._migrate(best_pull, lrq)

    def _migrate(self, v, target: RunQueue) -> None:
        if v.running or v is self._leaving:  # CSFLAG_scheduled: a request, honoured on context_saved
            v.migrate_rqd = target.id
            self.resched |= bit(v.processor)
            return
        cpu = cycle(target.pick_bias, v.hard & target.cpus)
        target.pick_bias = cpu
        self._move_to(v, cpu)

    # --- time ------------------------------------------------------------------------------------------
    def tick(self) -> None:
        host = self.host
        for cpu, v in enumerate(self.curr):
            if v is not None:
                v.credit = max(v.credit - TICK_US, CREDIT_MIN)
                self.resched |= bit(cpu)
        order = list(range(len(self.curr)))
        host.rng.shuffle(order)
        self._run_resched(order)

    def to_dict(self) -> dict:
        return {
            "curr": [v.key if v is not None else None for v in self.curr],
            "rqs": [{"svc": [v.key for v in rq.svc], "runq": [v.key for v in rq.runq],
                     "b_avgload": rq.b_avgload, "load_last": rq.load_last, "pick_bias": rq.pick_bias, "idle": rq.idle,
                     "tickled": rq.tickled} for rq in self.rqs],
        }

    @classmethod
    def from_dict(cls, host, data: dict) -> "Credit2":
        s = cls(host)

        def lookup(key):
            return host.domains[key[0]].vcpus[key[1]]

        s.curr = [lookup(k) if k is not None else None for k in data["curr"]]
        # files written before loads were updated lazily: every load was updated at the last tick
        for v in host.all_vcpus():
            if v.load_last < 0:
                v.load_last = host.tick
        for rq, rd in zip(s.rqs, data["rqs"]):
            rq.svc = [lookup(k) for k in rd["svc"]]
            rq.runq = [lookup(k) for k in rd["runq"]]
            rq.b_avgload, rq.pick_bias, rq.idle, rq.tickled = (rd["b_avgload"], rd["pick_bias"],
                                                              rd["idle"], rd["tickled"])
            rq.load_last = rd.get("load_last", host.tick)
        return s
