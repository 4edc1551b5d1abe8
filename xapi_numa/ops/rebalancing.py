"""The rebalancer's bookkeeping around the pure planner (:mod:`xapi_numa.core.rebalance`).

Between periods it keeps what the planner needs to remember: each VM's
smoothed CPU demand (from its vCPUs' CPU time, a vCPU found waiting to run
counting as wanting a whole pCPU), how many consecutive periods the current
best move has stood, when each VM's home last moved (the home-move log in the
state database, which survives restarts), and how far each VM's memory has
followed its new home.  Every period it turns a snapshot into
:class:`~xapi_numa.core.rebalance.VmLoad` values, asks the planner, and
returns the actions for the executor, with the assessment that explains them.

A VM's home is what its affinity says with homing's temporary pins left out
(such a pin may still hold a vCPU on the node its VM was just moved away
from).  The first step of memory following goes out in the period the home
moves, with the home move itself.
"""
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Set, Tuple

import attrs

from xapi_numa.core import locality, rebalance
from xapi_numa.core.policy import Policy
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMove, HomeMoves

SMOOTHING = 0.5  # weight of the newest period in the demand average
WINDOW = 150     # periods of demand history the planner judges moves on (5 minutes at 2 s)


@attrs.frozen
class Decision:
    assessment: rebalance.Assessment
    actions: Tuple[object, ...]
    streak: int
    note: str


def guest_capacity(snap: HostSnapshot) -> Dict[int, float]:
    """pCPUs per node that guests may run on: those of their CPU pools (dom0's own pool,
    on a host split that way, is no home for a guest)."""
    pools = {d.cpupool for d in snap.domains if d.domid != 0}
    cpus = frozenset().union(*(snap.pools.get(p, snap.topology.all_cpus) for p in pools)) if pools \
        else snap.topology.all_cpus
    return {n.id: float(len(n.cpus & cpus)) for n in snap.topology.nodes}


def _without_our_pins(uuid: str, vcpus, topo, our_pins: Set[Tuple[str, int]]) -> list:
    """The vCPUs as their homes are meant: a temporary pin of homing's is no home (it may
    still hold a vCPU on the node the rebalancer just moved its VM away from, and counting
    it there would make the planner move another VM to the same node)."""
    return [attrs.evolve(v, hard=topo.all_cpus) if (uuid, v.vcpu) in our_pins else v for v in vcpus]


