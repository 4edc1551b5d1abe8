"""Placement decision latency, beside a Python re-implementation of xenopsd's search.

For 2/4/8/16/64-node hosts: 1000 running VMs (sizes from a fixed mix) fill
the host to about 90%, and 32 more starts hold reservations in the ledger;
then the same 300 requests from the same mix are decided by both, each timed
alone.  The goal is ours: median <= 1 ms on 16 nodes.  The ratio against
xenopsd is reported without a goal: the real xenopsd is native OCaml, and its
deployed cost per decision is dominated by its debug logging (every candidate
set is logged), not by the search itself; a Python copy says little about it.
"""

import random
import statistics
import time
from typing import List

from common import Result
from xenopsd_baseline import XenopsdNUMA

from xapi_numa.core.placement import NodeLoads, Planner, Request
from xapi_numa.core.topology import Topology

G = 1 << 30
SIZES = [(1, 1 * G), (2, 2 * G), (2, 4 * G), (4, 8 * G), (8, 16 * G), (16, 32 * G), (32, 64 * G)]
WEIGHTS = [20, 25, 20, 15, 10, 6, 4]
CPUS_PER_NODE = 16


def distances(n: int) -> List[List[int]]:
    """Sockets of up to 4 nodes: 12 inside a socket, 32 across (or 10/21 for 2 nodes)."""
    if n == 2:
        return [[10, 21], [21, 10]]
    return [[10 if i == j else (12 if i // 4 == j // 4 else 32) for j in range(n)] for i in range(n)]


def build_host(n: int, rng: random.Random):
    vms = [rng.choices(SIZES, WEIGHTS)[0] for _ in range(1000)]
    total = sum(m for _, m in vms)
    per_node = int(total / 0.9 / n) + G
    topo = Topology.from_arrays([c // CPUS_PER_NODE for c in range(n * CPUS_PER_NODE)], distances(n),
                                [per_node] * n)
    planner = Planner(topo)
    n = len(topo.nodes)
    free, homed = [per_node] * n, [0] * n
    for vcpus, mem in vms:  # fill with our own engine, one VM at a time
        try:
            p = planner.place(NodeLoads.of(free, None, homed), Request(vcpus, mem))
        except Exception:
            continue
        for node, used in p.memory:
            free[node] -= used
            homed[node] += vcpus
    reserved = [0] * n
    for _ in range(RESERVATIONS):  # starts in flight: their reservations count against free memory
        vcpus, mem = rng.choices(SIZES, WEIGHTS)[0]
        try:
            p = planner.place(NodeLoads.of(free, reserved, homed), Request(vcpus, mem))
        except Exception:
            continue
        for node, used in p.memory:
            reserved[node] += used
    return topo, planner, NodeLoads.of(free, reserved, homed)


REPEAT = 20
RESERVATIONS = 32


def _single_fits(loads, topo, vcpus, mem) -> bool:
    avail = loads.available()
    return any(a >= mem and len(topo.nodes[i].cpus) >= vcpus for i, a in enumerate(avail))


def time_one(fn, *args) -> float:
    """Mean time of one call over REPEAT back-to-back calls (one call is too short to time)."""
    start = time.perf_counter()
    for _ in range(REPEAT):
        fn(*args)
    return (time.perf_counter() - start) / REPEAT


def run() -> List[Result]:
    results = []
    for n in (2, 4, 8, 16, 64):
        rng = random.Random(n)
        topo, planner, loads = build_host(n, rng)
        baseline = XenopsdNUMA(topo.distances, [node.cpus for node in topo.nodes])
        memfree = loads.available()  # xenopsd reads free less claims; reservations are our claims
        requests = [rng.choices(SIZES, WEIGHTS)[0] for _ in range(300)]
        ours, theirs = [], []
        for vcpus, mem in requests:
            req = Request(vcpus, mem)
            try:
                ours.append(time_one(planner.place, loads, req))
            except Exception:
                ours.append(float("nan"))
            theirs.append(time_one(baseline.plan, memfree, vcpus, mem))
        ours_ok = [t for t in ours if t == t]
        mine, base = statistics.median(ours_ok), statistics.median(theirs)
        ratio = base / mine
        total_ratio = sum(theirs) / sum(ours_ok)
        goal = "median <= 1 ms (ours); ratio reported, no goal" if n == 16 else "report"
        met = mine <= 1e-3 if n == 16 else None  # other host sizes: reported, no verdict
        full = 100 * (1 - sum(memfree) / (n * topo.nodes[0].memory_size))
        multi = sum(1 for vcpus, mem in requests if not _single_fits(loads, topo, vcpus, mem))
        results.append(Result(f"placement latency, {n} nodes, 1000 VMs + {RESERVATIONS} reservations", ratio,
                              "vs xenopsd's search in Python (median; real xenopsd: OCaml, cost dominated by logging)",
                              goal, met,
                              f"ours median {mine * 1e6:.1f} us, max {max(ours_ok) * 1e6:.0f} us; xenopsd-in-Python {base * 1e6:.1f} us; all {len(requests)} decisions "
                              f"{total_ratio:.1f}x faster in total; {multi} needed several nodes; host {full:.0f}% full"))
    return results
