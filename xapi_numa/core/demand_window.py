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
        self._away: Dict[int, float] = {}

    def samples(self, vm) -> Tuple[float, ...]:
        key = id(vm)  # the VmLoads of one look live as long as the look
        if key not in self._samples:
            self._samples[key] = vm.samples(self.k)
        return self._samples[key]

    def most_away(self, vm) -> float:
        """The most a move of ``vm`` alone off its home can deliver more, per period over the window
        (:meth:`gain` is at most this, but for float rounding): at each period, its own demand (what
        arrives on the target), and what its home wanted beyond capacity (the rest of what leaves
        was delivered there already).  Read once per VM, it spares weighing every target of a VM
        whose move cannot reach the rebalancer's minimum gain."""
        key = id(vm)
        if key not in self._away:
            over, c = self.series.get(vm.home), self.capacity.get(vm.home)
            self._away[key] = 0.0 if vm.home not in self.hot else sum(
                min(x, max(o - c, 0.0)) if x >= 0 else -x for x, o in zip(self.samples(vm), over)) / self.k
        return self._away[key]

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
