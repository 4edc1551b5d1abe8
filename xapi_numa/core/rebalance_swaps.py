"""Which swaps the rebalancer weighs (pure): the limit of rule 3 of :mod:`.rebalance`, reached without
listing every swap.

Swaps grow with the square of the VMs (half a million on a host of 1000), and
weighing one walks the demand window.  A swap is two VMs homed on two nodes
trading homes, one of them a node whose demand went over capacity in the
window (no other swap can deliver more), the busier first (:func:`may_swap`:
the rule; :func:`.rebalance.candidate_moves` lists every swap by it).  Up to
``limit`` such swaps, all are weighed; past it, only the ``limit`` swaps the
choice (:func:`.rebalance_choice.preference`) would rank first among those
that fit, each ranked as if its gain were the two VMs' difference in mean
demand over the window (:class:`Ranker`).

Listing and ranking every pair to find those was most of a look at 500 VMs
and more (8 s at 1000 VMs on 32 nodes), so neither is done.  The rank's
first two keys (exposure; the score to 0.01) decide which swaps can be among
the first: a swap whose first two keys are below the ``limit``-th best is
not.  Per VM, its partners on each other node (of each vCPU count, so that
exposure is one value) are read in order of mean demand; the score of every
partner after one is at most the VM's mean less that one's over the least
memory any of them moves (:func:`_bound`).  The partners are read
best bound first across all VMs, a swap read is ranked in full once its first
two keys may be among the first, and reading stops at the ``limit``-th swap
out: no swap left unread can rank above it.

Like VMs (clones of a template: the same mean, memory to move, demand and
vCPUs) make swaps that rank alike but for the VMs' names, the rank's last key:
before 2026-12-07 every swap tied at the cut was read to rank them by name
(110 381 swaps, 1.2 s, at 1000 such VMs on 16 nodes).  Now like VMs are read
as one run, highest name first, each run's swaps one at a time only as far as
the first ``limit`` take (:class:`_Ahead`): a look reads about one swap per run
and node pair beyond the ``limit``.  The swaps weighed, and their order, are
those of ranking every swap in full (``tests/test_rebalance_swaps.py``).
"""
# (the moves are (VmLoad, new home) pairs of .rebalance, which imports this)
import heapq
import itertools
from bisect import bisect_left
from typing import AbstractSet, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from xapi_numa.core.demand_window import Window
from xapi_numa.core.rebalance_choice import preference, raises_exposure
from xapi_numa.core.topology import Topology
from xapi_numa.core.units import PAGE_SIZE

MoveSet = Tuple[str, Tuple[Tuple[Any, int], ...]]  # (kind, ((VM, new home), ...))
GIB = float(1 << 30)


def may_go(vm: Any, node: int) -> bool:
    """Does the VM's policy allow ``node`` (a ``preferred`` list, its CPU pool)?"""
    return vm.allowed is None or node in vm.allowed


def swappable(vm: Any) -> bool:
    """May the VM trade homes (its home known to the caller): movable, and its memory can follow."""
    return vm.movable and not vm.memory_stays


def may_swap(v: Any, w: Any) -> bool:
    """Is (v to w's home, w to v's home) a swap, two :func:`swappable` VMs given: two homes, v the
    busier, two VMs (never two vnodes of one), each node allowed to the VM going there."""
    return (v.home != w.home and not v.demand <= w.demand and v.uuid != w.uuid
            and may_go(v, w.home) and may_go(w, v.home))


def _score(mean_v: float, mean_w: float, pages_v: int, pages_w: int) -> float:
    """The rank's score of a swap: the difference in mean demand per GiB to move (plus one)."""
    return (mean_v - mean_w) / (1.0 + (pages_v + pages_w) * PAGE_SIZE / GIB)


class Ranker:
    """One look's rank of swaps (:func:`.rebalance_choice.preference`, the gain taken as the two
    VMs' difference in mean demand), with what each VM brings computed once per look."""

    def __init__(self, window: Window, pages_to: Callable[[Any, int], int], demand: Mapping[int, float],
                 topo: Topology, homed: Mapping[int, float]) -> None:
        self.window, self.pages_to, self.demand, self.topo, self.homed = window, pages_to, demand, topo, homed
        self._mean: Dict[int, float] = {}  # id(VmLoad): the VmLoads of one look live as long as the look
        self._pages: Dict[Tuple[int, int], int] = {}
        self._unsafe: Dict[Tuple, bool] = {}  # raises_exposure reads the homes, targets and vCPU counts alone

    def mean(self, vm: Any) -> float:
        if id(vm) not in self._mean:
            self._mean[id(vm)] = sum(self.window.samples(vm)) / self.window.k
        return self._mean[id(vm)]

    def pages(self, vm: Any, to: int) -> int:
        if (id(vm), to) not in self._pages:
            self._pages[(id(vm), to)] = self.pages_to(vm, to)
        return self._pages[(id(vm), to)]

    def safe(self, move: MoveSet) -> bool:
        (v, to_v), (w, to_w) = move[1]
        shape = (v.home, to_v, len(v.vcpus), w.home, to_w, len(w.vcpus))
        if shape not in self._unsafe:
            self._unsafe[shape] = raises_exposure(move[1], self.homed, self.window.capacity)
        return not self._unsafe[shape]

    def score(self, move: MoveSet) -> float:
        (v, to_v), (w, to_w) = move[1]
        return _score(self.mean(v), self.mean(w), self.pages(v, to_v), self.pages(w, to_w))

    def rank(self, move: MoveSet) -> Tuple:
        return preference(move[1], self.score(move), self.demand, self.window.capacity, self.topo, self.homed)


