"""The placement engine: where a VM about to start should go.  Pure, no I/O.

Input: the host topology (through a :class:`Planner`, built once per host),
per-node free memory, memory reserved by other starts, and vCPU load; and a
:class:`Request` (vCPUs, memory, policy).  Output: a :class:`Placement` — the
nodes, the bytes Xen will put on each, the soft or hard CPU mask, whether a
fallback was taken, and a one-line reason.

Choosing nodes when the policy does not list them:

* one node when the VM fits on one (most headroom after reservations, then
  least vCPU load, then lowest id);
* otherwise the set with the smallest distance that fits, as xenopsd ranks
  sets: smallest maximum pairwise distance, then smallest mean distance.
  Distances are taken symmetrically (max of both directions).  Capacity adds
  up, so a distance threshold is feasible exactly when one of the maximal
  cliques of the graph "distance <= threshold" fits; those cliques depend on
  the topology only and are computed once.  Within a fitting clique the set
  is grown from each seed by closeness.  No 2^N enumeration: the maximum
  distance is exact, the mean is a greedy optimum.
* a set must have at least as many pCPUs as the VM has vCPUs; when no set
  does, the constraint is dropped (and the placement says fallback).

How memory spreads over several nodes is Xen's business: with an affinity
over a set of nodes the allocator stripes extents round-robin over them
(:mod:`xapi_numa.xenalloc`), and the predicted bytes per node say so.
"""
from __future__ import annotations

from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import attrs

from .errors import InvalidArgument, NoCapacity
from .policy import Policy
from .topology import Topology
from .units import PAGE_SHIFT, format_size
from .xenalloc import SUPERPAGE, distribute

MIB = 1 << 20


@attrs.frozen
class NodeLoad:
    """What the engine knows of one node right now (bytes, vCPU count)."""

    node: int
    free: int
    reserved: int = 0
    vcpus: int = 0

    @property
    def available(self) -> int:
        return max(0, self.free - self.reserved)


@attrs.frozen
class Request:
    vcpus: int
    memory: int
    policy: Policy = Policy()
    translated: bool = True  # HVM/PVH guests get 2 MiB extents

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.vcpus, int) or not 1 <= self.vcpus <= 4096:
            raise InvalidArgument("vcpus", f"{self.vcpus!r}", "1..4096")
        if not isinstance(self.memory, int) or not 1 <= self.memory <= 1 << 50:
            raise InvalidArgument("memory", f"{self.memory!r}", "1 byte .. 1P")


@attrs.frozen
class Placement:
    nodes: Tuple[int, ...]
    memory: Tuple[Tuple[int, int], ...]  # (node, bytes), nodes ascending
    soft: Optional[FrozenSet[int]]
    hard: Optional[FrozenSet[int]]
    fallback: bool
    reason: str
    policy: Policy

    @property
    def bytes_per_node(self) -> Dict[int, int]:
        return dict(self.memory)

    def to_dict(self, topology: Topology) -> dict:
        return {
            "nodes": list(self.nodes),
            "memory": {str(n): b for n, b in self.memory},
            "soft": topology.format_cpus(self.soft) if self.soft is not None else None,
            "hard": topology.format_cpus(self.hard) if self.hard is not None else None,
            "fallback": self.fallback,
            "reason": self.reason,
            "policy": self.policy.to_dict(),
        }


def _bits(mask: int):
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
        pivot = max(_bits(p | x), key=lambda u: bin(p & adjacency[u]).count("1"))
        for v in list(_bits(p & ~adjacency[pivot])):
            expand(r | (1 << v), p & adjacency[v], x & adjacency[v])
            p &= ~(1 << v)
            x |= 1 << v

    expand(0, (1 << len(adjacency)) - 1, 0)
    return out


