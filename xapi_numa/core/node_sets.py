"""Sets of NUMA nodes by distance: maximal cliques and the lowest-mean subset search.  Pure.

The placement engine (:mod:`xapi_numa.core.placement`) finds the lowest
maximum distance through the maximal cliques of "distance <= threshold"
graphs, and the lowest mean distance among the subsets of the fitting
cliques with :class:`SubsetSearch` (branch and bound, exact unless its
budget of ``SEARCH_BUDGET`` expansions runs out, which it reports; among its
bounds :class:`PairFloor`, the least pair sum any r nodes can have); equally
close sets are told apart by :func:`striping_score`.  A set holds a VM only
where Xen's build over it keeps the VM's memory there
(:class:`xapi_numa.core.set_room.BuildRoom`).
"""

from bisect import bisect_left
from itertools import accumulate
from operator import add
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from xapi_numa.core.single_node import FRAG_WEIGHT, cv, fragmentation, used_memory

SEARCH_BUDGET = 20000  # subsets expanded per decision, at most
SEED_AFTER = 256  # sets expanded before greedy sets are sought (most searches end before)
CLIQUE_BUDGET = 20000  # steps listing a threshold's cliques before node_groups covers them otherwise


def bits(mask: int):
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class _OverBudget(Exception):
    pass


def maximal_cliques(adjacency: Sequence[int], budget: Optional[int] = None) -> Optional[List[int]]:
    """All maximal cliques (as bit masks) of a graph; Bron-Kerbosch with pivot.  None when
    listing them takes more than ``budget`` steps (a step: one call of the recursion)."""
    out: List[int] = []
    steps = [0]

    def expand(r: int, p: int, x: int) -> None:
        steps[0] += 1
        if budget is not None and steps[0] > budget:
            raise _OverBudget()
        if not p and not x:
            out.append(r)
            return
        pivot = max(bits(p | x), key=lambda u: bin(p & adjacency[u]).count("1"))
        for v in list(bits(p & ~adjacency[pivot])):
            expand(r | (1 << v), p & adjacency[v], x & adjacency[v])
            p &= ~(1 << v)
            x |= 1 << v

    try:
        expand(0, (1 << len(adjacency)) - 1, 0)
    except _OverBudget:
        return None
    return out


def node_groups(sym: Sequence[Sequence[int]], threshold: int) -> Tuple[List[List[int]], bool]:
    """Groups of nodes that hold every set of nodes all within ``threshold`` of each other, and
    whether every subset of a group is (then the groups are the maximal cliques of the graph
    "distance <= threshold").  A table of many irregular distances has millions of cliques (64
    nodes, 30 random distances: 3.3 million at one threshold, 14 s, and 29 s for all of them):
    past ``CLIQUE_BUDGET`` steps each node with its neighbours of higher ids stands in, a group for
    every set's lowest node, whose subsets the search must check (``SubsetSearch``'s ``within``)."""
    n = len(sym)
    adjacency = [sum(1 << j for j in range(n) if j != i and sym[i][j] <= threshold) for i in range(n)]
    cliques = maximal_cliques(adjacency, CLIQUE_BUDGET)
    if cliques is not None:
        return [list(bits(c)) for c in cliques], True
    return [[v] + [u for u in bits(adjacency[v]) if u > v] for v in range(n)], False


