"""Xen's credit2 scheduler, modelled on xen/common/sched/credit2.c.

One run queue per socket (credit2's default ``runqueue=socket``), shared by
its pCPUs and ordered by credit.  What matters for NUMA, and is modelled:

* a vCPU belongs to one run queue; it changes run queue only when the pick
  logic runs (creation, affinity change: ``csched2_res_pick`` prefers the
  least loaded run queue that meets its soft affinity) or when the load
  balancer moves it;
* inside a run queue soft affinity is honoured: a pCPU leaves a vCPU that
  is not soft-affine to it when one of its soft-affine pCPUs idles, and
  tickling prefers soft-affine idle pCPUs (``runq_candidate``,
  ``runq_tickle``);
* ``balance_load`` runs when credits are reset and looks only at load: it
  pushes, pulls or swaps the vCPU(s) that best even out the two run queues'
  averaged loads, and does nothing when they differ by less than the
  tolerance (one vCPU under 100% load, 1/8 above).  Two equally loaded run
  queues are never rebalanced, whatever their vCPUs' soft affinity.
Loads are fixed point (18 bits) averaged over a 2^30 ns window, as in Xen,
so saturated vCPUs tie exactly and list order decides, as in Xen.
Not modelled: weights and caps, ratelimiting, SMT.
"""

from typing import Dict, List, Optional

from xapi_numa.backends.sim.resched import Rescheduling
from xapi_numa.backends.sim.masks import bit, cycle, first, has, iter_bits, soft_effective

CREDIT_INIT = 10_000  # microseconds
MIGRATE_RESIST = 500
CARRYOVER_MAX = 500
TICK_US = 10_000
IDLE_CREDIT = -(1 << 30)
LOAD_SHIFT = 18
LOAD_ONE = 1 << LOAD_SHIFT
WINDOW_SHIFT = 30  # ns
TICK_NS = TICK_US * 1000
SOFT, HARD = 0, 1


def _decay(avg: int, load: int) -> int:
    return (TICK_NS * (load << LOAD_SHIFT) + ((1 << WINDOW_SHIFT) - TICK_NS) * avg) >> WINDOW_SHIFT


class RunQueue:
    __slots__ = ("id", "cpus", "svc", "runq", "b_avgload", "pick_bias", "idle", "tickled")

    def __init__(self, rid: int, cpus: int) -> None:
        self.id = rid
        self.cpus = cpus
        self.svc: List[object] = []  # assigned vCPUs, in assignment order
        self.runq: List[object] = []  # queued vCPUs by credit, highest first
        self.b_avgload = 0
        self.pick_bias = first(cpus)
        self.idle = cpus
        self.tickled = 0


