"""Affinity fix-up: soft affinity follows the memory (pure planner).

When most of a running VM's memory sits on nodes outside its soft affinity
(its node was full at boot, say), its vCPUs are better off near the memory:
move the soft affinity to the nodes that hold it.  Never for ``strict`` VMs
or admin hard pins, and only when the VM has a meaningful soft affinity.
"""

from typing import FrozenSet, Iterable, List

import attrs

from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.locality import soft_is_narrow

MAJORITY = 0.5
MEANINGFUL_SHARE = 0.05  # a node holding less than this is not "where the memory is"


@attrs.frozen
class SoftMove:
    domid: int
    uuid: str
    cpus: FrozenSet[int]
    nodes: FrozenSet[int]
    reason: str


def plan(snap: HostSnapshot, excluded: Iterable[int] = ()) -> List[SoftMove]:
    excluded = set(excluded)
    topo = snap.topology
    moves = []
    for d in snap.domains:
        if d.domid == 0 or d.domid in excluded or d.domid not in snap.pages:
            continue
        vs = snap.vcpus.get(d.domid, ())
        if not vs or not all(soft_is_narrow(v, topo) and v.hard >= topo.all_cpus for v in vs):
            continue
        soft_nodes = frozenset().union(*(topo.nodes_of_cpus(v.soft) for v in vs))
        pages = snap.pages[d.domid]
        total = sum(pages.values())
        if not total:
            continue
        outside = sum(p for n, p in pages.items() if n not in soft_nodes)
        if outside / total <= MAJORITY:
            continue
        nodes = frozenset(n for n, p in pages.items() if p / total >= MEANINGFUL_SHARE)
        moves.append(SoftMove(d.domid, d.uuid, topo.cpus_of_nodes(nodes), nodes,
                              f"{100 * outside / total:.0f}% of its memory is outside its soft affinity "
                              f"(nodes {','.join(map(str, sorted(soft_nodes)))})"))
    return moves
