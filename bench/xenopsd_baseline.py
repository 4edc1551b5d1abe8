"""Baseline: xenopsd's NUMA search (lib/topology.ml, lib/softaffinity.ml), re-implemented.

Read from xapi-project/xen-api (2024 and 2025-11 versions); nothing copied.
* At start-up every non-empty subset of nodes is scored (maximum pairwise
  distance, then mean distance over all ordered pairs, diagonal included) and
  stably sorted; above 16 nodes only single nodes are candidates.
* Per decision the candidates are filtered lazily in that order: a set is
  valid when its free memory covers the request, its CPUs (threads) number at
  least the vCPUs, and (since CA-420968, policy ``Best_effort``) its physical
  cores number at least ``cores`` (= vCPUs; 0 for ``Prio_mem_only``, the
  memory-only rule of 2024).  The first valid set and the following valid ones
  with the same mean (within 1e-3) form the best group.
* ``choose`` takes the group member whose nodes have been picked least so far
  (usage is only ever incremented, never when a VM stops), then OCaml's
  structural order of the picked list (nodes in reverse), and bumps its usage.
The memory it is given per node is the caller's business (xenopsd today:
free less outstanding claims).  The scan is evaluated in bulk (subset sums)
once the first candidates are exhausted: same answers, less Python time.
"""

from typing import FrozenSet, List, Optional, Sequence, Tuple

EAGER = 4096  # candidates checked one by one before switching to subset sums


class XenopsdNUMA:
    def __init__(self, distances: Sequence[Sequence[int]], node_cpus: Sequence[FrozenSet[int]],
                 node_cores: Optional[Sequence[int]] = None) -> None:
        self.d = distances
        self.node_cpus = list(node_cpus)
        self.threads = [len(c) for c in self.node_cpus]
        self.cores = list(node_cores) if node_cores is not None else list(self.threads)
        n = len(distances)
        self.n = n
        self.node_usage = [0] * n
        if n > 16:
            scored = [((distances[i][i], float(distances[i][i])), 1 << i) for i in range(n)]
        else:
            scored = []
            for mask in range(1, 1 << n):
                nodes = [i for i in range(n) if (mask >> i) & 1]
                dists = [distances[a][b] for a in nodes for b in nodes]
                scored.append(((max(dists), sum(dists) / len(dists)), mask))
        scored.sort(key=lambda c: c[0])  # stable, like OCaml's Array.fast_sort (merge sort)
        self.candidates: List[Tuple[float, int]] = [(key[1], mask) for key, mask in scored]
        self.members = {mask: tuple(i for i in range(n) if (mask >> i) & 1) for _, mask in self.candidates}

    def _sums(self, values: Sequence[int]) -> List[int]:
        """Sum of ``values`` over every subset mask (dynamic programming on the lowest bit)."""
        out = [0] * (1 << self.n)
        for mask in range(1, 1 << self.n):
            low = mask & -mask
            out[mask] = out[mask ^ low] + values[low.bit_length() - 1]
        return out

    def _valid_masks(self, memfree: Sequence[int], vcpus: int, memory: int, cores: int):
        """Valid candidates in the sorted order, as (mean, mask)."""
        threads, ncores = self.threads, self.cores
        for k, (avg, mask) in enumerate(self.candidates):
            if k == EAGER:
                break
            nodes = self.members[mask]
            if (sum(memfree[i] for i in nodes) >= memory and sum(threads[i] for i in nodes) >= vcpus
                    and sum(ncores[i] for i in nodes) >= cores):
                yield avg, mask
        else:
            return
        mem, thr, cor = self._sums(memfree), self._sums(threads), self._sums(ncores)
        for avg, mask in self.candidates[EAGER:]:
            if mem[mask] >= memory and thr[mask] >= vcpus and cor[mask] >= cores:
                yield avg, mask

    def plan_nodes(self, memfree: Sequence[int], vcpus: int, memory: int, cores: int = 0) -> Optional[List[int]]:
        """The picked nodes (in xenopsd's list order), or None when no set is valid."""
        if sum(memfree) < memory or sum(self.threads) < vcpus or sum(self.cores) < cores:
            return None  # not even every node together: the scan would find nothing
        valid = self._valid_masks(memfree, vcpus, memory, cores)
        first = next(valid, None)
        if first is None:
            return None
        group = [first]
        for v in valid:
            if abs(v[0] - first[0]) < 1e-3:
                group.append(v)
            else:
                break
        usage = self.node_usage
        # picked is built by consing, so it lists the set's nodes in reverse
        best = min((sum(usage[i] for i in self.members[mask]), list(reversed(self.members[mask])))
                   for _, mask in group)
        for i in best[1]:
            usage[i] += 1
        return best[1]

    def plan(self, memfree: Sequence[int], vcpus: int, memory: int, cores: int = 0) -> Optional[FrozenSet[int]]:
        """The soft affinity xenopsd would set (CPUs of the chosen nodes), or None."""
        nodes = self.plan_nodes(memfree, vcpus, memory, cores)
        if nodes is None:
            return None
        return frozenset().union(*(self.node_cpus[i] for i in nodes))
