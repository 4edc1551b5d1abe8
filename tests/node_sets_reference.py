"""The node-set search as it was before 2026-12-06, when its bound was made incremental
and then aware of the memory a set still needs and of how few nodes are near each
other: the reference tests/test_node_set_search.py holds the search to (the same
decision where it ended within its budget, one as good where it did not)."""

from typing import List, Sequence

from xapi_numa.core.node_sets import SEARCH_BUDGET, SubsetSearch


class ReferenceSubsetSearch(SubsetSearch):
    """xapi_numa.core.node_sets.SubsetSearch of 2026-12-06: its own search and bound (its
    construction and its sets' keys, which did not change, are the new search's)."""

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
        self._expand(0, [], 0, 0, 0)

    def _consider(self, chosen: List[int], pairsum: int) -> None:
        key = self._key(chosen, pairsum)  # (unchanged: the set's key, or None when it already loses)
        # (and, as since, only a set Xen's build keeps the VM on: core/set_room.py)
        if key is not None and (self.best is None or key < self.best) and (self.keeps is None or self.keeps(chosen)):
            self.best = key

    def _bound(self, i: int, chosen: List[int], pairsum: int) -> float:
        """Lowest mean any strict superset of ``chosen`` with nodes from order[i:] can have."""
        sym, order, k = self.sym, self._order, len(chosen)
        cross = sorted(sum(sym[x][c] for c in chosen) for x in order[i:])
        lowest = float("inf")
        added = 0
        for r, c in enumerate(cross, 1):
            added += c
            size = k + r
            lowest = min(lowest, (10 * size + 2 * (pairsum + added + self._dmin * r * (r - 1) // 2)) / (size * size))
        return lowest

    def _expand(self, i: int, chosen: List[int], pairsum: int, have: int, cpu: int) -> None:
        self.expanded += 1
        if self.expanded > SEARCH_BUDGET:
            self.exhausted = True
            return
        if chosen and have >= self.need and cpu >= self.vneed:
            self._consider(chosen, pairsum)
        order = self._order
        if i == len(order) or have + self._suffix_cap[i] < self.need or cpu + self._suffix_cpu[i] < self.vneed:
            return
        if self.best is not None and chosen and self._bound(i, chosen, pairsum) > self.best[0]:
            return
        sym = self.sym
        for j in range(i, len(order)):
            x = order[j]
            self._expand(j + 1, chosen + [x], pairsum + sum(sym[x][c] for c in chosen),
                         have + self.cap[x], cpu + self.cpus[x])
