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
  the topology only and are computed once.  Within a fitting clique every
  pair is within the threshold, so the fewest nodes (largest first) are
  taken; cliques then compare by node count, mean distance, headroom, load.
  No 2^N enumeration, and the maximum distance is exact.
* a set must have at least as many pCPUs as the VM has vCPUs; when no set
  does, the constraint is dropped (and the placement says fallback).

How memory spreads over several nodes is Xen's business: with an affinity
over a set of nodes the allocator stripes extents round-robin over them
(:mod:`xapi_numa.xenalloc`), and the predicted bytes per node say so.
"""

from operator import sub
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import attrs

from xapi_numa.errors import InvalidArgument, NoCapacity
from xapi_numa.core.policy import Policy
from xapi_numa.core.topology import Topology
from xapi_numa.core.units import PAGE_SHIFT, format_size
from xapi_numa.core.xenalloc import SUPERPAGE, distribute

MIB = 1 << 20


def _int_tuple(values) -> Tuple[int, ...]:
    return tuple(int(v) for v in values)


@attrs.frozen
class NodeLoads:
    """What the engine knows of the nodes right now, one entry per node id.

    ``free``: bytes free (less the hypervisor's outstanding claims);
    ``reserved``: bytes other starts have reserved in the ledger;
    ``vcpus``: vCPUs already homed on the node (soft/hard affinity).
    """

    free: Tuple[int, ...] = attrs.field(converter=_int_tuple)
    reserved: Tuple[int, ...] = attrs.field(converter=_int_tuple)
    vcpus: Tuple[int, ...] = attrs.field(converter=_int_tuple)

    def __attrs_post_init__(self) -> None:
        if not len(self.free) == len(self.reserved) == len(self.vcpus):
            raise InvalidArgument("loads", "free, reserved and vcpus need one entry per node each")

    @classmethod
    def of(cls, free: Sequence[int], reserved: Optional[Sequence[int]] = None,
           vcpus: Optional[Sequence[int]] = None) -> "NodeLoads":
        n = len(free)
        return cls(free, reserved if reserved is not None else [0] * n, vcpus if vcpus is not None else [0] * n)

    def available(self) -> List[int]:
        """Free minus reserved per node, never below zero."""
        avail = list(map(sub, self.free, self.reserved))
        if min(avail, default=0) < 0:
            avail = [a if a > 0 else 0 for a in avail]
        return avail


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
        self.node_cpus = [node.cpus for node in topology.nodes]
        self.thresholds = sorted({self.sym[i][j] for i in range(n) for j in range(n) if i != j})
        self.cliques: Dict[int, List[int]] = {}
        for t in self.thresholds:
            adjacency = [sum(1 << j for j in range(n) if j != i and self.sym[i][j] <= t) for i in range(n)]
            self.cliques[t] = maximal_cliques(adjacency)
        self.clique_members = {t: [list(_bits(c)) for c in cs] for t, cs in self.cliques.items()}
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

    def _load(self, nodes: Sequence[int], vcpus_on: Sequence[int]) -> float:
        cpus = sum(self.pcpus[x] for x in nodes) or 1
        return sum(vcpus_on[x] for x in nodes) / cpus

    # --- entry point ---------------------------------------------------------------------------
    def place(self, loads: NodeLoads, request: Request) -> Placement:
        n = self.n
        if len(loads.free) != n:
            raise InvalidArgument("loads", f"{len(loads.free)} entries for a host of {n} nodes")
        policy = request.policy
        need, vcpus = request.memory, request.vcpus
        if policy.nodes:
            for node in policy.nodes:
                if node >= n:
                    raise InvalidArgument("nodes", f"node {node} does not exist on this host",
                                          f"nodes 0..{n - 1}")
        avail = list(map(sub, loads.free, loads.reserved))  # inline: this is the hot path
        best_a = max(avail)
        if best_a >= need and policy.mode != "any" and not (policy.nodes or policy.nearest):
            # The common case, kept cheap: the node with the most headroom
            # fits, has the pCPUs and is not tied with another.
            best = avail.index(best_a)
            if self.pcpus[best] < vcpus:
                best = self._best_single([a if a > 0 else 0 for a in avail], loads.vcpus, need, vcpus)
            elif avail.count(best_a) > 1:  # tied on headroom: least vCPU load per pCPU, then id
                pcpus, homed = self.pcpus, loads.vcpus
                tied = [i for i, a in enumerate(avail) if a == best_a and pcpus[i] >= vcpus]
                best = min(tied, key=lambda i: (homed[i] / (pcpus[i] or 1), i))
            if best >= 0:
                return self._single(best, request, False,
                                    f"fits on node {best} alone ({format_size(avail[best] - need)} left there after it)")
        if min(avail) < 0:
            avail = [a if a > 0 else 0 for a in avail]
        total = sum(avail)
        if total < need:
            raise NoCapacity(f"the host has {format_size(total)} available after reservations; "
                             f"the VM needs {format_size(need)}", ("host", str(need), str(total)))
        if policy.mode == "any":
            nodes = [i for i in range(n) if avail[i] > 0]
            return self._result(nodes, avail, request, False,
                                "mode any: no affinity, Xen stripes memory over all nodes", striped_all=True)
        if policy.nodes or policy.nearest:
            return self._place_ordered(avail, loads.vcpus, request)
        return self._place_chosen(avail, loads.vcpus, request)

    def _best_single(self, avail: List[int], vcpus_on: Sequence[int], need: int, vcpus: int,
                     relax: bool = False) -> int:
        """Most headroom, then least vCPU load per pCPU, then lowest id; -1 if none fits."""
        pcpus = self.pcpus
        fits = [i for i, a in enumerate(avail) if a >= need and (relax or pcpus[i] >= vcpus)]
        if not fits:
            return -1
        return min(fits, key=lambda i: (-avail[i], vcpus_on[i] / (pcpus[i] or 1), i))

    # --- nodes chosen by the engine -------------------------------------------------------------
    def _place_chosen(self, avail: List[int], vcpus_on: Sequence[int], request: Request) -> Placement:
        """No single node with enough memory and pCPUs: spread, or relax the pCPU count."""
        need, vcpus = request.memory, request.vcpus
        for relax in (False, True):
            if relax:
                best = self._best_single(avail, vcpus_on, need, vcpus, relax=True)
                if best >= 0:
                    return self._single(best, request, True,
                                        f"fits on node {best} alone ({format_size(avail[best] - need)} left there "
                                        f"after it); no node has {vcpus} pCPUs, so its vCPUs share")
            if request.policy.on_exhaust == "fail":
                continue
            found = self._best_set(avail, vcpus_on, request, relax)
            if found is not None:
                nodes, distance = found
                why = (f"no single node has {format_size(need)} available; nodes "
                       f"{','.join(map(str, nodes))} (max distance {distance}) hold it")
                if relax:
                    why += f"; no set of nodes has {vcpus} pCPUs, so its vCPUs share"
                return self._result(nodes, avail, request, relax, why)
        most = max(range(self.n), key=lambda i: avail[i])
        raise NoCapacity(f"no single node can hold {format_size(need)} (at most {format_size(avail[most])} "
                         f"on node {most}) and on_exhaust=fail forbids spreading",
                         ("node", str(need), str(avail[most])))

    def _best_set(self, cap: List[int], vcpus_on: Sequence[int], request: Request, relax: bool):
        """Smallest max distance exactly (threshold by threshold); then the fewest
        nodes, the smallest mean distance, the most headroom, the least load."""
        need = request.memory
        vcpus = 0 if relax else request.vcpus
        pcpus = self.pcpus
        for t in self.thresholds:
            best = None
            for clique in self.clique_members[t]:
                # nodes without memory to give add nothing to a set
                members = [m for m in clique if cap[m] > 0]
                if sum(cap[m] for m in members) < need or sum(pcpus[m] for m in members) < vcpus:
                    continue
                # every pair in a clique is within t: take the fewest nodes, biggest first
                members.sort(key=lambda m: (-cap[m], vcpus_on[m] / (pcpus[m] or 1), m))
                chosen: List[int] = []
                have = cpus = 0
                for m in members:
                    chosen.append(m)
                    have += cap[m]
                    cpus += pcpus[m]
                    if have >= need and cpus >= vcpus:
                        break
                chosen.sort()
                key = (len(chosen), self._distance_key(chosen)[1], need - have, self._load(chosen, vcpus_on),
                       tuple(chosen))
                if best is None or key < best[1]:
                    best = (chosen, key)
            if best is not None:
                return best[0], t
        return None

    # --- nodes listed by the policy ---------------------------------------------------------------
    def _order(self, avail: List[int], vcpus_on: Sequence[int], request: Request) -> List[int]:
        policy = request.policy
        order = list(policy.nodes)
        if policy.nearest:
            if order:
                start = order[0]
            else:
                fits = [i for i in range(self.n) if avail[i] >= request.memory]
                pool = fits or list(range(self.n))
                start = min(pool, key=lambda i: (-avail[i], self._load([i], vcpus_on), i))
                order = [start]
            order += [m for m in self.nearest[start] if m not in order]
        return order

    def _place_ordered(self, avail: List[int], vcpus_on: Sequence[int], request: Request) -> Placement:
        policy, need = request.policy, request.memory
        order = self._order(avail, vcpus_on, request)
        first = order[0]
        if policy.mode == "best_effort":
            # fewest nodes: the first listed node that holds it alone
            for k, node in enumerate(order):
                if avail[node] >= need:
                    why = f"fits on node {node}"
                    if k:
                        skipped = ",".join(map(str, order[:k]))
                        why += f"; listed node{'s' if k > 1 else ''} {skipped} {'are' if k > 1 else 'is'} full"
                    return self._result([node], avail, request, node != first, why)
        prefix = self._smallest_prefix(order, avail, need)
        if prefix is not None:
            if prefix == [first]:
                why = f"fits on node {first}"
            elif len(prefix) == 1:
                why = f"node {first} is full; the next listed node {prefix[0]} holds it"
            else:
                why = f"node {first} is short; memory spreads over listed nodes {','.join(map(str, prefix))}"
            return self._result(prefix, avail, request, prefix != [first], why)
        listed_free = sum(avail[n] for n in order)
        if policy.on_exhaust == "fail":
            which = f"nodes {','.join(map(str, order))} have" if len(order) > 1 else f"node {order[0]} has"
            raise NoCapacity(f"{which} {format_size(listed_free)} available; "
                             f"the VM needs {format_size(need)} and on_exhaust=fail",
                             ("nodes", ",".join(map(str, order)), str(need), str(listed_free)))
        extended = order + [m for m in self.nearest[first] if m not in order]
        prefix = self._smallest_prefix(extended, avail, need)
        assert prefix is not None  # the host as a whole has room (checked above)
        extra = [n for n in prefix if n not in order]
        why = (f"listed nodes {','.join(map(str, order))} are short ({format_size(listed_free)} available); "
               f"fell back to nearest node{'s' if len(extra) > 1 else ''} {','.join(map(str, extra))}")
        return self._result(prefix, avail, request, True, why)

    @staticmethod
    def _smallest_prefix(order: Sequence[int], avail: List[int], need: int) -> Optional[List[int]]:
        have = 0
        for i, node in enumerate(order):
            have += avail[node]
            if have >= need:
                return [n for n in order[:i + 1] if avail[n] > 0] or [order[0]]
        return None

    # --- the result -------------------------------------------------------------------------------
    def _single(self, node: int, request: Request, fallback: bool, reason: str) -> Placement:
        """All memory on one node that has room: no striping to predict."""
        pages = (request.memory + (1 << PAGE_SHIFT) - 1) >> PAGE_SHIFT
        cpus = self.node_cpus[node]
        if request.policy.mode == "strict":
            soft, hard = None, cpus
        else:
            soft, hard = cpus, None
        return Placement((node,), ((node, pages << PAGE_SHIFT),), soft, hard, fallback, reason, request.policy)

    def _result(self, nodes: Sequence[int], avail: List[int], request: Request, fallback: bool,
                reason: str, striped_all: bool = False) -> Placement:
        """Placement over several nodes: predict Xen's striping over them."""
        pages = (request.memory + (1 << PAGE_SHIFT) - 1) >> PAGE_SHIFT
        budget = [a >> PAGE_SHIFT for a in avail]
        got, _ = distribute(pages, budget, sorted(nodes), -1, SUPERPAGE if request.translated else 1)
        memory = tuple(sorted((n, p << PAGE_SHIFT) for n, p in got.items() if p))
        cpus = self.topology.cpus_of_nodes(nodes)
        if striped_all:
            soft = hard = None
            nodes = [n for n, _ in memory]
        elif request.policy.mode == "strict":
            soft, hard = None, cpus
        else:
            soft, hard = cpus, None
        return Placement(tuple(sorted(nodes)), memory, soft, hard, fallback, reason, request.policy)
