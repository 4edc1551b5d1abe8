"""Xen's credit scheduler (credit1), modelled on xen/common/sched/credit.c.

Each pCPU has its own run queue, ordered by priority (BOOST > UNDER > OVER),
FIFO within a priority.  What matters for NUMA, and is modelled here:

* a waking vCPU is queued on the pCPU it last ran on; ``__runq_tickle``
  wakes an idle pCPU in its soft, else hard, affinity to come and steal it;
* a pCPU whose best local candidate is OVER (or that would idle) steals a
  *queued*, never a running, vCPU from a peer: soft-affine work first, then
  hard-affine, scanning its own node first, each node from the pCPU after the
  one the host last stole from there (``csched_load_balance``, ``balance_bias``);
* every tick a running vCPU is re-evaluated (``csched_unit_acct``) but may
  only move to an *idle* pCPU (soft affinity first);
* a pick (``_csched_cpu_pick``) takes an idle pCPU of the affinity, and moves on
  to a core with more idle threads, or a socket with more than twice the idle
  pCPUs, than the one it has;
* credits: 10 per ms burnt while running, shared out every 30 ms among the
  active domains, then among their active vCPUs; 30 ms time slices.

Hence the stuck state of the seed report: a vCPU outside its soft affinity
that runs alone on its pCPU is never pulled back while no pCPU idles.
Not modelled: SMT sibling idleness when tickling and stealing, weights and caps, ratelimiting, the
parked state.
"""

from typing import List, Optional

from xapi_numa.backends.sim.resched import Rescheduling
from xapi_numa.backends.sim.masks import bit, count, cycle, first, has, soft_effective

PRI_BOOST, PRI_UNDER, PRI_OVER, PRI_IDLE = 0, -1, -2, -64
CREDITS_PER_TICK = 100
TICKS_PER_TSLICE = 3
CREDITS_PER_TSLICE = CREDITS_PER_TICK * TICKS_PER_TSLICE
SOFT, HARD = 0, 1