class Planner:
    """Placement for one host topology; the per-topology work is done once."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        n = len(topology.nodes)
        d = topology.distances
        self.n = n
        self.sym = [[max(d[i][j], d[j][i]) for j in range(n)] for i in range(n)]
        self.pcpus = [len(node.cpus) for node in topology.nodes]
        self.thresholds = sorted({self.sym[i][j] for i in range(n) for j in range(n) if i != j})
        self.cliques: Dict[int, List[int]] = {}
        for t in self.thresholds:
            adjacency = [sum(1 << j for j in range(n) if j != i and self.sym[i][j] <= t) for i in range(n)]
            self.cliques[t] = maximal_cliques(adjacency)
        # Other nodes by distance from each node (the "nearest" order).
        self.nearest = [sorted((j for j in range(n) if j != i), key=lambda j, i=i: (d[i][j], j))
                        for i in range(n)]

    # --- set measures ---------------------------------------------------------------------
    def _distance_key(self, nodes: Sequence[int]) -> Tuple[int, float]:
        if len(nodes) == 1:
            return (10, 10.0)
        s = self.sym
        pairs = [s[a][b] for a in nodes for b in nodes]
        return (max(pairs), sum(pairs) / len(pairs))

    def _load(self, nodes: Sequence[int], loads: Sequence[NodeLoad]) -> float:
        cpus = sum(self.pcpus[x] for x in nodes) or 1
        return sum(loads[x].vcpus for x in nodes) / cpus

    # --- entry point ---------------------------------------------------------------------------
    def place(self, loads: Sequence[NodeLoad], request: Request) -> Placement:
        if len(loads) != self.n or [l.node for l in loads] != list(range(self.n)):
            raise InvalidArgument("loads", f"need one entry per node 0..{self.n - 1}")
        policy = request.policy
        for node in policy.nodes:
            if node >= self.n:
                raise InvalidArgument("nodes", f"node {node} does not exist on this host",
                                      f"nodes 0..{self.n - 1}")
        total = sum(l.available for l in loads)
        if total < request.memory:
            raise NoCapacity(f"the host has {format_size(total)} available after reservations; "
                             f"the VM needs {format_size(request.memory)}",
                             ("host", str(request.memory), str(total)))
        if policy.mode == "any":
            nodes = [l.node for l in loads if l.available > 0]
            return self._result(nodes, loads, request, False,
                                "mode any: no affinity, Xen stripes memory over all nodes", striped_all=True)
        if policy.nodes or policy.nearest:
            return self._place_ordered(loads, request)
        return self._place_chosen(loads, request)

    # --- nodes chosen by the engine -------------------------------------------------------------
    def _place_chosen(self, loads: Sequence[NodeLoad], request: Request) -> Placement:
        need, vcpus = request.memory, request.vcpus
        for relax in (False, True):
            singles = [l for l in loads if l.available >= need and (relax or self.pcpus[l.node] >= vcpus)]
            if singles:
                best = min(singles, key=lambda l: (-(l.available - need), self._load([l.node], loads), l.node))
                headroom = best.available - need
                why = f"fits on node {best.node} alone ({format_size(headroom)} left there after it)"
                if relax:
                    why += f"; no node has {vcpus} pCPUs, so its vCPUs share"
                return self._result([best.node], loads, request, relax, why)
            if request.policy.on_exhaust == "fail":
                continue
            found = self._best_set(loads, request, relax)
            if found is not None:
                nodes, key = found
                why = (f"no single node has {format_size(need)} available; nodes "
                       f"{','.join(map(str, nodes))} (max distance {key[0]}) hold it")
                if relax:
                    why += f"; no set of nodes has {vcpus} pCPUs, so its vCPUs share"
                return self._result(nodes, loads, request, relax, why)
        best_single = max(loads, key=lambda l: l.available)
        raise NoCapacity(f"no single node can hold {format_size(need)} (at most "
                         f"{format_size(best_single.available)} on node {best_single.node}) and "
                         "on_exhaust=fail forbids spreading",
                         ("node", str(need), str(best_single.available)))

    def _best_set(self, loads: Sequence[NodeLoad], request: Request, relax: bool):
        need, vcpus = request.memory, request.vcpus
        cap = [l.available for l in loads]
        for t in self.thresholds:
            best = None
            for clique in self.cliques[t]:
                # nodes without memory to give add nothing to a set
                members = [m for m in _bits(clique) if cap[m] > 0]
                if sum(cap[m] for m in members) < need:
                    continue
                if not relax and sum(self.pcpus[m] for m in members) < vcpus:
                    continue
                for seed in members:
                    nodes = self._grow(seed, members, cap, need, vcpus if not relax else 0)
                    key = self._distance_key(nodes) + (
                        len(nodes), -(sum(cap[x] for x in nodes) - need), self._load(nodes, loads),
                        tuple(sorted(nodes)))
                    if best is None or key < best[1]:
                        best = (sorted(nodes), key)
            if best is not None:
                return best
        return None

    def _grow(self, seed: int, members: List[int], cap: List[int], need: int, vcpus: int) -> List[int]:
        chosen = [seed]
        have, cpus = cap[seed], self.pcpus[seed]
        rest = [m for m in members if m != seed]
        s = self.sym
        while have < need or cpus < vcpus:
            nxt = min(rest, key=lambda m: (sum(s[m][c] for c in chosen), -cap[m], m))
            rest.remove(nxt)
            chosen.append(nxt)
            have += cap[nxt]
            cpus += self.pcpus[nxt]
        return chosen

    # --- nodes listed by the policy ---------------------------------------------------------------
    def _order(self, loads: Sequence[NodeLoad], request: Request) -> List[int]:
        policy = request.policy
        order = list(policy.nodes)
        if policy.nearest:
            if order:
                start = order[0]
            else:
                fits = [l for l in loads if l.available >= request.memory]
                pool = fits or list(loads)
                start = min(pool, key=lambda l: (-l.available, self._load([l.node], loads), l.node)).node
                order = [start]
            order += [m for m in self.nearest[start] if m not in order]
        return order

    def _place_ordered(self, loads: Sequence[NodeLoad], request: Request) -> Placement:
        policy, need = request.policy, request.memory
        order = self._order(loads, request)
        first = order[0]
        if policy.mode == "best_effort":
            # fewest nodes: the first listed node that holds it alone
            for node in order:
                if loads[node].available >= need:
                    why = (f"fits on node {node}" + ("" if node == first else
                           f"; listed node{'s' if order.index(node) > 1 else ''} "
                           f"{','.join(map(str, order[:order.index(node)]))} "
                           f"{'are' if order.index(node) > 1 else 'is'} full"))
                    return self._result([node], loads, request, node != first, why)
        prefix = self._smallest_prefix(order, loads, need)
        if prefix is not None:
            why = (f"fits on node {first}" if len(prefix) == 1 else
                   f"node {first} is short; memory spreads over listed nodes {','.join(map(str, prefix))}")
            return self._result(prefix, loads, request, len(prefix) > 1, why)
        listed_free = sum(loads[n].available for n in order)
        if policy.on_exhaust == "fail":
            which = f"nodes {','.join(map(str, order))} have" if len(order) > 1 else f"node {order[0]} has"
            raise NoCapacity(f"{which} {format_size(listed_free)} available; "
                             f"the VM needs {format_size(need)} and on_exhaust=fail",
                             ("nodes", ",".join(map(str, order)), str(need), str(listed_free)))
        extended = order + [m for m in self.nearest[first] if m not in order]
        prefix = self._smallest_prefix(extended, loads, need)
        assert prefix is not None  # the host as a whole has room (checked above)
        extra = [n for n in prefix if n not in order]
        why = (f"listed nodes {','.join(map(str, order))} are short ({format_size(listed_free)} available); "
               f"fell back to nearest node{'s' if len(extra) > 1 else ''} {','.join(map(str, extra))}")
        return self._result(prefix, loads, request, True, why)

    @staticmethod
    def _smallest_prefix(order: Sequence[int], loads: Sequence[NodeLoad], need: int) -> Optional[List[int]]:
        have = 0
        for i, node in enumerate(order):
            have += loads[node].available
            if have >= need:
                return [n for n in order[:i + 1] if loads[n].available > 0] or [order[0]]
        return None

    # --- the result -------------------------------------------------------------------------------
    def _result(self, nodes: Sequence[int], loads: Sequence[NodeLoad], request: Request, fallback: bool,
                reason: str, striped_all: bool = False) -> Placement:
        pages = (request.memory + (1 << PAGE_SHIFT) - 1) >> PAGE_SHIFT
        budget = [l.available >> PAGE_SHIFT for l in loads]
        affinity = sorted(nodes)
        got, _ = distribute(pages, budget, affinity, -1, SUPERPAGE if request.translated else 1)
        memory = tuple(sorted((n, p << PAGE_SHIFT) for n, p in got.items() if p))
        cpus = self.topology.cpus_of_nodes(nodes)
        mode = request.policy.mode
        if striped_all:
            soft = hard = None
            nodes = [n for n, _ in memory]
        elif mode == "strict":
            soft, hard = None, cpus
        else:
            soft, hard = cpus, None
        return Placement(tuple(sorted(nodes)), memory, soft, hard, fallback, reason, request.policy)
