"""Dynamic NUMA rebalancing: move a VM's home node, and its memory after it (pure).

Placement decides once, at boot; load changes after.  When one node's VMs
want more CPU than it has while another has CPUs to spare, the rebalancer
moves one VM's *home* (its node affinity and its vCPUs' soft affinity) to the
node with room, and its memory follows through the page mover at a limited
rate until :attr:`Settings.local_enough` of it is local.  Learned from ESXi's
NUMA scheduler (home nodes, a periodic rebalancer, a minimum imbalance, swaps,
memory following at a throttled rate), Linux NUMA balancing (stop moving
memory once accesses are mostly local) and numad (a long hold-down per VM).

The rule, every period (:attr:`Settings` holds every parameter, defaults in
brackets; the caller's bookkeeping is :mod:`xapi_numa.ops.rebalancing`):

1. **Demand** per VM is the CPU it wants: its vCPUs' busy share since the last
   look (a vCPU found waiting to run wants a whole pCPU), smoothed by the
   caller (``ops.vcpu_demand.SMOOTHING`` = 0.5 for the newest period) and kept
   as one value per period over the last ``ops.vcpu_demand.WINDOW`` = 150
   periods.  A node's *load* is the demand homed on it over its pCPUs for
   guests (those of the guests' CPU pools).
2. Nothing is weighed unless the host's **imbalance**, largest minus smallest
   node load, is at least ``imbalance`` [0.10] (ESXi's 10 %).
3. **Candidates** come from one function, :func:`candidate_moves`: each
   eligible VM to each other node it may go to (``balance``), and each pair of
   eligible VMs on two nodes trading homes (``swap``, never a PV guest:
   :func:`.rebalance_swaps.may_swap`), all weighed together.  A constraint on
   what may move is a filter there only; on what a move may take (room on the
   target, the executor's writes per cycle), a filter on the weighed ones: the
   best that fits is chosen.  Past :data:`SWAPS_WEIGHED` swaps, only those
   ranked first are weighed, found without listing every swap
   (:func:`.rebalance_swaps.weighed_swaps`).
4. **Gain** of a candidate: the CPU the host delivers, ``min(D, C)`` summed
   over the nodes it touches, after minus before, averaged over the window of
   demand history (``C``: ``headroom`` [0.90] of the node's pCPUs; at 100 %
   every burst spills vCPUs onto other nodes, away from their memory).  Over
   the window, a VM whose bursts come when the target's VMs are quiet is
   worth moving, one whose bursts coincide with theirs is not, and a move that
   only trades one phase's overload for the next gains nothing.  Positive only
   when a source node is over ``C`` and the target has room under it (0 moves
   on the steady trace); a candidate must gain ``min_gain`` [0.25] pCPUs.
5. **Exposure, then cost.**  A move that leaves the nodes it touches more
   *exposed* (:func:`raises_exposure`: more vCPUs homed beyond what they can
   run, were every VM to want all its vCPUs) comes after every move that does
   not: the window shows what idle VMs did, not what they will do, so on the
   bursty trace a busy VM is traded for one of the target's idle ones (a swap)
   rather than piled onto them.  Then the most gain per GiB of memory to move
   (plus one; pages short of ``local_enough`` on the target, so memory
   already there counts) wins; near ties (score to 0.01) go to the most even
   loads (least sum of squared loads), the nearest target (SLIT), a stable order.
6. A decision is carried out only once a move worth making has stood for
   ``sustain`` [2] consecutive periods (the caller counts), never for a VM
   whose home moved in the last ``hold_down`` [300] s (numad's 5 minutes; the
   caller marks it).  Then up to ``per_period`` [4] moves are made at once, less
   the VMs homed back to their memory that period (:func:`.rebalance_plan.back_moves`), each
   weighed on the loads the ones before leave (:mod:`.rebalance_plan`); a move left
   for the next period by those (:attr:`Assessment.deferred`) has stood all the same.
7. **Memory follows** the new home through the page mover at ``rate`` [64
   MiB/s, 1 GiB in 15 s] from the period the home moves until ``local_enough``
   [0.90] of it is local (:func:`.rebalance_moves.follow_memory`; a step aims
   at ``follow_target`` [0.95], lest a page left behind strand it at 89.99 %).
8. **Memory that cannot move** (PV guests; HVM guests with QEMU, passthrough:
   :attr:`VmLoad.fixed_memory`): the home moves only when the CPU gained
   outweighs running with all its memory remote, by ``pv_margin`` [0.10]
   (SLIT distance, assumed memory-boundness :data:`ASSUMED_MEMORY_BOUND`).
   Memory that can move needs room: a target whose free memory (less claims
   and the ledger's reservations, the caller's ``room``) cannot take the pages
   to move is no target, and a follow step never takes more than that.
9. **vNUMA guests move vnode by vnode.**  A guest shown a NUMA topology was
   promised that each vnode lives on one pnode: each vnode is a unit
   (:attr:`VmLoad.vnode`) weighed with its own vCPUs' demand, its memory and
   its pnode as home; a candidate moves one whole vnode (cost: every page of
   it), never part of one, and a swap never trades two vnodes of one VM.  Its
   action (:func:`xapi_numa.core.vnode_units.vnode_move_actions`): the vnode's
   vCPUs' soft affinity, the domain's node affinity, then its memory through
   the page mover with the vnode's ranges, whose last step records the new
   vnode -> pnode map.  The hold-down is per VM: one vnode moved holds all.

Never touched: what the caller marks not movable (``strict``/``any`` VMs, admin
hard pins, unknown policies or pages, a vNUMA layout that cannot be read, a
domain not yet run or paused, a move in flight, rebalancing switched off for it) and
homes over several nodes; ``allowed`` limits the targets (a ``preferred``
list, the VM's CPU pool).

What a home move cannot do: a home is soft affinity, and credit2's balancer
looks only at run-queue load, pushing vCPUs away from their memory until
homing brings them back (:mod:`.homing`).  On the bursty trace (seed 1,
``bench/bench_rebalance.py``, 2026-12-03) the best home layout known in
advance runs 4.6 % of its CPU time remote and gets 1.20x static placement's
work (as hard affinity: none remote, 1.21x); the rebalancer 1.20x
(``bench/trace_rebalance.py`` says where the work goes).
"""
import math
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import attrs

