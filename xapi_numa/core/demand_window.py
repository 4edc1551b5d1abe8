"""Demand over the rebalancer's window, per node, and the CPU a change of homes delivers (pure).

The rebalancer judges a move by the CPU the host would have delivered over
the window of demand history (:mod:`xapi_numa.core.rebalance`, rule 4): per
node touched, ``min(demand, capacity)`` summed over the window, after the
move minus before, averaged.  :class:`Window` computes what every candidate
of one look shares once (each node's series and its clipped sum, each VM's
samples), so that weighing one candidate costs two passes over the window per
node it touches: on a host with a few hundred VMs a look weighs thousands.
"""
from typing import Dict, List, Mapping, Optional, Sequence, Tuple


def node_series(vms: Sequence, nodes: Sequence[int], k: int) -> Dict[int, List[float]]:
    """Per node, the demand of the VMs homed there over the last ``k`` periods."""
    out = {n: [0.0] * k for n in nodes}
    for vm in vms:
        for node, share in vm.loads.items():
            if node in out:
                out[node] = [a + b * share for a, b in zip(out[node], vm.samples(k))]
    return out


class Window:
    """One look's demand window: the nodes' series over ``k`` periods, and the CPU a
    set of (VM, new home) moves delivers (:meth:`gain`)."""

    def __init__(self, vms: Sequence, capacity: Mapping[int, float], k: int) -> None:
        self.k = k
        self.capacity = capacity
        self.series = node_series(vms, list(capacity), k)
        self.clipped = {n: sum(min(d, capacity[n]) for d in s) for n, s in self.series.items()}
        # the nodes whose demand went over capacity: a move touching none of them cannot deliver more
        self.hot = {n for n, s in self.series.items() if s and max(s) > capacity[n]}
        self._samples: Dict[int, Tuple[float, ...]] = {}

    def samples(self, vm) -> Tuple[float, ...]:
        key = id(vm)  # the VmLoads of one look live as long as the look
        if key not in self._samples:
            self._samples[key] = vm.samples(self.k)
        return self._samples[key]

    def gain(self, moves: Sequence[Tuple[object, int]]) -> float:
        """Extra CPU delivered per period, averaged over the window."""
        change: Dict[int, Optional[List[float]]] = {}
        for vm, to in moves:
            s = self.samples(vm)
            for node, sign in ((vm.home, -1.0), (to, 1.0)):
                before = change.get(node)
                change[node] = ([sign * x for x in s] if before is None
                                else [b + sign * x for b, x in zip(before, s)])
        total = 0.0
        for node, delta in change.items():
            c = self.capacity[node]
            total += sum(min(a + d, c) for a, d in zip(self.series[node], delta)) - self.clipped[node]
        return total / self.k
