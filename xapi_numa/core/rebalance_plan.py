"""Several home moves in one rebalancer period (pure): the best, then the best after it.

:func:`xapi_numa.core.rebalance.assess` finds the one best move on the loads it
is given.  When two nodes are over capacity at once (on the bursty trace
both nodes of a phase are), carrying out one move per period leaves the
other node overloaded for another ``sustain`` periods at least.  :func:`plan`
makes the best move on paper, weighs again on the loads it leaves (its VMs'
homes moved; they, and every vnode of theirs, not movable again: the
hold-down is per VM), and so on, up to :attr:`~xapi_numa.core.rebalance.Settings.per_period`
moves.  Each further move must gain on its own, by the same rule, as if the
ones before were made; nothing is moved twice.  A VM homed back to its memory
(:func:`back_moves`) is a move of the period too: made first, it leaves the
planner ``per_period`` less those.  The demand window is built once per plan, and
moved on with each move (:meth:`.demand_window.Window.moved`).

Measured (bench/bench_rebalance.py, bursty): the two overloaded nodes of a
phase are relieved in the same period instead of 6 s apart.
"""
from typing import List, Mapping, Optional, Sequence, Tuple

import attrs

from xapi_numa.core.demand_window import sound_samples
from xapi_numa.core.rebalance import Assessment, Candidate, Settings, VmLoad, incoming_pages, look
from xapi_numa.core.topology import Topology


def made(vms: Sequence[VmLoad], candidate: Candidate) -> List[VmLoad]:
    """The VMs as they are once ``candidate`` is carried out: its units homed where it
    sends them, and every unit of the VMs it moves held (the hold-down is per VM)."""
    moved = {vm.unit: to for vm, to in candidate.moves}
    held = {vm.uuid for vm, _ in candidate.moves}
    return [attrs.evolve(vm, home=moved.get(vm.unit, vm.home), movable=False) if vm.uuid in held else vm
            for vm in vms]


def plan(vms: Sequence[VmLoad], topo: Topology, settings: Settings = Settings(),
         capacity: Optional[Mapping[int, float]] = None, room: Optional[Mapping[int, int]] = None,
         max_writes: Optional[int] = None, already: int = 0) -> Assessment:
    """:func:`~xapi_numa.core.rebalance.assess`, with the further moves worth making in
    the same period once its best is made (:attr:`Assessment.more`); ``room``: pages each
    node can take, less what the moves before bring; ``max_writes``: the executor's
    affinity writes per cycle, each move weighed on what the ones before leave of it (a
    move over that is no candidate: the best within it is made, never half a move);
    ``already``: moves this period has made before (:func:`back_moves`), counted against
    ``per_period`` (none left: no move, the best one :attr:`~.rebalance.Assessment.deferred`:
    it stood this period, and its sustain count goes on)."""
    vms, dropped = sound_samples(vms)  # (once: every look takes these)
    first, window = look(vms, topo, settings, capacity, room, max_writes)  # (its window moved on, not built again)
    first = attrs.evolve(first, dropped=dropped)
    if already >= settings.per_period and first.best is not None:
        return attrs.evolve(first, best=None, deferred=first.best, reason="no further move this period: its {} "
                            "moves are made; next: {}".format(settings.per_period, first.reason))
    more: List[Candidate] = []
    current, last = list(vms), first
    while last.best is not None and already + len(more) + 1 < settings.per_period:
        current = made(current, last.best)
        window = window.moved(last.best.moves, current)  # (a best was found on one)
        if room is not None:
            taken = incoming_pages(last.best, settings)
            room = {n: r - taken.get(n, 0) for n, r in room.items()}
        if max_writes is not None:  # what the moves before leave of it
            max_writes -= last.best.writes
        last, window = look(current, topo, settings, capacity, room, max_writes, window)
        if last.best is not None:
            more.append(last.best)
    if not more:
        return first
    reason = "; then ".join([first.reason] + [c.explain(last.loads).split("; node loads")[0] for c in more])
    return attrs.evolve(first, more=tuple(more), reason=reason)


def within_budget(moves: List[Candidate], max_writes: Optional[int]) -> List[Candidate]:
    """The moves, in order, as far as their writes fit ``max_writes`` together (None: all)."""
    out, used = [], 0
    for c in moves:
        if max_writes is not None and used + c.writes > max_writes:
            break
        out.append(c)
        used += c.writes
    return out


def back_moves(backs: Sequence[Tuple[VmLoad, int]], settings: Settings, max_writes: Optional[int]) -> List[Candidate]:
    """VMs homed back to their memory (:func:`.rebalance_moves.back_to_memory`), each a move of
    its own, in order, as far as they fit the writes (``max_writes``) and ``per_period``: they
    count against the period's moves as any other (:func:`plan` is told how many were made)."""
    return within_budget([Candidate("back to its memory", ((vm, to),), 0.0, 0, 0.0) for vm, to in backs],
                         max_writes)[:settings.per_period]