from xapi_numa.core.demand_window import Window, sound_samples
from xapi_numa.core.rebalance_choice import homed_vcpus, preference, raises_exposure  # noqa: F401 (tests read it here)
from xapi_numa.core.rebalance_swaps import MoveSet, Ranker, may_go, may_swap, swappable, weighed_swaps
from xapi_numa.core.topology import Topology

ASSUMED_MEMORY_BOUND = 0.5  # for PV home moves: how much remote memory slows a typical guest
ROUNDING = 1e-6  # pCPUs: far beyond what float rounding adds to a gain summed over the window, far below min_gain
PAGE = 4096


@attrs.frozen
class Settings:
    imbalance: float = 0.10        # largest minus smallest node load worth acting on
    min_gain: float = 0.25         # pCPUs of extra delivered CPU a move must bring
    sustain: int = 2               # periods a decision must stand before it is carried out
    hold_down: float = 300.0       # seconds before the same VM's home moves again
    local_enough: float = 0.90     # memory follows until this share is local
    follow_target: float = 0.95    # a follow step aims this high (step 7)
    rate: float = 64 << 20         # bytes/s the memory follows at
    pv_margin: float = 0.10        # a PV guest must run this much faster after its home moves
    headroom: float = 0.90         # a node counts as full at this share of its pCPUs: at 100 % every
                                   # burst spills vCPUs onto other nodes, away from their memory
    per_period: int = 4            # moves carried out in one period, back to memory ones too (rebalance_plan)


