"""Baseline: libxl's automatic NUMA placement, re-implemented from its source.

Read from xen-project/xen (tools/libs/light/libxl_numa.c, libxl_dom.c:
numa_place_domain, numa_cmpf); nothing copied.  What it does:
* nothing above 16 nodes (a warning, the domain gets no affinity);
* the smallest set size first: when every node has the same CPU count, start
  at ceil(vCPUs / CPUs per node), else at 1; grow by one until a size yields
  a candidate;
* candidates of one size in lexicographic order; valid when free memory
  covers what the domain needs (its memory plus libxl's overhead estimate)
  and their CPUs (threads) number at least the vCPUs;
* the best is the one with fewest vCPUs already able to run there (a vCPU
  counts on every node of its domain's node affinity that its hard affinity
  reaches), then the most free memory; the first found wins ties;
* distances are not looked at.
"""

from itertools import combinations
from typing import List, Optional, Sequence


class LibxlNUMA:
    def __init__(self, node_threads: Sequence[int]) -> None:
        self.threads = list(node_threads)
        self.n = len(node_threads)
        self.uniform = len(set(self.threads)) == 1

    def plan(self, free: Sequence[int], vcpus_on: Sequence[int], vcpus: int, need: int) -> Optional[List[int]]:
        n = self.n
        if n > 16 or n <= 1:
            return None
        k = -(-vcpus // self.threads[0]) if self.uniform else 1
        k = min(max(k, 1), n)
        while k <= n:
            best = None
            for combo in combinations(range(n), k):
                mem = sum(free[i] for i in combo)
                if mem < need or sum(self.threads[i] for i in combo) < vcpus:
                    continue
                key = (sum(vcpus_on[i] for i in combo), -mem)
                if best is None or key < best[0]:
                    best = (key, list(combo))
            if best is not None:
                return best[1]
            k += 1
        return None
