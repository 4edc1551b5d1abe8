"""What ``xl create`` adds on top of the hypervisor: libxl's NUMA placement.

When a guest config gives neither ``cpus`` nor ``cpus_soft``, libxl picks
the smallest set of nodes with enough free memory and CPUs for the guest
(libxl__get_numa_candidate), preferring, among sets of that size, fewer
vCPUs already bound there per pCPU and more free memory, and sets the
guest's soft affinity to those nodes before its memory is allocated.
This module reproduces that choice for the simulator's ``sim create``.
"""

from itertools import combinations
from typing import Optional, Sequence

from xapi_numa.backends.sim.masks import count, has


def _vcpus_on(host, cpus_mask: int) -> int:
    """vCPUs of existing domains whose affinity meets these CPUs."""
    n = 0
    for d in host.domains.values():
        if d.domid == 0:
            continue
        for v in d.vcpus:
            if (v.hard & v.soft) & cpus_mask:
                n += 1
    return n


def auto_placement(host, vcpus: int, pages: int, max_nodes_exhaustive: int = 16) -> Optional[int]:
    """Node mask libxl would choose for a new guest, or None to leave it."""
    nr = len(host.free)
    if nr == 1:
        return None
    nodes = range(nr)
    limit = nr if nr <= max_nodes_exhaustive else 2
    for size in range(1, limit + 1):
        best = None
        best_key = None
        for combo in combinations(nodes, size):
            free = sum(host.free[n] for n in combo)
            cpus = 0
            for n in combo:
                cpus |= host.node_mask[n]
            ncpus = count(cpus)
            if free < pages or ncpus < vcpus:
                continue
            key = (_vcpus_on(host, cpus) / ncpus, -free, combo)
            if best_key is None or key < best_key:
                best, best_key = combo, key
        if best is not None:
            mask = 0
            for n in best:
                mask |= host.node_mask[n]
            return mask
    return None


def node_set(host, mask: int) -> Sequence[int]:
    return [n for n in range(len(host.free)) if has(mask, n)]