@attrs.frozen
class VmLoad:
    """One VM as the rebalancer sees it."""

    domid: int
    uuid: str
    name: str
    home: Optional[int]                 # its single home node, or None (several, or none)
    vcpus: Tuple[int, ...]              # vCPU ids
    demand: float                       # pCPUs it wants (smoothed)
    pages: Mapping[int, int]            # pages per node
    type: str = "pvh"
    movable: bool = True                # eligible for a home move (policy, pins, switches)
    allowed: Optional[FrozenSet[int]] = None  # nodes a preferred policy allows (None: any)
    history: Tuple[float, ...] = ()     # demand over the recent window, oldest first (aligned across VMs)
    vnode: Optional[int] = None         # a vNUMA guest is weighed vnode by vnode: this unit is that vnode
                                        # (its vCPUs, its memory, its pnode as home), and moves only whole
    fixed_memory: bool = False          # its memory cannot follow (QEMU's map cache, passthrough), as for PV
    shares: Mapping[int, float] = attrs.field(factory=dict)  # home None: the share of its vCPUs homed per node

    @property
    def loads(self) -> Mapping[int, float]:
        """The share of its demand each node carries: all on its home, or spread as its
        vCPUs' homes are (a VM homed on several nodes loads them all, though never moved)."""
        return {self.home: 1.0} if self.home is not None else self.shares

    @property
    def unit(self) -> Tuple[str, Optional[int]]:
        """What moves as one: the VM, or one vnode of a vNUMA VM."""
        return (self.uuid, self.vnode)

    @property
    def label(self) -> str:
        return self.name if self.vnode is None else "{} vnode {}".format(self.name, self.vnode)

    def samples(self, k: int) -> Tuple[float, ...]:
        """Its demand over the last ``k`` periods (padded with the oldest value known)."""
        known = self.history or (self.demand,)
        return (known[0],) * (k - len(known)) + tuple(known[-k:])

    @property
    def memory_stays(self) -> bool:
        return self.type == "pv" or self.fixed_memory

    def local_share(self, node: int) -> float:
        total = sum(self.pages.values())
        return self.pages.get(node, 0) / total if total else 1.0


@attrs.frozen
class Candidate:
    kind: str                           # "balance" (one VM) or "swap" (two)
    moves: Tuple[Tuple[VmLoad, int], ...]  # (VM, new home)
    gain: float                         # pCPUs more delivered
    pages: int                          # pages to move
    score: float

    def key(self) -> Tuple:
        return tuple((vm.unit, to) for vm, to in self.moves)

    @property
    def writes(self) -> int:
        """Affinity writes the move makes: each vCPU's soft affinity, each VM's node affinity."""
        return sum(len(vm.vcpus) + 1 for vm, _ in self.moves)

    def explain(self, loads: Mapping[int, float]) -> str:
        parts = ["{} ({:.2f} pCPUs) node {} -> {}".format(vm.label, vm.demand, vm.home, to) for vm, to in self.moves]
        return "{}: {}; +{:.2f} pCPUs delivered, {} MiB to move; node loads {}".format(
            self.kind, ", ".join(parts), self.gain, self.pages * PAGE >> 20,
            ", ".join("{}:{:.2f}".format(n, l) for n, l in sorted(loads.items())))


@attrs.frozen
class Assessment:
    loads: Mapping[int, float]          # demand / capacity per node
    imbalance: float
    best: Optional[Candidate]
    reason: str                          # why nothing, or what the best is
    more: Tuple[Candidate, ...] = ()     # further moves, weighed with the ones before made (rebalance_plan)
    deferred: Optional[Candidate] = None  # the best move, left to the next period: this one's moves are made
    dropped: Tuple[str, ...] = ()        # demand samples not taken, one reason per VM (demand_window.sound_samples)

    @property
    def chosen(self) -> Tuple[Candidate, ...]:
        return () if self.best is None else (self.best,) + self.more

    def to_dict(self) -> dict:
        out = {"loads": {str(n): round(l, 3) for n, l in sorted(self.loads.items())},
               "imbalance": round(self.imbalance, 3), "reason": self.reason}
        if self.best is not None:
            out.update(candidate=_candidate_dict(self.best), more=[_candidate_dict(c) for c in self.more])
        if self.deferred is not None:
            out.update(deferred=_candidate_dict(self.deferred))
        if self.dropped:
            out.update(dropped_samples=list(self.dropped))
        return out


def _candidate_dict(c: Candidate) -> dict:
    return {"kind": c.kind, "gain_pcpus": round(c.gain, 3), "pages": c.pages, "score": round(c.score, 4),
            "moves": [{"vm": vm.name, "uuid": vm.uuid, "from": vm.home, "to": to, "vnode": vm.vnode}
                      for vm, to in c.moves]}


def node_demand(vms: Sequence[VmLoad], nodes: Sequence[int]) -> Dict[int, float]:
    out = {n: 0.0 for n in nodes}
    for vm in vms:
        for node, share in vm.loads.items():
            if node in out:
                out[node] += vm.demand * share
    return out