class Rebalancer:
    def __init__(self, db: Database, settings: rebalance.Settings = rebalance.Settings(),
                 policy_of: Optional[Callable[[str], Policy]] = None,
                 opted_out: Optional[Callable[[str], bool]] = None) -> None:
        self.settings = settings
        self.homes = HomeMoves(db)
        self.policy_of = policy_of or (lambda uuid: Policy())
        self.opted_out = opted_out or (lambda uuid: False)
        self.demand: Dict[str, float] = {}
        self.history: Dict[str, List[float]] = {}  # uuid -> smoothed demand, one value per period
        self._cpu: Dict[Tuple[str, int], Tuple[float, float]] = {}  # (uuid, vcpu) -> (cpu_time, when)
        self._streak = 0  # consecutive periods with a move worth making
        self.followed: Dict[str, Tuple[int, int]] = {}  # uuid -> (home it follows, pages moved so far)

    # --- what the planner is told ----------------------------------------------------------------------
    def observe_demand(self, snap: HostSnapshot) -> None:
        """Update every VM's smoothed demand from its vCPUs since the last look."""
        seen: Set[Tuple[str, int]] = set()
        for d in snap.domains:
            if d.domid == 0:
                continue
            wanted = 0.0
            for v in snap.vcpus.get(d.domid, ()):
                key = (d.uuid, v.vcpu)
                seen.add(key)
                before = self._cpu.get(key)
                self._cpu[key] = (v.cpu_time, snap.time)
                busy = 0.0
                if before is not None and snap.time > before[1]:
                    busy = min(1.0, max(0.0, (v.cpu_time - before[0]) / (snap.time - before[1])))
                elif v.state == "running":
                    busy = 1.0
                wanted += 1.0 if v.state == "runnable" else busy
            old = self.demand.get(d.uuid)
            self.demand[d.uuid] = wanted if old is None else SMOOTHING * wanted + (1 - SMOOTHING) * old
            self.history.setdefault(d.uuid, []).append(self.demand[d.uuid])
            del self.history[d.uuid][:-WINDOW]
        self._cpu = {k: v for k, v in self._cpu.items() if k in seen}
        alive = {d.uuid for d in snap.domains}
        self.demand = {u: x for u, x in self.demand.items() if u in alive}
        self.history = {u: x for u, x in self.history.items() if u in alive}
        self.followed = {u: x for u, x in self.followed.items() if u in alive}

    def loads(self, snap: HostSnapshot, pages: Mapping[str, Mapping[int, int]], excluded: Set[int],
              now: float, our_pins: Set[Tuple[str, int]] = frozenset()) -> List[rebalance.VmLoad]:
        topo = snap.topology
        last = self.homes.last_moved()
        out = []
        for d in snap.domains:
            if d.domid == 0:
                continue
            vcpus = snap.vcpus.get(d.domid, ())
            homes = locality.home_nodes(_without_our_pins(d.uuid, vcpus, topo, our_pins), topo)
            home = next(iter(homes)) if len(homes) == 1 else None
            movable, allowed = self._eligibility(d.uuid, vcpus, topo, our_pins)
            movable = movable and d.domid not in excluded and now - last.get(d.uuid, float("-inf")) >= \
                self.settings.hold_down
            out.append(rebalance.VmLoad(d.domid, d.uuid, d.name, home, tuple(v.vcpu for v in vcpus),
                                        self.demand.get(d.uuid, 0.0), dict(pages.get(d.uuid, {})), d.type,
                                        movable, allowed, tuple(self.history.get(d.uuid, ()))))
        return out

    def _eligibility(self, uuid: str, vcpus, topo, our_pins) -> Tuple[bool, Optional[FrozenSet[int]]]:
        if self.opted_out(uuid):
            return False, None
        policy = self.policy_of(uuid)
        if policy.mode in ("any", "strict"):
            return False, None
        if any(not v.hard >= topo.all_cpus and (uuid, v.vcpu) not in our_pins for v in vcpus):
            return False, None  # an admin hard pin (a temporary pin of homing's is not one)
        return True, (frozenset(policy.nodes) if policy.mode == "preferred" and policy.nodes else None)

    # --- the decision -------------------------------------------------------------------------------------
    def decide(self, snap: HostSnapshot, pages: Mapping[str, Mapping[int, int]], excluded: Set[int],
               chunk_pages: Optional[int] = None, our_pins: Set[Tuple[str, int]] = frozenset(),
               record: bool = True) -> Decision:
        """The actions of this period.  ``record=False``: a dry run (nothing is logged as
        moved, and the memory-follow progress is left as it is)."""
        now = snap.time
        self.observe_demand(snap)
        vms = self.loads(snap, pages, excluded, now, our_pins)
        assessment = rebalance.assess(vms, snap.topology, self.settings, guest_capacity(snap))
        actions: List[object] = []
        note = assessment.reason
        # the imbalance must be sustained; the move made is the best one at that moment
        streak = self._streak + 1 if assessment.best is not None else 0
        self._streak = streak
        if assessment.best is not None and (streak >= self.settings.sustain or not record):
            actions += self._move_homes(assessment.best, snap, now, record)
            if record:
                self._streak = 0
                # memory starts following in the same period: a period's worth more of it local
                homes = {vm.uuid: to for vm, to in assessment.best.moves}
                vms = [attrs.evolve(vm, home=homes[vm.uuid]) if vm.uuid in homes else vm for vm in vms]
            note = ("moving: " if record else "would move: ") + assessment.reason
        elif assessment.best is not None:
            note = "waiting ({}/{} periods): {}".format(streak, self.settings.sustain, assessment.reason)
        actions += self._follow_ups(vms, excluded, chunk_pages)
        return Decision(assessment, tuple(actions), streak, note)

    def _move_homes(self, best: rebalance.Candidate, snap: HostSnapshot, now: float,
                    record: bool = True) -> List[object]:
        out: List[object] = []
        for vm, to in best.moves:
            reason = "{} move: {}".format(best.kind, best.explain({}).split("; node loads")[0])
            out += rebalance.home_move_actions(vm, to, snap.topology, reason)
            if record:
                self.homes.record(HomeMove(vm.uuid, now, vm.home, to, best.kind, reason))
                self.followed[vm.uuid] = (to, 0)
        return out

    def _follow_ups(self, vms: List[rebalance.VmLoad], excluded: Set[int],
                    chunk_pages: Optional[int]) -> List[object]:
        """Memory follows the homes we moved, until enough of it is local."""
        out: List[object] = []
        for vm in vms:
            state = self.followed.get(vm.uuid)
            if state is None or vm.domid in excluded or vm.home != state[0]:
                continue
            step = rebalance.follow_memory(vm, self.settings, state[1], chunk_pages)
            if step is None:
                del self.followed[vm.uuid]  # enough is local: done following
                continue
            out.append(step)
        return out

    def moved(self, uuid: str, pages: int) -> None:
        """A follow-up step was started for ``pages`` more pages."""
        if uuid in self.followed:
            to, done = self.followed[uuid]
            self.followed[uuid] = (to, done + pages)

    def counts(self) -> Dict[str, int]:
        return self.homes.counts()
