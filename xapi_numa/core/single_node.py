"""The rule that picks one node among those that hold a VM alone.  Pure.

Why ``spare`` is the default, with the figures, is in
:mod:`xapi_numa.core.placement`; the other rules stay so that the quality
benchmark can show the trade-off.
"""

from typing import List, Sequence

from xapi_numa.core.topology import Topology

SINGLE_NODE_RULES = ("spare", "balanced", "best", "worst")
SINGLE_NODE_RULE = "spare"


def core_count(topology: Topology, node: int) -> int:
    """Physical cores of a node: distinct (socket, core) of its CPUs."""
    return len({(topology.cpus[c].socket, topology.cpus[c].core) for c in topology.nodes[node].cpus}) or 1


def choose_node(rule: str, fits: List[int], avail: Sequence[int], vcpus_on: Sequence[int],
                cores: Sequence[int], vcpus: int) -> int:
    """One of ``fits`` (at least two nodes that hold the VM) by ``rule``."""
    def load(i: int) -> float:
        return vcpus_on[i] / cores[i]

    if rule == "worst":
        return min(fits, key=lambda i: (-avail[i], load(i), i))
    if rule == "best":
        return min(fits, key=lambda i: (avail[i], load(i), i))
    pool = fits
    if rule == "spare":
        # keep the biggest hole for the next big VM
        big = max(fits, key=lambda i: (avail[i], -i))
        pool = [i for i in fits if i != big]
    # the least loaded nodes (vCPUs per core, within one VM's worth) ...
    least = min(load(i) for i in pool)
    pool = [i for i in pool if load(i) <= least + vcpus / cores[i]]
    if rule == "spare":
        # ... and among them the most headroom, which keeps memory level
        return min(pool, key=lambda i: (-avail[i], load(i), i))
    # balanced: ... and among them the tightest fit, which keeps big holes
    return min(pool, key=lambda i: (avail[i], load(i), i))
