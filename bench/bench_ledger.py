"""Ledger throughput: reserve+release pairs per second from 32 processes at once.

Two ways: SQLite alone (free memory a constant), and as a start makes them,
with the reads of the host's free memory and claims that ``Ledger.reserve``
makes inside its write transaction (``observe.claimable`` and
``claimable_total``, as the executor passes them), on an in-memory host of
1000 domains (``memhost``: Python's work as the Xen adapter does it, no
hypercall cost; it counts the hypercalls).  The goal is judged on the second.
Baseline in the same run: one process doing the same pairs alone (no contention).
"""

import multiprocessing
import os
import tempfile
import time
from typing import List

from common import Result

from memhost import MemHost

from xapi_numa.core.topology import Topology
from xapi_numa.ops import observe
from xapi_numa.state.ledger import Ledger

PROCS = 32
SECONDS = 2.0
FREE = {n: 1 << 40 for n in range(4)}
DOMAINS = 1000


def host() -> MemHost:
    """4 nodes of 16 CPUs and 1 TiB, 1000 running domains of 2 vCPUs homed one node each."""
    topo = Topology.from_arrays([c // 16 for c in range(64)], [[10 if i == j else 21 for j in range(4)]
                                                                for i in range(4)], [1 << 40] * 4)
    hv = MemHost(topo, [1 << 40] * 4)
    every = topo.all_cpus
    for domid in range(1, DOMAINS + 1):
        node = topo.nodes[domid % 4].cpus
        hv.add_domain(domid, "00000000-0000-4000-8000-{:012d}".format(domid), 1 << 30, [every] * 2, [node] * 2)
    return hv


def _pairs(path: str, wid: int, seconds: float, barrier, out, with_reads: bool) -> None:
    ledger = Ledger(path)
    hv = host() if with_reads else None
    free = (lambda: observe.claimable(hv)) if with_reads else (lambda: FREE)
    total = (lambda: observe.claimable_total(hv)) if with_reads else None
    barrier.wait()
    end = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < end:
        vm = f"w{wid}"
        ledger.reserve(vm, {wid % 4: 1 << 30}, 60, free, host_free_now=total)
        ledger.release(vm)
        count += 1
    out.put(count)


def measure(path: str, procs: int, with_reads: bool = False) -> float:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(procs + 1)
    out = ctx.Queue()
    workers = [ctx.Process(target=_pairs, args=(path, w, SECONDS, barrier, out, with_reads)) for w in range(procs)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    total = sum(out.get(timeout=60) for _ in workers)
    elapsed = time.perf_counter() - start
    for w in workers:
        w.join()
    return total / elapsed


def run() -> List[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ledger.db")
        Ledger(path).close()
        alone, many = measure(path, 1), measure(path, PROCS)
        alone_reads, many_reads = measure(path, 1, True), measure(path, PROCS, True)
    return [Result(f"ledger, {PROCS} processes, with a start's reads in the transaction", many_reads / 2000,
                   "of the 2000 reserve+release/s goal", ">= 1x (2000 pairs/s)", many_reads >= 2000,
                   f"{many_reads:.0f} pairs/s with {PROCS} processes, each reading free memory and claims of an "
                   f"in-memory host of {DOMAINS} domains inside the transaction (no hypercall cost: Xen adds "
                   f"xc_numainfo twice and xc_physinfo once per reserve); one process alone {alone_reads:.0f}/s"),
            Result(f"ledger, {PROCS} processes, SQLite alone", many / 2000, "of the 2000 reserve+release/s goal",
                   "report (free memory a constant: no reads)", None,
                   f"{many:.0f} pairs/s with {PROCS} processes; one process alone {alone:.0f} pairs/s "
                   f"({many / alone:.2f}x of it)")]
