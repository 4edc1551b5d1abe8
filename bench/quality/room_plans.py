"""Planners of the make-room check (:mod:`quality.make_room`): home moves chosen by the engine's score.

``balanced_plan`` makes room for a VM on one node, ``levelling_moves`` are the
rebalancer's moves between starts; both judge a host state by the single-node
rule's own measure, CV(memory used) + CPU_WEIGHT x CV(vCPUs per core) +
weight x fragmentation (:mod:`xapi_numa.core.single_node`), with vCPUs counted
as the engine reads them (those of VMs homed on one node).  Pages throughout.
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple

from xapi_numa.core.single_node import CPU_WEIGHT, cv, fragmentation
from xapi_numa.core.units import PAGE_SHIFT

from .replay import HostState
from .trace import NODE_MEMORY


def score(used: Sequence[float], load: Sequence[float], free: Sequence[int], weight: float) -> float:
    """The engine's ``scored`` measure of a host state: CV(memory used) + CPU_WEIGHT x CV(vCPUs
    per core) + ``weight`` x ln(free memory / biggest free memory on one node)."""
    return cv(used) + CPU_WEIGHT * cv(load) + weight * fragmentation(sum(free), max(free))


def can_free(pages: Sequence[int], deficit: int, room: int) -> bool:
    """Whether VMs holding ``pages`` can free ``deficit`` pages moving at most ``room``: the
    smallest one that does, else the largest ones that stay within ``room`` (a sufficient test)."""
    if deficit <= 0:
        return True
    if any(deficit <= p <= room for p in pages):
        return True
    freed = 0
    for p in sorted(pages, reverse=True):
        if freed + p <= room:
            freed += p
    return freed >= deficit


def balanced_plan(state: HostState, cores: Sequence[int], vm, need: int, cap: int,
                  weight: float) -> Optional[Tuple[float, int, List[Tuple[int, int, int]]]]:
    """(score, node, moves) for the node and home moves after which, with ``vm`` built there
    (``need`` pages on it), the host scores lowest: for each node short by at most ``cap``,
    greedily the move (a VM homed on it alone, to any other node that holds it) after which
    the state with the VM built there scores lowest, among those after which the rest of the
    shortfall can still be freed within the rest of the cap (:func:`can_free`), until the VM
    fits (None: no node can be freed)."""
    total = NODE_MEMORY >> PAGE_SHIFT
    vcpus_on = state.single_home_vcpus()
    best = None
    for node in range(state.n):
        if not 0 < need - state.free[node] <= cap:
            continue
        free, on = list(state.free), list(vcpus_on)
        free[node] -= need
        on[node] += vm.vcpus
        homed = {vid: (r.pages.get(node, 0), r.vcpus) for vid, r in state.vms.items() if r.home == (node,)}
        moves, moved = [], 0
        while free[node] < 0:
            pick = None
            for vid, (pages, vcpus) in homed.items():
                if not 0 < pages <= cap - moved or not can_free(
                        [p for v, (p, _) in homed.items() if v != vid], -free[node] - pages, cap - moved - pages):
                    continue
                for to in range(state.n):
                    if to == node or free[to] < pages:
                        continue
                    f, o = list(free), list(on)
                    f[node] += pages
                    f[to] -= pages
                    o[node] -= vcpus
                    o[to] += vcpus
                    s = score([total - x for x in f], [v / c for v, c in zip(o, cores)], f, weight)
                    if pick is None or s < pick[0]:
                        pick = (s, vid, to, pages, vcpus)
            if pick is None:
                break
            _, vid, to, pages, vcpus = pick
            free[node] += pages
            free[to] -= pages
            on[node] -= vcpus
            on[to] += vcpus
            moved += pages
            moves.append((vid, to, pages))
            del homed[vid]
        if free[node] >= 0:
            s = score([total - x for x in free], [v / c for v, c in zip(on, cores)], free, weight)
            if best is None or s < best[0]:
                best = (s, node, moves)
    return best


def _cv(s1: float, s2: float, n: int) -> float:
    mean = s1 / n
    return math.sqrt(max(s2 / n - mean * mean, 0.0)) / mean if mean > 0 else 0.0


def levelling_moves(state: HostState, cores: Sequence[int], budget: int, weight: float,
                    gain: float) -> List[Tuple[int, int, int]]:
    """(vid, target node, pages): home moves of VMs homed on one node, at most ``budget`` pages
    in all, each the one that lowers the engine's score of the host (no new VM) most, while
    that is by at least ``gain`` (the rebalancer's move, between starts)."""
    n, total = state.n, NODE_MEMORY >> PAGE_SHIFT
    free = list(state.free)
    used = [total - f for f in free]
    load = [v / c for v, c in zip(state.single_home_vcpus(), cores)]
    groups: Dict[Tuple[int, int, int], List[int]] = {}  # (node, pages there, vCPUs): VMs alike
    for vid, r in state.vms.items():
        if r.home is not None and len(r.home) == 1 and 0 < r.pages.get(r.home[0], 0) <= budget:
            groups.setdefault((r.home[0], r.pages[r.home[0]], r.vcpus), []).append(vid)
    moves, moved = [], 0
    while True:
        u1, u2, l1, l2 = sum(used), sum(x * x for x in used), sum(load), sum(x * x for x in load)
        top = sorted(range(n), key=lambda i: -free[i])[:3]
        now = _cv(u1, u2, n) + CPU_WEIGHT * _cv(l1, l2, n) + weight * fragmentation(sum(free), free[top[0]])
        pick = None
        for (a, p, v), vids in groups.items():
            if not vids or p > budget - moved:
                continue
            for b in range(n):
                if b == a or free[b] < p:
                    continue
                du = (used[a] - p) ** 2 - used[a] ** 2 + (used[b] + p) ** 2 - used[b] ** 2
                la, lb = load[a] - v / cores[a], load[b] + v / cores[b]
                dl = la * la - load[a] ** 2 + lb * lb - load[b] ** 2
                s = _cv(u1, u2 + du, n) + CPU_WEIGHT * _cv(l1 + la + lb - load[a] - load[b], l2 + dl, n)
                if weight:
                    rest = next((free[i] for i in top if i not in (a, b)), 0)
                    s += weight * fragmentation(sum(free), max(free[a] + p, free[b] - p, rest))
                if pick is None or s < pick[0]:
                    pick = (s, a, p, v, b)
        if pick is None or now - pick[0] < gain:
            return moves
        _, a, p, v, b = pick
        vid = groups[(a, p, v)].pop()
        free[a] += p
        free[b] -= p
        used[a] -= p
        used[b] += p
        load[a] -= v / cores[a]
        load[b] += v / cores[b]
        moved += p
        moves.append((vid, b, p))