def pages_to_move(vm: VmLoad, to: int, local_enough: float) -> int:
    total = sum(vm.pages.values())
    if vm.vnode is not None:  # a vnode moves whole, every page of it
        return total - vm.pages.get(to, 0)
    return max(0, int(math.ceil(local_enough * total)) - vm.pages.get(to, 0))


def _pv_gains(vm: VmLoad, to: int, demand: Mapping[int, float], capacity: Mapping[int, float],
              topo: Topology, margin: float) -> bool:
    """Would a PV guest, its memory staying where it is, run faster homed on ``to``?"""
    before = min(1.0, capacity[vm.home] / demand[vm.home]) if demand[vm.home] else 1.0
    after_cpu = min(1.0, capacity[to] / (demand[to] + vm.demand)) if demand[to] + vm.demand else 1.0
    total = sum(vm.pages.values()) or 1
    distance = sum(p * topo.distance(to, n) for n, p in vm.pages.items()) / total
    slowdown = 1.0 + ASSUMED_MEMORY_BOUND * (distance / 10.0 - 1.0)
    return after_cpu / slowdown >= before * (1.0 + margin)


def _eligible(vm: VmLoad, to: int) -> bool:
    """May the VM's home move to ``to`` (its old home must be one the rebalancer knows)?"""
    return vm.movable and vm.home is not None and to != vm.home and may_go(vm, to)


def assess(vms: Sequence[VmLoad], topo: Topology, settings: Settings = Settings(),
           capacity: Optional[Mapping[int, float]] = None, room: Optional[Mapping[int, int]] = None,
           max_writes: Optional[int] = None) -> Assessment:
    """The node loads and the best move now, with the numbers behind it; ``room``: pages
    each node can take, ``max_writes``: affinity writes a move may make (None: no limit).
    A demand sample that is no finite number >= 0 is dropped first (:func:`.demand_window.sound_samples`)."""
    vms, dropped = sound_samples(vms)
    return attrs.evolve(look(vms, topo, settings, capacity, room, max_writes)[0], dropped=dropped)


def look(vms: Sequence[VmLoad], topo: Topology, settings: Settings = Settings(),
         capacity: Optional[Mapping[int, float]] = None, room: Optional[Mapping[int, int]] = None,
         max_writes: Optional[int] = None, window: Optional[Window] = None) -> Tuple[Assessment, Optional[Window]]:
    """:func:`assess` of VMs whose samples are sound already, and the demand window it judged on:
    ``window``, that of ``vms`` if the caller has it (:meth:`.demand_window.Window.moved`), else
    one built here if the host is imbalanced (None: balanced, none built)."""
    capacity = capacity or {n.id: float(len(n.cpus)) for n in topo.nodes}
    nodes = [n.id for n in topo.nodes if capacity.get(n.id)]  # a node with no pCPU for guests is no home
    usable = {n: capacity[n] * settings.headroom for n in nodes}
    demand = node_demand(vms, nodes)
    loads = {n: demand[n] / capacity[n] if capacity[n] else 0.0 for n in nodes}
    imbalance = max(loads.values()) - min(loads.values()) if loads else 0.0
    if imbalance < settings.imbalance:
        return Assessment(loads, imbalance, None, "balanced: node loads differ by {:.0%} (< {:.0%})".format(
            imbalance, settings.imbalance)), window
    if window is None:
        window = Window(vms, usable, max([len(vm.history) for vm in vms] + [1]))
    homed = homed_vcpus(vms, nodes)
    ranker = Ranker(window, lambda vm, to: pages_to_move(vm, to, settings.local_enough), demand, topo, homed)
    swaps = weighed_swaps(_swap_units(vms, nodes), SWAPS_WEIGHED, ranker, window.hot, room, max_writes)
    weighed = [c for moves in (candidate_moves(vms, nodes), swaps) for c in _weigh(moves, topo, demand, window,
                                                                                   settings)]
    candidates = [c for c in weighed if (room is None or fits_room(c, room, settings))
                  and (max_writes is None or c.writes <= max_writes)]
    if not candidates:
        over = max_writes is not None and any(c.writes > max_writes for c in weighed)
        return Assessment(loads, imbalance, None, "imbalanced by {:.0%}, but no eligible move gains {:.2f} "
                          "pCPUs{}".format(imbalance, settings.min_gain, " within the budget of {} writes per "
                                           "cycle".format(max_writes) if over else "")), window
    best = max(candidates, key=lambda c: preference(c.moves, c.score, demand, usable, topo, homed))
    return Assessment(loads, imbalance, best, best.explain(loads)), window


