"""Sets of NUMA nodes by distance: maximal cliques and the lowest-mean subset search.  Pure.

The placement engine (:mod:`xapi_numa.core.placement`) finds the lowest
maximum distance through the maximal cliques of "distance <= threshold"
graphs, and the lowest mean distance among the subsets of the fitting
cliques with :class:`SubsetSearch` (branch and bound, exact unless its
budget of ``SEARCH_BUDGET`` expansions runs out, which it reports); equally
close sets are told apart by :func:`striping_score`.
"""

from itertools import accumulate
from operator import add
from typing import Callable, Dict, List, Optional, Sequence

from xapi_numa.core.single_node import FRAG_WEIGHT, cv, fragmentation, used_memory

SEARCH_BUDGET = 20000  # subsets expanded per decision, at most


def bits(mask: int):
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def maximal_cliques(adjacency: Sequence[int]) -> List[int]:
    """All maximal cliques (as bit masks) of a graph; Bron-Kerbosch with pivot."""
    out: List[int] = []

    def expand(r: int, p: int, x: int) -> None:
        if not p and not x:
            out.append(r)
            return
        pivot = max(bits(p | x), key=lambda u: bin(p & adjacency[u]).count("1"))
        for v in list(bits(p & ~adjacency[pivot])):
            expand(r | (1 << v), p & adjacency[v], x & adjacency[v])
            p &= ~(1 << v)
            x |= 1 << v

    expand(0, (1 << len(adjacency)) - 1, 0)
    return out


def set_mean(sym: Sequence[Sequence[int]], nodes: Sequence[int]) -> float:
    """Mean distance over all ordered pairs of ``nodes``, the diagonal included."""
    return sum(sym[a][b] for a in nodes for b in nodes) / (len(nodes) * len(nodes))


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


class SubsetSearch:
    """Branch and bound for the fitting subset with the lowest mean distance.

    Sets compare by (mean, node count, score, vCPU load, node ids), where
    ``score(nodes)`` (optional; 0 without it) rates the host after the VM's
    memory is striped over the set: the placement engine's tie-break among
    sets as close as each other, computed only for a set that ties the best
    so far on mean and node count.  A subtree is cut
    when it cannot fit (capacity or CPUs left) or when no superset of the
    current set can reach the best mean: adding r nodes adds at least their r
    cheapest links to the current set plus the smallest distance for each new
    pair among them.
    """

    def __init__(self, sym, cap, cpus, vcpus_on, pcpus, need: int, vneed: int,
                 score: Optional[Callable[[List[int]], float]] = None) -> None:
        self.sym, self.cap, self.cpus, self.vcpus_on, self.pcpus = sym, cap, cpus, vcpus_on, pcpus
        self.need, self.vneed, self.score = need, vneed, score
        self.best: Optional[tuple] = None
        self.expanded = 0
        self.exhausted = False

    def run(self, members: Sequence[int]) -> None:
        sym, cap, cpus = self.sym, self.cap, self.cpus
        order = sorted(members, key=lambda m: (-cap[m], m))  # big nodes first: early fits, early cuts
        m = len(order)
        suffix_cap = [0] * (m + 1)
        suffix_cpu = [0] * (m + 1)
        for i in range(m - 1, -1, -1):
            suffix_cap[i] = suffix_cap[i + 1] + cap[order[i]]
            suffix_cpu[i] = suffix_cpu[i + 1] + cpus[order[i]]
        dmin = min((sym[a][b] for a in order for b in order if a != b), default=10)
        self._order, self._suffix_cap, self._suffix_cpu, self._dmin = order, suffix_cap, suffix_cpu, dmin
        # each node's distances to the others in search order: a set's links to every
        # candidate (its cross sums) grow by one row per node added, never summed afresh
        self._rows = [[sym[x][y] for y in order] for x in order]
        self._new_pairs = [dmin * r * (r - 1) // 2 for r in range(m + 1)]
        self._expand(0, [], 0, 0, 0, [0] * m, [0] * m)

    def _consider(self, chosen: List[int], pairsum: int) -> None:
        k = len(chosen)
        mean = (10 * k + 2 * pairsum) / (k * k)
        if self.best is not None and (mean, k) > self.best[:2]:
            return  # the score is only worth computing for a tie or better
        pcpus = sum(self.pcpus[x] for x in chosen) or 1
        score = self.score(chosen) if self.score is not None else 0.0
        key = (mean, k, score, sum(self.vcpus_on[x] for x in chosen) / pcpus, tuple(sorted(chosen)))
        if self.best is None or key < self.best:
            self.best = key

    def _cut(self, i: int, k: int, pairsum: int, cross: List[int], best: float) -> bool:
        """Whether no strict superset of the ``k`` chosen nodes with nodes from order[i:]
        can reach the mean ``best``: adding r of them adds at least the r smallest of their
        links to the chosen (``cross``, by position in order) plus ``dmin`` per new pair.
        The first r that could reach it ends the look (the answer is the same as the
        lowest mean over all r would give: each mean is computed in the same integers)."""
        new_pairs = self._new_pairs
        r = 0
        for added in accumulate(sorted(cross[i:])):
            r += 1
            size = k + r
            if (10 * size + 2 * (pairsum + added + new_pairs[r])) / (size * size) <= best:
                return False
        return True

    def _expand(self, i: int, chosen: List[int], pairsum: int, have: int, cpu: int, cross: List[int],
                row: List[int]) -> None:
        """``cross[p] + row[p]``: the sum of order[p]'s distances to the chosen nodes (the
        last one's row added here, past the cheap cuts: most sets expanded end at them)."""
        self.expanded += 1
        if self.expanded > SEARCH_BUDGET:
            self.exhausted = True
            return
        if chosen and have >= self.need and cpu >= self.vneed:
            self._consider(chosen, pairsum)
        order = self._order
        if i == len(order) or have + self._suffix_cap[i] < self.need or cpu + self._suffix_cpu[i] < self.vneed:
            return
        cross = list(map(add, cross, row))
        if self.best is not None and chosen and self._cut(i, len(chosen), pairsum, cross, self.best[0]):
            return
        rows, cap, cpus = self._rows, self.cap, self.cpus
        for j in range(i, len(order)):
            x = order[j]
            self._expand(j + 1, chosen + [x], pairsum + cross[j], have + cap[x], cpu + cpus[x], cross, rows[j])