def fitting_clique(sym: Sequence[Sequence[int]], threshold: int, cap: Sequence[int], cpus: Sequence[int],
                   need: int, vneed: int,
                   keeps: Optional[Callable[[List[int]], bool]] = None) -> Optional[List[int]]:
    """Nodes all within ``threshold`` of each other that have ``need`` memory and ``vneed`` CPUs
    between them (and, given ``keeps``, keep the VM's build), [] when none do, None when ``CLIQUE_BUDGET``
    steps did not tell: where the groups are not cliques (``node_groups``), whether a threshold fits
    (so that the max distance stays exact), and a set for the search to beat.
    Depth first, big nodes first, each set once; a branch ends where all it may still add is short."""
    order = sorted((v for v in range(len(sym)) if cap[v] > 0), key=lambda v: (-cap[v], v))
    near = [sum(1 << q for q, u in enumerate(order) if u != v and sym[v][u] <= threshold) for v in order]
    caps, cpu_of = [cap[v] for v in order], [cpus[v] for v in order]
    steps = [0]

    def find(chosen: List[int], left: int, have: int, cpu: int) -> Optional[List[int]]:
        if have >= need and cpu >= vneed and (keeps is None or keeps(chosen)):
            return chosen
        while left:
            steps[0] += 1
            if steps[0] > CLIQUE_BUDGET:
                raise _OverBudget()
            if have + sum(caps[q] for q in bits(left)) < need or cpu + sum(cpu_of[q] for q in bits(left)) < vneed:
                return None
            q = (left & -left).bit_length() - 1
            found = find(chosen + [order[q]], left & near[q], have + caps[q], cpu + cpu_of[q])
            if found is not None:
                return found
            left &= ~(1 << q)
        return None

    try:
        return find([], (1 << len(order)) - 1, 0, 0) or []
    except _OverBudget:
        return None


def set_mean(sym: Sequence[Sequence[int]], nodes: Sequence[int]) -> float:
    """Mean distance over all ordered pairs of ``nodes``, the diagonal included."""
    return sum(sym[a][b] for a in nodes for b in nodes) / (len(nodes) * len(nodes))


def smallest_prefix(order: Sequence[int], avail: Sequence[int], need: int,
                    keeps: Optional[Callable[[List[int]], bool]] = None) -> Optional[List[int]]:
    """The first nodes of ``order`` (those with room) that have ``need`` and, given ``keeps``,
    keep the VM's build (``BuildRoom.keeps``); None if no prefix does."""
    have = 0
    for i, node in enumerate(order):
        have += avail[node]
        if have >= need:
            nodes = [n for n in order[:i + 1] if avail[n] > 0] or [order[0]]
            if keeps is None or keeps(nodes):
                return nodes
    return None