def _touching(hot: AbstractSet[int], nodes: AbstractSet[int]) -> Callable[[int, int], bool]:
    """Does a swap between two nodes touch one whose demand went over capacity (``hot``)?  When
    every node did, no swap is left out."""
    everywhere = hot.issuperset(nodes)
    return lambda a, b: everywhere or a in hot or b in hot


def _by_node(units: Sequence[Any]) -> Dict[int, List[Tuple[int, Any]]]:
    out: Dict[int, List[Tuple[int, Any]]] = {}
    for i, vm in enumerate(units):
        out.setdefault(vm.home, []).append((i, vm))
    return out


def _listed(units: Sequence[Any], near: Callable[[int, int], bool]) -> Iterator[Tuple[int, int, MoveSet]]:
    """Every swap near a hot node, with its VMs' places in ``units``, lazily: per pair of nodes,
    each VM with the partners less busy than it (by demand, as :func:`may_swap`)."""
    homes = _by_node(units)
    ordered = all(vm.demand == vm.demand for vm in units)  # (a demand that is not a number cannot be sorted)
    for a, b in itertools.permutations(homes, 2):
        if not near(a, b):
            continue
        partners = sorted(((w.demand, j, w) for j, w in homes[b] if may_go(w, a)), key=lambda p: (p[0], p[1]))
        demands = [d for d, _, _ in partners]
        for i, v in homes[a]:
            if may_go(v, b):
                for _, j, w in partners[:bisect_left(demands, v.demand) if ordered else len(partners)]:
                    if may_swap(v, w):
                        yield i, j, ("swap", ((v, b), (w, a)))


def _name(vm: Any) -> Tuple[str, int]:
    """What orders two otherwise equal swaps in the rank (:func:`.rebalance_choice.preference`'s last key)."""
    return (vm.uuid, -1 if vm.vnode is None else vm.vnode)


class _Partners:
    """The VMs of one node that may go to one other node, of one vCPU count, fitting its room, by
    mean demand; with the least and most pages any of them from each place on moves, and where each
    run of like ones ends (the same mean, pages and demand: their swaps with one VM rank alike but
    for their names, read highest first)."""

    def __init__(self, found: List[Tuple[float, int, Any]]) -> None:
        found.sort(key=lambda p: _name(p[2]), reverse=True)
        found.sort(key=lambda p: (p[0], p[1], p[2].demand))  # (stable: like ones keep their names' order)
        self.means = [m for m, _, _ in found]
        self.pages = [p for _, p, _ in found]
        self.vms = [vm for _, _, vm in found]
        self.least, self.most, self.end = list(self.pages), list(self.pages), [len(found)] * len(found)
        for i in range(len(found) - 2, -1, -1):
            self.least[i] = min(self.least[i], self.least[i + 1])
            self.most[i] = max(self.most[i], self.most[i + 1])
            if found[i][:2] != found[i + 1][:2] or self.vms[i].demand != self.vms[i + 1].demand:
                self.end[i] = i + 1
            else:
                self.end[i] = self.end[i + 1]


def _bound(mean: float, pages: int, partners: _Partners, i: int) -> float:
    """The highest score of the VM's swap with any of ``partners`` from the ``i``-th on: their mean
    demand is at least the ``i``-th's, and the memory moved at least (for a gain; at most for a
    loss) the least (most) from there on.  Computed with the score's own float operations, each
    monotonic, so it bounds the score as computed."""
    ahead = mean - partners.means[i]
    return _score(mean, partners.means[i], pages, partners.least[i] if ahead > 0 else partners.most[i])


class _Ahead:
    """A heap entry: the swaps of some of ``like`` (VMs alike but for their names, highest first) with
    ``partners`` from the ``i``-th on, and the best rank any of them can have (heapq's least first).
    ``first`` None: a bound, for every one of ``like`` and every partner from ``i`` on; else the rank
    of ``like[first]`` with the ``i``-th partner, which ranks above the rest of the run (the
    partners before ``partners.end[i]``, with that VM and every one of ``like`` after it), or, not
    ``ranked`` yet, its first two keys (above any rank with those)."""

    __slots__ = ("rank", "seq", "like", "partners", "i", "first", "run", "ranked")

    def __init__(self, rank: Tuple, seq: int, like: List[Any], partners: _Partners, i: int,
                 first: Optional[int] = None, run: int = 0, ranked: bool = False) -> None:
        self.rank, self.seq, self.like, self.partners, self.i, self.first, self.run, self.ranked = \
            rank, seq, like, partners, i, first, run, ranked

    def __lt__(self, other: "_Ahead") -> bool:
        return self.rank > other.rank or (self.rank == other.rank and self.seq < other.seq)


