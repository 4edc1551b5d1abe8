"""Which swaps the rebalancer weighs when there are many (pure): the limit of rule 3 of :mod:`.rebalance`.

Swaps grow with the square of the VMs (a quarter of a million on a host of 800),
and weighing one walks the demand window; past a limit, only the swaps the
choice (:func:`.rebalance_choice.preference`) would rank first are weighed,
each ranked as if its gain were the two VMs' difference in mean demand.

Ranking every swap in full cost most of a look (the spread of loads over every
node, a sort key naming both VMs); the rank's first two keys (exposure, the
score to 0.01) need only what each VM brings, computed once per VM and target,
so they are computed for every swap and the full rank only for the swaps whose
first two reach the limit-th best: no other can rank among the first.  The
swaps chosen, and their order, are those of ranking every swap in full
(``bench/bench_rebalance_scale.py``).
"""
# (the moves are (VmLoad, new home) pairs of .rebalance, which imports this)
import heapq
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from xapi_numa.core.demand_window import Window
from xapi_numa.core.rebalance_choice import preference, raises_exposure
from xapi_numa.core.topology import Topology
from xapi_numa.core.units import PAGE_SIZE

MoveSet = Tuple[str, Tuple[Tuple[Any, int], ...]]  # (kind, ((VM, new home), ...))
Unit = Tuple[int, float, Dict[int, int]]  # a VM's vCPUs, its mean demand over the window, its pages per target


def promising(moves: Sequence[MoveSet], limit: int, pages_to: Callable[[Any, int], int],
              demand: Mapping[int, float], topo: Topology, homed: Mapping[int, float], window: Window,
              room: Optional[Mapping[int, int]], max_writes: Optional[int]) -> List[MoveSet]:
    """Of the swaps that fit (``room``: pages each target can take; ``max_writes``: the writes
    of a cycle), the ``limit`` ranked first, best first; ``pages_to(vm, node)``: the pages a
    VM's move to ``node`` takes there."""
    units: Dict[int, Unit] = {}  # id(VmLoad) -> Unit: the VmLoads of one look live as long as the look
    unsafe: Dict[Tuple, bool] = {}  # raises_exposure depends on the homes, targets and vCPU counts alone

    def unit(vm: Any) -> Unit:
        if id(vm) not in units:
            units[id(vm)] = (len(vm.vcpus), sum(window.samples(vm)) / window.k, {})
        return units[id(vm)]

    def cost(vm: Any, to: int) -> int:
        pages = unit(vm)[2]
        if to not in pages:
            pages[to] = pages_to(vm, to)
        return pages[to]

    def rank(move: MoveSet) -> Tuple:
        (v, to_v), (w, to_w) = move[1]
        moved = cost(v, to_v) + cost(w, to_w)
        return preference(move[1], (units[id(v)][1] - units[id(w)][1]) / (1.0 + moved * PAGE_SIZE / float(1 << 30)),
                          demand, window.capacity, topo, homed)
    fitting, keys, gib = [], [], float(1 << 30)
    for move in moves:  # (every swap: inline, as a call per swap costs as much as the rest of it)
        (v, to_v), (w, to_w) = move[1]
        u_v, u_w = units.get(id(v)) or unit(v), units.get(id(w)) or unit(w)
        c_v, c_w = u_v[2].get(to_v), u_w[2].get(to_w)
        c_v = cost(v, to_v) if c_v is None else c_v
        c_w = cost(w, to_w) if c_w is None else c_w
        if room is not None and (c_v > room.get(to_v, 0) or c_w > room.get(to_w, 0)):
            continue
        if max_writes is not None and u_v[0] + 1 + u_w[0] + 1 > max_writes:
            continue
        shape = (v.home, to_v, u_v[0], w.home, to_w, u_w[0])
        if shape not in unsafe:
            unsafe[shape] = raises_exposure(move[1], homed, window.capacity)
        fitting.append(move)  # (its score as rank() computes it, to the same float)
        keys.append((not unsafe[shape], round((u_v[1] - u_w[1]) / (1.0 + (c_v + c_w) * PAGE_SIZE / gib), 2)))
    if len(fitting) > limit > 0:
        least = heapq.nlargest(limit, keys)[-1]  # the limit-th best first two keys: a swap below is not among them
        fitting = [m for m, k in zip(fitting, keys) if k >= least]
    return heapq.nlargest(limit, fitting, key=rank)