def striping_score(avail: Sequence[int], sizes: Sequence[int], need: int) -> Callable[[List[int]], float]:
    """The tie-break among equally close sets, as a function of the set: the host's
    memory CV plus ``FRAG_WEIGHT`` x its fragmentation once ``need`` bytes are striped
    over the set (Xen's round robin: each node gives an equal share until it runs out,
    the others make up for it), the measure the single-node rule uses."""
    n = len(avail)
    used = used_memory(avail, sizes)
    free_after = sum(avail) - need
    # The score depends on the set only through its nodes' (free, used) figures, in the
    # order it stripes them (the CV and the largest hole are over multisets): sets alike
    # in them score exactly alike, and on a host of identical nodes (a uniform 64-node
    # table) the search meets thousands of those.
    seen: Dict[tuple, float] = {}

    def score(nodes: List[int]) -> float:
        key = tuple((avail[x], used[x]) for x in sorted(nodes, key=lambda m: (avail[m], m)))
        if key not in seen:
            seen[key] = _score(nodes)
        return seen[key]

    def _score(nodes: List[int]) -> float:
        after = dict((x, avail[x]) for x in nodes)
        left = need
        for k, x in enumerate(sorted(nodes, key=lambda m: (avail[m], m))):
            take = min(after[x], left // (len(nodes) - k))
            after[x] -= take
            left -= take
        memory = [used[i] + avail[i] - after[i] if i in after else used[i] for i in range(n)]
        hole = max(after[i] if i in after else avail[i] for i in range(n))
        return cv(memory) + FRAG_WEIGHT * fragmentation(free_after, hole)
    return score


class PairFloor:
    """``floor[r]``: at most the sum of pairwise distances of any r of these nodes (``rows``:
    their distances to each other).  In a set of r, each node's links to the other r - 1 are
    at least its r - 1 shortest; a pair is two nodes' links, so the r nodes whose shortest
    links add up least, halved, are a floor.  Unlike the shortest distance times the pairs,
    it knows how few nodes are near each other (four to a socket: a fifth is far).
    Worked out for each r when first asked: most searches ask for a few small r only."""

    def __init__(self, rows: Sequence[Sequence[int]]) -> None:
        self._rows = rows
        self._shortest: List[List[int]] = []  # each node's shortest links, added up (sorted when first asked)
        self._twice = [0, 0]  # the floor before it is halved: the r nodes' shortest links

    def twice(self, r: int) -> int:
        if len(self._twice) <= r and not self._shortest:
            self._shortest = [list(accumulate(sorted(row[:p] + row[p + 1:]))) for p, row in enumerate(self._rows)]
        while len(self._twice) <= r:
            size = len(self._twice)
            self._twice.append(sum(sorted(links[size - 2] for links in self._shortest)[:size]))
        return self._twice[r]

    def __getitem__(self, r: int) -> int:
        return (self.twice(r) + 1) // 2

    def most_nodes(self, num: int, den: int, best_k: int) -> int:
        """The most nodes a set can have and still beat the mean ``num / den`` (or tie it with
        at most ``best_k`` nodes).  Each node's mean shortest link grows with r, and so the
        average a of the r least; with every link over 10, a - (a - 10) / r, the mean the
        floor allows (unhalved and not rounded), grows with r: a size already worse by it
        ends the look."""
        most = 0
        for s in range(1, len(self._rows) + 1):
            if (10 * s + 2 * self[s]) * den < num * s * s + (s <= best_k):
                most = s
            elif (10 * s + self.twice(s)) * den > num * s * s:
                break
        return most


class SubsetSearch:
    """Branch and bound for the fitting subset with the lowest mean distance.

    Sets compare by (mean, node count, score, vCPU load, node ids) among those with the
    capacity and, given ``keeps``, those it says keep the VM's memory on them, where
    ``score(nodes)`` (optional; 0 without it) rates the host after the VM's
    memory is striped over the set: the placement engine's tie-break among
    sets as close as each other, computed only for a set that ties the best
    so far on mean and node count.

    Depth first, nodes in order of free memory.  A node is added to the
    current set only if some set with it can still beat or tie the best
    (:meth:`_limit`): a set of r more nodes needs at least the memory and CPUs
    missing (so r is at least the fewest of the biggest nodes left that hold
    them), adds at least the r cheapest links to the current set, and at least
    ``PairFloor`` among its new nodes.  After ``SEED_AFTER`` sets without
    an end the search takes a greedy set from each node (:meth:`_seed`) as one
    to beat: depth first in memory order can spend its whole budget under a
    first set that is far from the best.  Both only ever cut sets that could
    not have won, so the answer is exact when the budget is not exhausted;
    when it is, the sets expanded are a subsequence of those the plain search
    (cheapest links and the shortest distance per new pair, no seed) would have
    expanded, each with a best at least as good, so the answer is never worse.

    ``within``: only sets whose nodes are all that close to each other, for members that are not
    a clique of them (``node_groups``); a node joins a set only if it is that near all of its nodes.
    ``first``: a set of them that fits, considered before the first run (as a seed is).
    """

    def __init__(self, sym, cap, cpus, vcpus_on, pcpus, need: int, vneed: int,
                 score: Optional[Callable[[List[int]], float]] = None,
                 keeps: Optional[Callable[[List[int]], bool]] = None, within: Optional[int] = None,
                 first: Optional[List[int]] = None) -> None:
        self.sym, self.cap, self.cpus, self.vcpus_on, self.pcpus = sym, cap, cpus, vcpus_on, pcpus
        self.need, self.vneed, self.score, self.keeps, self.within = need, vneed, score, keeps, within
        self._first = first  # a set that fits (fitting_clique's) to beat from the start, if any
        self.best: Optional[tuple] = None
        self.expanded = 0
        self.exhausted = False
        self._best_mean = (0, 1)  # the best mean as a fraction: the cuts compare it exactly
        self._most_nodes = 0  # the most nodes a set can have and still tie the best mean

    def run(self, members: Sequence[int]) -> None:
        cap, cpus = self.cap, self.cpus
        order = sorted(members, key=lambda m: (-cap[m], m))  # big nodes first: early fits, early cuts
        m = len(order)
        caps, node_cpus = [cap[x] for x in order], [cpus[x] for x in order]
        self._prefix_cap = [0] + list(accumulate(caps))
        prefix_cpu = [0] + list(accumulate(node_cpus))
        self._suffix_cap = [self._prefix_cap[m] - before for before in self._prefix_cap]
        self._suffix_cpu = [prefix_cpu[m] - before for before in prefix_cpu]
        self._most_cpus = list(accumulate(reversed(node_cpus), max))[::-1] + [0]
        self._order = order
        # each node's distances to the others in search order: a set's links to every
        # candidate (its cross sums) grow by one row per node added, never summed afresh
        self._rows = [list(map(self.sym[x].__getitem__, order)) for x in order]
        self._pair_floor = PairFloor(self._rows)
        # each node's neighbours (by search position) as a mask: all of them without ``within``
        self._near = [-1 if self.within is None else sum(1 << q for q, d in enumerate(row) if d <= self.within)
                      for row in self._rows]
        self._seeded = False
        self._sizes_left()
        if self._first:
            first, self._first = self._first, None
            self._consider(first, sum(self.sym[a][b] for a in first for b in first if a < b))
        self._expand(0, [], 0, 0, 0, [0] * m, [0] * m)

    def _key(self, chosen: List[int], pairsum: int) -> Optional[tuple]:
        """The set's key, or None when its mean and node count already lose to the best."""
        k = len(chosen)
        mean = (10 * k + 2 * pairsum) / (k * k)
        if self.best is not None and (mean, k) > self.best[:2]:
            return None  # the score is only worth computing for a tie or better
        pcpus = sum(self.pcpus[x] for x in chosen) or 1
        score = self.score(chosen) if self.score is not None else 0.0
        return (mean, k, score, sum(self.vcpus_on[x] for x in chosen) / pcpus, tuple(sorted(chosen)))

    def _consider(self, chosen: List[int], pairsum: int) -> None:
        key = self._key(chosen, pairsum)
        # the build (the dearest) only for a set that would be the best: one Xen's build lets part of
        # the VM out of is passed over (its supersets are still tried)
        if key is not None and (self.best is None or key < self.best) and (self.keeps is None or self.keeps(chosen)):
            closer = self.best is None or key[:2] != self.best[:2]
            self.best = key
            if closer:
                k = len(chosen)
                self._best_mean = (10 * k + 2 * pairsum, k * k)
                self._sizes_left()

    def _sizes_left(self) -> None:
        """The most nodes a set of this run can have and still beat the best (or tie it
        with no more nodes), by ``PairFloor``."""
        if self.best is None:
            self._most_nodes = len(self._order)
            return
        self._most_nodes = self._pair_floor.most_nodes(*self._best_mean, self.best[1])

    def _fewest_more(self, i: int, have: int, cpu: int) -> int:
        """The fewest nodes of order[i:] that hold the memory and CPUs missing, at least one."""
        fewest = 1
        if have < self.need:
            fewest = bisect_left(self._prefix_cap, self._prefix_cap[i] + self.need - have, lo=i) - i
        if cpu < self.vneed:
            fewest = max(fewest, -(-(self.vneed - cpu) // self._most_cpus[i]))
        return fewest

    def _limit(self, i: int, k: int, pairsum: int, cross: List[int], have: int, cpu: int) -> Optional[int]:
        """The largest sum of links to the ``k`` chosen nodes that a candidate of order[i:] may
        have and still be in a set that beats or ties the best (a tie with more nodes than
        the best loses); None when no candidate may.  With r more nodes, a candidate's
        links add to the r - 1 cheapest others' (or to the r cheapest, when it is one)."""
        num, den = self._best_mean
        best_k = self.best[1]
        ranked = sorted(cross[i:])
        floor = self._pair_floor
        fewest = self._fewest_more(i, have, cpu)
        before = sum(ranked[:fewest - 1])
        limit = None
        for r in range(fewest, min(len(ranked), self._most_nodes - k) + 1):
            s = k + r
            # the s nodes' pairs may add up to (num * s * s - 10 * s * den) / (2 * den) at most (less for a tie
            # of more nodes): what the r cheapest other links and the new nodes' own pairs leave of it
            room = num * s * s - 10 * s * den
            room = (room // (2 * den) if s <= best_k else -(-room // (2 * den)) - 1) - pairsum - before - floor[r]
            if room >= ranked[r - 1] and (limit is None or room > limit):
                limit = room
            before += ranked[r - 1]
        return limit

    def _seed(self) -> None:
        """A set grown greedily from each node (the nearest next, the biggest among equals)
        until it holds the VM, each considered: sets of this run's nodes that fit, so the
        answer can only be better for them."""
        order, rows, cap, cpus = self._order, self._rows, self.cap, self.cpus
        far = 1 << 62  # (the link sum of a node taken, so that it is never the nearest again)
        for start in range(len(order)):
            cross, chosen = self._nearby(list(rows[start]), start, far), [start]
            pairsum, have, cpu = 0, cap[order[start]], cpus[order[start]]
            while have < self.need or cpu < self.vneed:
                p = min(range(len(order)), key=cross.__getitem__)
                if cross[p] >= far:
                    break
                pairsum += cross[p]
                chosen.append(p)
                have, cpu = have + cap[order[p]], cpu + cpus[order[p]]
                cross = self._nearby(list(map(add, cross, rows[p])), p, far)
            else:
                self._consider([order[p] for p in chosen], pairsum)

    def _nearby(self, cross: List[int], p: int, far: int) -> List[int]:
        """``cross`` with ``far`` for p and, given ``within``, for every node not near p."""
        near = self._near[p]
        if near != -1:
            cross = [c if near >> q & 1 else far for q, c in enumerate(cross)]
        cross[p] = far
        return cross

    def _expand(self, i: int, chosen: List[int], pairsum: int, have: int, cpu: int, cross: List[int],
                row: List[int], allowed: int = -1) -> None:
        """``cross[p] + row[p]``: the sum of order[p]'s distances to the chosen nodes (the
        last one's row added here, past the cheap cuts: most sets expanded end at them);
        ``allowed``: the positions near every chosen node (``within``); past the budget a set is
        turned away, not counted as expanded."""
        if self.expanded >= SEARCH_BUDGET:
            self.exhausted = True
            return
        self.expanded += 1
        if self.expanded == SEED_AFTER and not self._seeded:
            self._seeded = True
            self._seed()
        if chosen and have >= self.need and cpu >= self.vneed:
            self._consider(chosen, pairsum)
        order = self._order
        if i == len(order) or have + self._suffix_cap[i] < self.need or cpu + self._suffix_cpu[i] < self.vneed:
            return
        cross = list(map(add, cross, row))
        limit = None
        if self.best is not None:
            limit = self._limit(i, len(chosen), pairsum, cross, have, cpu)
            if limit is None:
                return
        rows, cap, cpus, near = self._rows, self.cap, self.cpus, self._near
        for j in range(i, len(order)):
            if (limit is None or cross[j] <= limit) and allowed >> j & 1:
                x = order[j]
                self._expand(j + 1, chosen + [x], pairsum + cross[j], have + cap[x], cpu + cpus[x], cross, rows[j],
                             allowed & near[j])
                if self.exhausted:  # (the other sets here would each be turned away)
                    return