def _like(vms: Sequence[Any], key: Callable[[Any], Tuple]) -> List[List[Any]]:
    """The VMs in runs of equal ``key``, each run highest name first."""
    runs: Dict[Tuple, List[Any]] = {}
    for vm in vms:
        runs.setdefault(key(vm), []).append(vm)
    return [sorted(run, key=_name, reverse=True) for run in runs.values()]


def _ranked_first(units: Sequence[Any], limit: int, ranker: Ranker, near: Callable[[int, int], bool],
                  room: Optional[Mapping[int, int]], max_writes: Optional[int]) -> List[MoveSet]:
    """Of the swaps near a hot node that fit, the ``limit`` ranked first, best first (see the module's
    docstring)."""
    homes = _by_node(units)

    def fits(vm: Any, to: int) -> bool:
        return room is None or ranker.pages(vm, to) <= room.get(to, 0)
    lists: Dict[Tuple[int, int, int], List[Tuple[float, int, Any]]] = {}
    for b, a in itertools.permutations(homes, 2):
        if near(a, b):
            for _, w in homes[b]:
                if may_go(w, a) and fits(w, a):
                    lists.setdefault((b, a, len(w.vcpus)), []).append((ranker.mean(w), ranker.pages(w, a), w))
    heap, seq = [], itertools.count()

    def bound(like: List[Any], partners: _Partners, i: int) -> _Ahead:
        v = like[0]
        safe = ranker.safe(("swap", ((v, partners.vms[0].home), (partners.vms[0], v.home))))  # (one for all)
        return _Ahead((safe, round(_bound(ranker.mean(v), ranker.pages(v, partners.vms[0].home), partners, i), 2),
                       1), next(seq), like, partners, i)  # (1: above any swap of that score, unread)

    def exact(like: List[Any], partners: _Partners, i: int, first: int, run: int, ranked: bool = True) -> _Ahead:
        move = ("swap", ((like[first], partners.vms[i].home), (partners.vms[i], like[first].home)))
        if not ranked:  # (a full rank costs a pass over the nodes: read only for a score that may be among the first)
            return _Ahead((ranker.safe(move), round(ranker.score(move), 2), 1), next(seq), like, partners, i, first,
                          run, False)
        rank = ranker.rank(move)
        return _Ahead(rank[:2] + (0,) + rank[2:], next(seq), like, partners, i, first, run, True)
    for (b, a, vcpus), found in lists.items():
        partners = _Partners(found)
        movers = [v for _, v in homes[a] if may_go(v, b) and fits(v, b)
                  and (max_writes is None or len(v.vcpus) + vcpus + 2 <= max_writes)]
        for like in _like(movers, lambda v: (ranker.mean(v), ranker.pages(v, b), v.demand, len(v.vcpus))):
            heap.append(bound(like, partners, 0))
    heapq.heapify(heap)
    out: List[MoveSet] = []
    while heap and len(out) < limit:
        top = heapq.heappop(heap)
        like, partners, i = top.like, top.partners, top.i
        if top.first is None:  # a bound: the run of partners it begins is read as one, the rest stays a bound
            heapq.heappush(heap, exact(like, partners, i, 0, i, ranked=False))
            if partners.end[i] < len(partners.vms):
                heapq.heappush(heap, bound(like, partners, partners.end[i]))
            continue
        if not top.ranked:
            heapq.heappush(heap, exact(like, partners, i, top.first, top.run))
            continue
        v, w = like[top.first], partners.vms[i]
        if may_swap(v, w):
            out.append(("swap", ((v, w.home), (w, v.home))))
        elif v.demand <= w.demand:
            continue  # (so are the demands of every swap left of the run: none of them is one)
        if i + 1 < partners.end[i]:
            heapq.heappush(heap, exact(like, partners, i + 1, top.first, top.run))
        elif top.first + 1 < len(like):
            heapq.heappush(heap, exact(like, partners, top.run, top.first + 1, top.run))
    return out


def weighed_swaps(units: Sequence[Any], limit: int, ranker: Ranker, hot: AbstractSet[int],
                  room: Optional[Mapping[int, int]], max_writes: Optional[int]) -> List[MoveSet]:
    """The swaps a look weighs: of :func:`swappable` ``units`` (in the caller's order), every swap
    near a ``hot`` node in the order :func:`.rebalance.candidate_moves` lists them when there are
    at most ``limit``; else, of those that fit (``room``: pages each target can take;
    ``max_writes``: the writes of a cycle), the ``limit`` ranked first, best first."""
    if limit <= 0:
        return []
    near = _touching(hot, set(ranker.window.capacity))
    listed = list(itertools.islice(_listed(units, near), limit + 1))
    if len(listed) <= limit:
        return [move for _, _, move in sorted(listed, key=lambda found: found[:2])]
    return _ranked_first(units, limit, ranker, near, room, max_writes)