def incoming_pages(c: Candidate, settings: Settings) -> Dict[int, int]:
    """Pages the candidate's memory moves bring to each target node."""
    out: Dict[int, int] = {}
    for vm, to in c.moves:
        if not vm.memory_stays:
            out[to] = out.get(to, 0) + pages_to_move(vm, to, settings.local_enough)
    return out


def fits_room(c: Candidate, room: Mapping[int, int], settings: Settings) -> bool:
    """Can every target take the memory that follows?  (A swap's outgoing pages are not
    counted: the two movers run apart, and a full node would make each spill.)"""
    return all(pages <= room.get(to, 0) for to, pages in incoming_pages(c, settings).items())


def _candidate(kind: str, moves: Sequence[Tuple[VmLoad, int]], gain: float, settings: Settings) -> Candidate:
    pages = sum(pages_to_move(vm, to, settings.local_enough) for vm, to in moves if not vm.memory_stays)
    # gain per GiB to move, plus one so that a move with nothing to copy does not divide by zero
    return Candidate(kind, tuple(moves), gain, pages, gain / (1.0 + pages * PAGE / float(1 << 30)))


# Swaps weighed exactly per look: pairs grow with the square of the VMs (tens of
# thousands on a host with a few hundred), and weighing one walks the window
SWAPS_WEIGHED = 256


def _swap_units(vms: Sequence[VmLoad], nodes: Sequence[int]) -> List[VmLoad]:
    """The VMs a swap may take (:func:`.rebalance_swaps.swappable`), homed on one of ``nodes``."""
    known = set(nodes)
    return [vm for vm in vms if vm.home in known and swappable(vm)]


def candidate_moves(vms: Sequence[VmLoad], nodes: Sequence[int], swaps: bool = False) -> List[MoveSet]:
    """Every move the rule may weigh, before any is weighed: with ``swaps`` false, each
    eligible VM to each other node it may go to (``"balance"``); with ``swaps`` true,
    each pair of eligible VMs homed on two nodes trading homes (``"swap"``, the busier
    one first; never a PV guest, whose memory cannot follow).  A vNUMA VM comes as one
    unit per vnode (:attr:`VmLoad.vnode`): a move takes one whole vnode, and a swap
    never takes two vnodes of the same VM (nor a split: no unit smaller than a vnode
    exists here).

    The one place that says which moves exist: a constraint on what may move is a
    filter here, or, for a swap, in :func:`.rebalance_swaps.may_swap`, which a look reads
    without listing every swap (:func:`.rebalance_swaps.weighed_swaps`)."""
    if not swaps:
        known = set(nodes)
        return [("balance", ((vm, to),)) for vm in vms if vm.home in known for to in nodes if _eligible(vm, to)]
    units = _swap_units(vms, nodes)
    return [("swap", ((v, w.home), (w, v.home))) for v in units for w in units if may_swap(v, w)]


def _weigh(moves: Sequence[MoveSet], topo: Topology, demand: Mapping[int, float], window: Window,
           settings: Settings) -> List[Candidate]:
    """The moves that gain at least :attr:`Settings.min_gain`, with their gain and cost
    (a PV guest's home only where that alone is a net gain).  The swaps come limited to
    :data:`SWAPS_WEIGHED` (:func:`.rebalance_swaps.weighed_swaps`)."""
    out = []
    capacity = window.capacity
    hot = window.hot
    # no node it touches was ever over capacity: it cannot deliver more
    if not hot.issuperset(capacity):  # (every home and target is one of these nodes: all hot, none goes)
        moves = [m for m in moves if any(vm.home in hot or to in hot for vm, to in m[1])]
    for kind, pairs in moves:
        if kind == "balance" and window.most_away(pairs[0][0]) + ROUNDING < settings.min_gain:
            continue  # (its gain is no more, to any target)
        gain = window.gain(pairs)
        if gain < settings.min_gain:
            continue
        if kind == "balance" and pairs[0][0].memory_stays and not _pv_gains(
                pairs[0][0], pairs[0][1], demand, capacity, topo, settings.pv_margin):
            continue
        out.append(_candidate(kind, pairs, gain, settings))
    return out