class Credit1(Rescheduling):
    name = "credit"

    def __init__(self, host) -> None:
        self.host = host
        n = len(host.cpu_node)
        self.curr: List[Optional[object]] = [None] * n
        self.runq: List[list] = [[] for _ in range(n)]
        self.slice_end = [0] * n
        self.idlers = host.online
        self.resched = 0
        self.queued = 0  # pCPUs whose run queue is not empty
        self.last_tickle = 0
        # csched_private's balance_bias: one per node, shared by every stealing pCPU;
        # init_pdata sets it to the node's first pCPU
        self.balance_bias = [first(m) if m else 0 for m in host.node_mask]
        # _csched_cpu_pick's groups: cpu_sibling_mask (threads of a core), cpu_core_mask (a socket)
        cpus = host.topology.cpus
        self.siblings = [sum(bit(o.id) for o in cpus if (o.socket, o.core) == (c.socket, c.core)) for c in cpus]
        self.socket = [sum(bit(o.id) for o in cpus if o.socket == c.socket) for c in cpus]
        self.idle_bias = [n - 1] * n  # csched_pcpu's idle_bias: nr_cpu_ids - 1 at first

    # --- helpers ---------------------------------------------------------------
    def current(self, cpu: int):
        return self.curr[cpu]

    def _has_soft(self, v) -> bool:
        return soft_effective(v.hard, v.soft, self.host.online)

    def _aff(self, v, step: int) -> int:
        return (v.soft & v.hard) if step == SOFT else v.hard

    def _runq_insert(self, cpu: int, v) -> None:
        q = self.runq[cpu]
        i = len(q)
        while i > 0 and q[i - 1].pri < v.pri:
            i -= 1
        q.insert(i, v)
        v.queued = True
        self.queued |= bit(cpu)

    def _runq_remove(self, cpu: int, v) -> None:
        q = self.runq[cpu]
        q.remove(v)
        v.queued = False
        if not q:
            self.queued &= ~bit(cpu)

    def _runq_pop(self, cpu: int):
        q = self.runq[cpu]
        v = q.pop(0)
        v.queued = False
        if not q:
            self.queued &= ~bit(cpu)
        return v

    def _tickle_mask(self, mask: int) -> None:
        self.idlers &= ~mask
        self.resched |= mask

    # --- pCPU choice (_csched_cpu_pick) ------------------------------------------
    def _pick_cpu(self, v, commit: bool = False) -> int:
        online = self.host.online
        cur = v.processor
        cpu = cur
        biased = -1
        for step in (SOFT, HARD):
            if step == SOFT and not self._has_soft(v):
                continue
            cpus = self._aff(v, step) & online
            if step == SOFT and not cpus:
                continue
            cpu = cur if has(cpus, cur) else cycle(cur, cpus)
            idlers = self.idlers & online
            if cpu == cur and not self.runq[cur] and self.curr[cur] in (None, v):
                idlers |= bit(cur)
            candidates = cpus & idlers
            if candidates and not has(candidates, cpu):
                cpu = cycle(cpu, candidates)
            cpu, biased = self._idlest_group(cpu, candidates & ~bit(cpu), idlers, biased)
            if has(idlers, cpu):
                break
        if commit and biased >= 0:
            self.idle_bias[biased] = cpu
        return cpu

    def _idlest_group(self, cpu: int, cpus: int, idlers: int, biased: int):
        """_csched_cpu_pick's walk over the other idle candidates: move to one whose core
        has more idle threads, or whose socket has more than twice the idle pCPUs."""
        while cpus:
            nxt = cycle(cpu, cpus)
            if has(self.socket[cpu], nxt):
                factor, group = 1, self.siblings
            else:
                factor, group = 2, self.socket
            cpu_idlers, nxt_idlers = idlers & group[cpu], idlers & group[nxt]
            if count(cpu_idlers) * factor < count(nxt_idlers):
                biased = nxt
                cpu = cycle(self.idle_bias[nxt], nxt_idlers & cpus)
                cpus &= ~self.siblings[cpu]
            else:
                cpus &= ~nxt_idlers
        return cpu, biased

    def _res_pick(self, v) -> int:
        """csched_res_pick: the pick, noting that the vCPU's next wake is no real wake-up
        (CSCHED_FLAG_UNIT_MIGRATING), even if it comes long after (the vCPU asleep)."""
        v.picked = True
        return self._pick_cpu(v, commit=True)

    # --- scheduler hooks -------------------------------------------------------------
    def insert(self, v) -> None:
        """csched_unit_insert: a new vCPU gets a pCPU from the pick logic."""
        v.pri = PRI_UNDER
        v.credit = 0
        if not has(v.hard, v.processor):
            v.processor = cycle(v.processor, v.hard)
        v.processor = self._res_pick(v)

    def remove(self, v) -> None:
        self.sleep(v)
        if v.running:
            cpu = v.processor
            self.curr[cpu] = None
            v.running = False
            self.idlers |= bit(cpu)
            self.resched |= bit(cpu)
            self._run_resched()

    def sleep(self, v) -> None:
        if v.running:
            self.resched |= bit(v.processor)
            self._run_resched()
        elif v.queued:
            self._runq_remove(v.processor, v)

    def wake(self, v) -> None:
        if v.running or v.queued:
            return
        migrating, v.picked = v.picked, False  # csched_unit_wake's test_and_clear_bit
        if v.pri == PRI_UNDER and not migrating:
            v.pri = PRI_BOOST  # wakers are boosted until they burn credit
        self._runq_insert(v.processor, v)
        self._tickle(v)
        self._run_resched()

    def affinity_changed(self, v) -> None:
        """vcpu_set_affinity -> vcpu_migrate: re-pick a pCPU with the new masks."""
        if v.running:
            v.migrating = True
            self.resched |= bit(v.processor)
            self._run_resched()
            return
        was_queued = v.queued
        if was_queued:
            self._runq_remove(v.processor, v)
        if not has(v.hard, v.processor):
            v.processor = cycle(v.processor, v.hard)
        v.processor = self._res_pick(v)
        if was_queued:
            self.wake(v)

    # --- __runq_tickle -------------------------------------------------------------
    def _tickle(self, new) -> None:
        cpu = new.processor
        cur = self.curr[cpu]
        cur_pri = cur.pri if cur is not None else PRI_IDLE
        idle_mask = self.idlers & self.host.online
        mask = 0
        if cycle(cpu, new.hard) == cpu and has(idle_mask, cpu):
            mask = bit(cpu)
        elif cur is None or (not idle_mask and new.pri > cur_pri):
            mask = bit(cpu)
        elif idle_mask:
            for step in (SOFT, HARD):
                if step == SOFT and not self._has_soft(new):
                    continue
                suitable = self._aff(new, step) & idle_mask
                if not suitable and step == SOFT:
                    continue
                if not suitable and new.pri > cur_pri:
                    if new.hard & idle_mask:
                        cur.migrating = True  # "kicked away" to an idler
                    mask |= bit(cpu)
                elif suitable:
                    self.last_tickle = cycle(self.last_tickle, suitable)
                    mask |= bit(self.last_tickle)
                if mask:
                    break
        if mask:
            self._tickle_mask(mask)

    # --- csched_schedule ---------------------------------------------------------------
    def _schedule(self, cpu: int) -> None:
        host = self.host
        cur = self.curr[cpu]
        if cur is not None:
            self.curr[cpu] = None
            cur.running = False
            if cur.migrating:
                cur.migrating = False
                if host.runnable(cur):
                    cur.processor = self._pick_cpu(cur, commit=True)  # csched_res_pick, its flag spent on the wake below
                    if cur.processor == cpu:
                        self._runq_insert(cpu, cur)
                    else:
                        self._runq_insert(cur.processor, cur)
                        self._tickle(cur)
            elif host.runnable(cur):
                self._runq_insert(cpu, cur)
        q = self.runq[cpu]
        snext = q[0] if q else None
        if snext is not None and snext.pri > PRI_OVER:
            self._runq_pop(cpu)
        else:
            stolen = self._load_balance(cpu, snext.pri if snext is not None else PRI_IDLE)
            if stolen is not None:
                snext = stolen
            elif snext is not None:
                self._runq_pop(cpu)
        if snext is None:
            self.idlers |= bit(cpu)
            return
        self.idlers &= ~bit(cpu)
        self.curr[cpu] = snext
        snext.running = True
        snext.processor = cpu
        self.slice_end[cpu] = host.tick + TICKS_PER_TSLICE

    def _load_balance(self, cpu: int, pri: int):
        """Steal a queued vCPU of better priority from a busy peer pCPU."""
        host = self.host
        nr_nodes = len(host.node_mask)
        home = host.cpu_node[cpu]
        # Only busy peers with queued vCPUs have anything to steal.
        busy = host.online & ~self.idlers & ~bit(cpu) & self.queued
        for step in (SOFT, HARD):
            for k in range(nr_nodes):
                node = (home + k) % nr_nodes
                workers = busy & host.node_mask[node]
                if not workers:
                    continue
                start = cycle(self.balance_bias[node], workers)
                peer = start
                while True:
                    if self.runq[peer] and self.curr[peer] is not None:
                        v = self._steal(peer, cpu, pri, step)
                        if v is not None:
                            self.balance_bias[node] = peer
                            return v
                    peer = cycle(peer, workers)
                    if peer == start:
                        break
        return None

    def _steal(self, peer: int, cpu: int, pri: int, step: int):
        for v in self.runq[peer]:
            if v.pri <= pri:
                break
            if step == SOFT and not self._has_soft(v):
                continue
            if has(self._aff(v, step), cpu):
                self._runq_remove(peer, v)
                v.processor = cpu
                return v
        return None

    # --- time ------------------------------------------------------------------------
    def tick(self) -> None:
        host = self.host
        t = host.tick
        order = list(range(len(self.curr)))
        host.rng.shuffle(order)  # pCPUs' timers are not in lock step
        for cpu in order:
            v = self.curr[cpu]
            if v is None:
                continue
            v.credit -= CREDITS_PER_TICK
            if v.pri == PRI_BOOST:
                v.pri = PRI_UNDER
            # csched_unit_acct: a vCPU that has run a while may move to an idle pCPU.
            if not v.migrating and self._pick_cpu(v) != cpu:
                v.migrating = True
                self.resched |= bit(cpu)
            if self.slice_end[cpu] <= t:
                self.resched |= bit(cpu)
        if t % TICKS_PER_TSLICE == 0:
            self._account()
        self._run_resched(order)

    def _account(self) -> None:
        """csched_acct: share 30 ms worth of every pCPU among active domains."""
        active = {}
        for v in self.curr:
            if v is not None:
                active.setdefault(v.dom.domid, []).append(v)
        for q in self.runq:
            for v in q:
                active.setdefault(v.dom.domid, []).append(v)
        if not active:
            return
        total = CREDITS_PER_TSLICE * len(self.curr)
        per_domain = total // len(active)
        for vcpus in active.values():
            fair = -(-per_domain // len(vcpus))
            fair = min(fair, CREDITS_PER_TSLICE)
            for v in vcpus:
                v.credit = min(v.credit + fair, CREDITS_PER_TSLICE)
                v.credit = max(v.credit, -CREDITS_PER_TSLICE)
                if v.pri != PRI_BOOST:
                    v.pri = PRI_UNDER if v.credit > 0 else PRI_OVER
        # A priority change can reorder a queue.
        for q in self.runq:
            if len(q) > 1:
                q.sort(key=lambda x: -x.pri)  # stable: FIFO within a priority

    # --- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "curr": [v.key if v is not None else None for v in self.curr],
            "runq": [[v.key for v in q] for q in self.runq],
            "slice_end": self.slice_end,
            "idlers": self.idlers,
            "last_tickle": self.last_tickle,
            "node_bias": self.balance_bias,
            "idle_bias": self.idle_bias,
        }

    @classmethod
    def from_dict(cls, host, data: dict) -> "Credit1":
        s = cls(host)

        def lookup(key):
            return host.domains[key[0]].vcpus[key[1]]

        s.curr = [lookup(k) if k is not None else None for k in data["curr"]]
        s.runq = [[lookup(k) for k in q] for q in data["runq"]]
        s.queued = sum(bit(c) for c, q in enumerate(s.runq) if q)
        s.slice_end = list(data["slice_end"])
        s.idlers = data["idlers"]
        s.last_tickle = data["last_tickle"]
        if "node_bias" in data:  # files before it kept a bias per pCPU, which Xen has not: start afresh
            s.balance_bias = list(data["node_bias"])
        if "idle_bias" in data:
            s.idle_bias = list(data["idle_bias"])
        return s
