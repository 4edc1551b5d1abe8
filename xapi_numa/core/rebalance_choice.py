"""Which weighed move the rebalancer takes (pure): rule 5 of :mod:`.rebalance`.

A move that leaves no node more exposed first (:func:`raises_exposure`: more
vCPUs homed beyond what the nodes can run, were every VM to want all of its
vCPUs); then the most gain per GiB of memory to move; among near ties, the
most even loads, the nearest target, a stable order (:func:`preference`).
"""
# (the moves are (VmLoad, new home) pairs of .rebalance, which imports this)
from typing import Any, Dict, Mapping, Sequence, Tuple

from xapi_numa.core.topology import Topology


def homed_vcpus(vms: Sequence[Any], nodes: Sequence[int]) -> Dict[int, float]:
    """Per node, the vCPUs homed there: the most CPU its VMs can want at once."""
    out = {n: 0.0 for n in nodes}
    for vm in vms:
        for node, share in vm.loads.items():
            if node in out:
                out[node] += len(vm.vcpus) * share
    return out


def raises_exposure(moves: Sequence[Tuple[Any, int]], homed: Mapping[int, int],
                    capacity: Mapping[int, float]) -> bool:
    """Would the move leave the nodes it touches more exposed: more vCPUs homed beyond
    what they can run (the squared excess summed), were every VM to want all its vCPUs?
    A VM seen idle so far may still wake; a move that empties one node by filling
    another past it only moves the overload to where it will be once that happens."""
    touched = {vm.home for vm, _ in moves} | {to for _, to in moves}
    after = {n: float(homed[n]) for n in touched}
    for vm, to in moves:
        after[vm.home] -= len(vm.vcpus)
        after[to] += len(vm.vcpus)

    def excess(per_node: Mapping[int, float]) -> float:
        return sum(max(0.0, per_node[n] - capacity[n]) ** 2 for n in touched)
    return excess(after) > excess({n: float(homed[n]) for n in touched}) + 1e-9


def preference(moves: Sequence[Tuple[Any, int]], score: float, demand: Mapping[int, float],
               capacity: Mapping[int, float], topo: Topology, homed: Mapping[int, int]) -> Tuple:
    """A move that leaves no node more exposed first (:func:`raises_exposure`); then the
    most gain per memory moved; among (nearly) equal ones, the move that leaves the
    loads most even (least sum of squared loads), then the nearest target, then a
    stable order."""
    safe = not raises_exposure(moves, homed, capacity)
    after = dict(demand)
    for vm, to in moves:
        after[vm.home] -= vm.demand
        after[to] += vm.demand
    spread = sum((after[n] / capacity[n]) ** 2 for n in after if capacity[n])
    distance = sum(topo.distance(vm.home, to) for vm, to in moves)
    return (safe, round(score, 2), -round(spread, 3), -distance,
            [(vm.uuid, -1 if vm.vnode is None else vm.vnode, to) for vm, to in moves])
