"""Ledger throughput: reserve+release pairs per second from 32 processes at once.

Baseline in the same run: one process doing the same pairs alone (no contention).
"""

import multiprocessing
import os
import tempfile
import time
from typing import List

from common import Result

from xapi_numa.state.ledger import Ledger

PROCS = 32
SECONDS = 2.0
FREE = {n: 1 << 40 for n in range(4)}


def _pairs(path: str, wid: int, seconds: float, barrier, out) -> None:
    ledger = Ledger(path)
    barrier.wait()
    end = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < end:
        vm = f"w{wid}"
        ledger.reserve(vm, {wid % 4: 1 << 30}, 60, lambda: FREE)
        ledger.release(vm)
        count += 1
    out.put(count)


def measure(path: str, procs: int) -> float:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(procs + 1)
    out = ctx.Queue()
    workers = [ctx.Process(target=_pairs, args=(path, w, SECONDS, barrier, out)) for w in range(procs)]
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
        alone = measure(path, 1)
        many = measure(path, PROCS)
    return [Result(f"ledger, {PROCS} processes", many / 2000, "of the 2000 reserve+release/s goal",
                   ">= 1x (2000 pairs/s)", many >= 2000,
                   f"{many:.0f} pairs/s with {PROCS} processes; one process alone {alone:.0f} pairs/s "
                   f"({many / alone:.2f}x of it)")]
