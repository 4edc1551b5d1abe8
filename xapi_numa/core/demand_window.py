"""Demand over the rebalancer's window, per node, and the CPU a change of homes delivers (pure).

The rebalancer judges a move by the CPU the host would have delivered over
the window of demand history (:mod:`xapi_numa.core.rebalance`, rule 4): per
node touched, ``min(demand, capacity)`` summed over the window, after the
move minus before, averaged.  :class:`Window` computes what every candidate
of one look shares once (each node's series and its clipped sum, each VM's
samples), so that weighing one candidate costs two passes over the window per
node it touches: on a host with a few hundred VMs a look weighs thousands.
A sample that is not a finite number >= 0 (a broken reading, a divide by a
zero interval) would make every sum it enters NaN or inf, and a NaN compares
false both ways: the moves chosen then depend on the VMs' order (a NaN gain
passes the minimum, ``max`` and ``sorted`` keep whatever came first).  Such a
sample is dropped where the planner takes the VMs in (:func:`sound_samples`),
the one before it standing in, with a reason to log.
A period's plan makes up to four looks, each on the homes the moves before
leave: :meth:`Window.moved` sums again only the nodes a move touched, each
VM's samples read once per plan (before 2026-12-07 each look read them all
again).
"""
import copy
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import attrs


INF = float("inf")


def _sound(x: float) -> bool:
    return 0.0 <= x < INF  # (NaN compares false)


def _stand_ins(history: Sequence[float]) -> Tuple[float, ...]:
    """The history with each unsound sample replaced by the sound one before it (the first sound one
    for those before any); empty if none is sound."""
    good = [x for x in history if _sound(x)]
    if not good:
        return ()
    out, last = [], good[0]
    for x in history:
        last = x if _sound(x) else last
        out.append(last)
    return tuple(out)


def sound_samples(vms: Sequence) -> Tuple[List, Tuple[str, ...]]:
    """The VMs (attrs values with ``demand``, ``history``, ``movable``) with every demand sample a
    finite number >= 0: one that is not is dropped, the sample before it standing in (for the
    demand now, the newest sound sample); a VM with none sound is taken as idle and not moved.
    With one reason per VM changed, for the log (the same while the same samples are in the window)."""
    out, dropped = [], []
    for vm in vms:
        h = vm.history
        if _sound(vm.demand) and (not h or (min(h) >= 0.0 and sum(h) < INF)):  # (a NaN makes the sum NaN)
            out.append(vm)
            continue
        bad = [x for x in h if not _sound(x)]
        if not bad and _sound(vm.demand):  # (a sum of sound samples beyond float's range)
            out.append(vm)
            continue
        history = _stand_ins(h)
        known = bool(history) or _sound(vm.demand)
        out.append(attrs.evolve(vm, history=history, movable=vm.movable and known,
                                demand=vm.demand if _sound(vm.demand) else history[-1] if history else 0.0))
        what = (["{} demand sample(s) ({})".format(len(bad), ", ".join(sorted({repr(x) for x in bad})))]
                * bool(bad) + ["its demand now ({!r})".format(vm.demand)] * (not _sound(vm.demand)))
        dropped.append("{} ({}): {} dropped, not a finite number >= 0; {}".format(
            vm.label, vm.uuid, " and ".join(what),
            "the sample before each stands in" if known else "none left: taken as idle, not moved"))
    return out, tuple(dropped)


def node_series(vms: Sequence, nodes: Sequence[int], k: int,
                samples: Optional[Callable[[object], Tuple[float, ...]]] = None) -> Dict[int, List[float]]:
    """Per node, the demand of the VMs homed there over the last ``k`` periods (``samples``: a VM's
    last ``k``, if the caller keeps them)."""
    out = {n: [0.0] * k for n in nodes}
    for vm in vms:
        for node, share in vm.loads.items():
            if node in out:
                out[node] = [a + b * share for a, b in zip(out[node], vm.samples(k) if samples is None
                                                           else samples(vm))]
    return out


class Window:
    """One look's demand window: the nodes' series over ``k`` periods, and the CPU a
    set of (VM, new home) moves delivers (:meth:`gain`)."""

    def __init__(self, vms: Sequence, capacity: Mapping[int, float], k: int) -> None:
        self.k = k
        self.capacity = capacity
        self._samples: Dict[object, Tuple[float, ...]] = {}
        self.series = node_series(vms, list(capacity), k, self.samples)
        self.clipped = {n: self._clipped(n) for n in self.series}
        # the nodes whose demand went over capacity: a move touching none of them cannot deliver more
        self.hot = {n for n in self.series if self._over(n)}
        self._away: Dict[int, float] = {}

    def _clipped(self, node: int) -> float:
        return sum(min(d, self.capacity[node]) for d in self.series[node])

    def _over(self, node: int) -> bool:
        return bool(self.series[node]) and max(self.series[node]) > self.capacity[node]

    def moved(self, moves: Sequence[Tuple[object, int]], vms: Sequence) -> "Window":
        """The window once ``moves`` (VM, new home) are made, ``vms`` as they are then (in the same
        order: each node's series is summed as a new window would, to the last bit)."""
        touched = [n for n in self.series if n in {vm.home for vm, _ in moves} | {to for _, to in moves}]
        out = copy.copy(self)  # (its samples shared: they are the same VMs')
        out._away = {}  # (read off the homes' series)
        out.series = dict(self.series)
        out.series.update(node_series(vms, touched, self.k, self.samples))
        out.clipped = dict(self.clipped)
        out.clipped.update((n, out._clipped(n)) for n in touched)
        out.hot = {n for n in self.hot if n not in touched} | {n for n in touched if out._over(n)}
        return out

    def samples(self, vm) -> Tuple[float, ...]:
        key = vm.unit  # (one VmLoad per unit in a look; the same unit's samples after its home moved)
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
