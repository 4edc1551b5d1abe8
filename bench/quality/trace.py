"""Seeded hosts and start/stop traces for the quality benchmark.

A host: 2, 4, 8 or 16 nodes of 128 GiB and 16 cores, with or without SMT
siblings (2 threads per core), and a regular (hierarchical: nodes of a socket
close, sockets further) or irregular (seeded random, like AMD's tables) SLIT.
A trace: Poisson arrivals, exponential lifetimes sized by Little's law so the
host runs about 88 % full on average (so starts are refused now and then at
the peaks), VM sizes from 1/128 of a node to over one node.
"""

import heapq
import random
from typing import List, Tuple

import attrs

from xapi_numa.core.topology import Topology

GIB = 1 << 30
NODE_MEMORY = 128 * GIB
CORES_PER_NODE = 16
TARGET_FILL = 0.88

# (vCPUs, memory as a fraction of a node, weight); the last two never fit one
# node: 24 vCPUs exceed its 16 cores, 5/4 of a node its memory.
SIZES = [(1, 1 / 128, 20), (2, 1 / 64, 20), (2, 1 / 32, 15), (4, 1 / 16, 15), (8, 1 / 8, 10),
         (8, 1 / 4, 8), (16, 3 / 8, 5), (12, 1 / 2, 4), (8, 3 / 4, 2), (24, 1 / 4, 1), (32, 5 / 4, 1)]


@attrs.frozen
class HostSpec:
    nodes: int
    smt: bool
    slit: str  # "regular" or "irregular"
    distances: Tuple[Tuple[int, ...], ...]

    @property
    def name(self) -> str:
        return f"{self.nodes}n-{self.slit[:3]}-{'smt' if self.smt else 'nosmt'}"

    def topology(self) -> Topology:
        threads = 2 if self.smt else 1
        per_node = CORES_PER_NODE * threads
        cpu_to_node, cores, sockets = [], [], []
        for node in range(self.nodes):
            for t in range(threads):
                for c in range(CORES_PER_NODE):
                    cpu_to_node.append(node)
                    cores.append(node * CORES_PER_NODE + c)  # siblings share a core id
                    sockets.append(node // 4)
        assert len(cpu_to_node) == self.nodes * per_node
        return Topology.from_arrays(cpu_to_node, self.distances, [NODE_MEMORY] * self.nodes,
                                    cpu_to_core=cores, cpu_to_socket=sockets)


@attrs.frozen
class Vm:
    vid: int
    vcpus: int
    memory: int
    dtype: str = "hvm"  # how libxc builds its RAM (core.xenalloc.build_extents)


@attrs.frozen
class Event:
    time: float
    start: bool
    vm: Vm


def regular_distances(n: int) -> List[List[int]]:
    """Hierarchical: 2 nodes 10/21; sockets of 2 (4 nodes) or 4 nodes at 11/12 inside,
    21 to a neighbouring socket, 32 to the far ones (16 nodes: a ring of 4 sockets)."""
    if n == 2:
        return [[10, 21], [21, 10]]
    per = 2 if n == 4 else 4
    inside = 11 if per == 2 else 12
    sockets = n // per

    def far(a: int, b: int) -> int:
        hops = min((a - b) % sockets, (b - a) % sockets)
        return 21 if hops <= 1 else 32

    return [[10 if i == j else (inside if i // per == j // per else far(i // per, j // per))
             for j in range(n)] for i in range(n)]


def irregular_distances(n: int, rng: random.Random) -> List[List[int]]:
    """Seeded random symmetric distances from a set like AMD's, one direction bumped now and then."""
    d = [[10] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            d[i][j] = d[j][i] = rng.choice([12, 16, 16, 21, 22, 22, 28, 32])
    for i in range(n):
        for j in range(n):
            if i != j and rng.random() < 0.05:
                d[i][j] += 1  # asymmetric entries exist in real SLITs
    return d


def hosts(seed: int = 1) -> List[HostSpec]:
    rng = random.Random(seed)
    out = []
    for n in (2, 4, 8, 16):
        for slit in ("regular", "irregular"):
            d = regular_distances(n) if slit == "regular" else irregular_distances(n, rng)
            for smt in (False, True):
                out.append(HostSpec(n, smt, slit, tuple(tuple(r) for r in d)))
    return out


def make_trace(host: HostSpec, seed: int, starts: int) -> List[Event]:
    """``starts`` VM starts and their stops, in time order."""
    rng = random.Random(seed)
    weights = [w for _, _, w in SIZES]
    mean_fraction = sum(f * w for _, f, w in SIZES) / sum(weights)
    lifetime = TARGET_FILL * host.nodes / mean_fraction  # arrivals at rate 1
    events: List[Tuple[float, int, Event]] = []
    t = 0.0
    for vid in range(starts):
        t += rng.expovariate(1.0)
        vcpus, fraction, _ = rng.choices(SIZES, weights)[0]
        memory = int(fraction * NODE_MEMORY) // (1 << 21) << 21  # whole 2 MiB
        vm = Vm(vid, vcpus, memory)
        heapq.heappush(events, (t, 2 * vid + 1, Event(t, True, vm)))
        end = t + rng.expovariate(1.0 / lifetime)
        heapq.heappush(events, (end, 2 * vid, Event(end, False, vm)))
    return [heapq.heappop(events)[2] for _ in range(len(events))]
