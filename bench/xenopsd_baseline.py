"""Baseline: xenopsd's best_effort NUMA search, re-implemented for comparison.

Follows xenopsd's lib/topology.ml and lib/softaffinity.ml (2024):
* at start-up every non-empty subset of nodes is scored (maximum pairwise
  distance, then mean distance over all ordered pairs) and stably sorted;
  above 16 nodes only single nodes are candidates;
* per decision, candidates are filtered lazily by ``plan_valid`` (memory and
  vCPU count must be covered), the first valid one and the following valid
  ones with the same mean distance form the best group;
* ``choose`` takes the group member whose nodes have been used least (then
  the OCaml structural order of the picked list), and bumps their usage.
It reads free memory only: no reservations, as xenopsd does.
"""

from typing import FrozenSet, List, Optional, Sequence, Tuple


class XenopsdNUMA:
    def __init__(self, distances: Sequence[Sequence[int]], node_cpus: Sequence[FrozenSet[int]]) -> None:
        self.d = distances
        self.node_cpus = list(node_cpus)
        n = len(distances)
        self.node_usage = [0] * n
        if n > 16:
            subsets = [((distances[i][i], float(distances[i][i])), (i,)) for i in range(n)]
        else:
            subsets = []
            for mask in range(1, 1 << n):
                nodes = tuple(i for i in range(n) if (mask >> i) & 1)
                dists = [distances[a][b] for a in nodes for b in nodes]
                subsets.append(((max(dists), sum(dists) / len(dists)), nodes))
        subsets.sort(key=lambda c: c[0])  # stable, like OCaml's Array.fast_sort (merge sort)
        self.candidates: List[Tuple[float, Tuple[int, ...]]] = [(key[1], nodes) for key, nodes in subsets]

    def _plan_valid(self, avg: float, nodes: Tuple[int, ...], memfree: Sequence[int], vcpus: int, memory: int):
        affinity: FrozenSet[int] = frozenset()
        alloc_mem = 0
        picked: List[int] = []
        rem_mem, rem_vcpus = memory, vcpus
        for node in nodes:
            cpus = self.node_cpus[node]
            affinity = affinity | cpus
            alloc_mem += memfree[node]
            picked.insert(0, node)
            rem_mem = max(0, rem_mem - memfree[node])
            rem_vcpus = max(0, rem_vcpus - len(cpus))
        if rem_mem > 0 or rem_vcpus > 0:
            return None
        return avg, picked, (affinity, alloc_mem)

    def plan(self, memfree: Sequence[int], vcpus: int, memory: int) -> Optional[FrozenSet[int]]:
        valid = (self._plan_valid(avg, nodes, memfree, vcpus, memory) for avg, nodes in self.candidates)
        valid = (v for v in valid if v is not None)
        first = next(valid, None)
        if first is None:
            return None
        group = [first]
        for v in valid:
            if abs(v[0] - first[0]) < 1e-3:
                group.append(v)
            else:
                break
        best = min(group, key=lambda v: (sum(self.node_usage[n] for n in v[1]), v[1]))
        for n in best[1]:
            self.node_usage[n] += 1
        return best[2][0]