class Credit2(Rescheduling):
    name = "credit2"

    def __init__(self, host) -> None:
        self.host = host
        sockets: Dict[int, int] = {}
        for c in host.topology.cpus:
            sockets[c.socket] = sockets.get(c.socket, 0) | bit(c.id)
        self.rqs = [RunQueue(i, mask) for i, (_, mask) in enumerate(sorted(sockets.items()))]
        self.rq_of = [0] * len(host.cpu_node)
        for rq in self.rqs:
            for cpu in iter_bits(rq.cpus):
                self.rq_of[cpu] = rq.id
        self.curr: List[Optional[object]] = [None] * len(host.cpu_node)
        self.resched = 0

    def current(self, cpu: int):
        return self.curr[cpu]

    def _has_soft(self, v) -> bool:
        return soft_effective(v.hard, v.soft, self.host.online)

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
            rq, mask = best_s, hard & v.soft & best_s.cpus
        else:
            rq, mask = best, hard & best.cpus
        cpu = cycle(rq.pick_bias, mask)
        rq.pick_bias = cpu
        return cpu

    def _move_to(self, v, cpu: int) -> None:
        """Put a not-running vCPU on ``cpu``, changing run queue if needed."""
        was_queued = v.queued
        if was_queued:
            self._runq_remove(v)
        target = self.rq_of[cpu]
        if v.rqd != target:
            self._deassign(v)
            self._assign(v, self.rqs[target])
        v.processor = cpu
        if was_queued:
            self._runq_insert(v)
            self._tickle(v)

    # --- scheduler hooks ---------------------------------------------------------------------
    def insert(self, v) -> None:
        v.credit = CREDIT_INIT
        v.avgload = 0
        cpu = self._pick(v)
        self._assign(v, self.rqs[self.rq_of[cpu]])
        v.processor = cpu

    def remove(self, v) -> None:
        self.sleep(v)
        if v.running:
            cpu = v.processor
            self.curr[cpu] = None
            v.running = False
            self.rqs[self.rq_of[cpu]].idle |= bit(cpu)
        self._deassign(v)
        self._run_resched()

    def sleep(self, v) -> None:
        if v.running:
            self.resched |= bit(v.processor)
            self._run_resched()
        elif v.queued:
            self._runq_remove(v)

    def wake(self, v) -> None:
        if v.running or v.queued:
            return
        self._runq_insert(v)
        self._tickle(v)
        self._run_resched()

    def affinity_changed(self, v) -> None:
        if v.running:
            v.migrating = True
            self.resched |= bit(v.processor)
            self._run_resched()
            return
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
        # No idler: preempt the pCPU running the lowest-credit vCPU, if lower than ours.
        lowest = None
        for c in iter_bits(rq.cpus & new.hard & ~rq.tickled):
            cur = self.curr[c]
            if cur is not None and (lowest is None or cur.credit < self.curr[lowest].credit):
                lowest = c
        if lowest is not None and self.curr[lowest].credit < new.credit:
            new.tickled_cpu = lowest
            self._tickle_cpu(lowest)

    # --- csched2_schedule --------------------------------------------------------------------------
    def _schedule(self, cpu: int) -> None:
        host = self.host
        rq = self.rqs[self.rq_of[cpu]]
        rq.tickled &= ~bit(cpu)
        scurr = self.curr[cpu]
        if scurr is not None:
            self.curr[cpu] = None
            scurr.running = False
            if scurr.migrate_rqd >= 0:
                target = self.rqs[scurr.migrate_rqd]
                scurr.migrate_rqd = -1
                self._deassign(scurr)
                self._assign(scurr, target)
                scurr.processor = cycle(target.pick_bias, scurr.hard & target.cpus)
                target.pick_bias = scurr.processor
                if host.runnable(scurr):
                    self._runq_insert(scurr)
                    self._tickle(scurr)
                scurr = None
            elif scurr.migrating:
                scurr.migrating = False
                if not has(scurr.hard, scurr.processor):
                    scurr.processor = cycle(scurr.processor, scurr.hard)
                target_cpu = self._pick(scurr)
                if host.runnable(scurr):
                    self._move_to(scurr, target_cpu)
                    self._runq_insert(scurr)
                    self._tickle(scurr)
                else:
                    self._move_to(scurr, target_cpu)
                scurr = None
            elif not host.runnable(scurr):
                scurr = None
        snext, skipped = self._candidate(rq, scurr, cpu)
        if scurr is not None and snext is not scurr:
            self._runq_insert(scurr)
            self._tickle(scurr)
        if snext is None:
            rq.idle |= bit(cpu)
            return
        if snext.queued:
            self._runq_remove(snext)
        rq.idle &= ~bit(cpu)
        snext.processor = cpu
        snext.tickled_cpu = -1
        self.curr[cpu] = snext
        snext.running = True
        if skipped == 0 and snext.credit <= 0:
            self._reset_credit(rq, snext)
            self._balance_load(cpu)

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
        skipped = 0
        for svc in rq.runq:
            if svc.tickled_cpu not in (-1, cpu) and has(rq.tickled, svc.tickled_cpu):
                skipped += 1
                continue
            if svc.processor != cpu and best_credit + MIGRATE_RESIST > svc.credit:
                continue
            if not has(svc.hard, cpu):
                skipped += 1
                continue
            if (self._has_soft(svc) and not has(svc.soft & svc.hard, cpu)
                    and svc.soft & svc.hard & rq.idle & ~rq.tickled & online):
                skipped += 1
                continue
            if svc.credit > best_credit:
                snext = svc
            break
        return snext, skipped

    def _reset_credit(self, rq: RunQueue, snext) -> None:
        m = 1
        if snext.credit < -CREDIT_INIT:
            m += (-snext.credit) // CREDIT_INIT
        for v in rq.svc:
            v.credit = min(v.credit, CARRYOVER_MAX) + m * CREDIT_INIT
        rq.runq.sort(key=lambda x: -x.credit)

    # --- balance_load -----------------------------------------------------------------------------------
    def _balance_load(self, cpu: int) -> None:
        lrq = self.rqs[self.rq_of[cpu]]
        orq = None
        max_delta = 0
        for rq in self.rqs:
            if rq is lrq:
                continue
            delta = abs(lrq.b_avgload - rq.b_avgload)
            if delta > max_delta:
                max_delta, orq = delta, rq
        if orq is None:
            return
        load_max = max(lrq.b_avgload, orq.b_avgload)
        cpus_max = max(bin(lrq.cpus).count("1"), bin(orq.cpus).count("1"))
        if load_max < cpus_max << LOAD_SHIFT:
            if max_delta < LOAD_ONE:
                return
        elif max_delta < LOAD_ONE >> 3:
            return
        l_load, o_load = lrq.b_avgload, orq.b_avgload
        best = max_delta
        best_push = best_pull = None
        pulls = [p for p in orq.svc if p.migrate_rqd < 0 and p.hard & lrq.cpus]
        # Distinct pull loads, each with its first vCPU in list order: the
        # outcome of a swap depends on the loads only, so this is Xen's
        # O(n^2) search with the same tie-breaking, done in O(n * distinct).
        first_pull: Dict[int, object] = {}
        for p in pulls:
            first_pull.setdefault(p.avgload, p)
        for push in lrq.svc:
            if push.migrate_rqd >= 0 or not push.hard & orq.cpus:
                continue
            pick = None
            pick_delta = best
            pick_index = None
            for load, p in first_pull.items():
                d = abs((l_load - push.avgload + load) - (o_load + push.avgload - load))
                idx = pulls.index(p)
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
        if v.running:
            v.migrate_rqd = target.id
            self.resched |= bit(v.processor)
            return
        cpu = cycle(target.pick_bias, v.hard & target.cpus)
        target.pick_bias = cpu
        self._move_to(v, cpu)

    # --- time ------------------------------------------------------------------------------------------
    def tick(self) -> None:
        host = self.host
        for rq in self.rqs:
            load = 0
            for v in rq.svc:
                r = host.runnable(v)
                v.avgload = _decay(v.avgload, 1 if r else 0)
                load += r
            rq.b_avgload = _decay(rq.b_avgload, load)
        for cpu, v in enumerate(self.curr):
            if v is not None:
                v.credit -= TICK_US
                self.resched |= bit(cpu)
        order = list(range(len(self.curr)))
        host.rng.shuffle(order)
        self._run_resched(order)

    def to_dict(self) -> dict:
        return {
            "curr": [v.key if v is not None else None for v in self.curr],
            "rqs": [{"svc": [v.key for v in rq.svc], "runq": [v.key for v in rq.runq],
                     "b_avgload": rq.b_avgload, "pick_bias": rq.pick_bias, "idle": rq.idle,
                     "tickled": rq.tickled} for rq in self.rqs],
        }

    @classmethod
    def from_dict(cls, host, data: dict) -> "Credit2":
        s = cls(host)

        def lookup(key):
            return host.domains[key[0]].vcpus[key[1]]

        s.curr = [lookup(k) if k is not None else None for k in data["curr"]]
        for rq, rd in zip(s.rqs, data["rqs"]):
            rq.svc = [lookup(k) for k in rd["svc"]]
            rq.runq = [lookup(k) for k in rd["runq"]]
            rq.b_avgload, rq.pick_bias, rq.idle, rq.tickled = (rd["b_avgload"], rd["pick_bias"],
                                                              rd["idle"], rd["tickled"])
        return s
