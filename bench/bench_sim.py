"""How many times faster than real time the simulator runs the seed scenario.

Baseline: real time itself (the simulated seconds); measured: wall time of
the whole scenario, state file round trips included, as ``make demo`` runs it.
"""

import os
import tempfile
import time
from typing import List

from common import Result

from xapi_numa.cli.demo import END, run_scenario


def run() -> List[Result]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for scheduler in ("credit", "credit2"):
            best = None
            for attempt in range(3):
                start = time.perf_counter()
                run_scenario(os.path.join(tmp, f"{scheduler}-{attempt}.json"), scheduler, seed=1)
                elapsed = time.perf_counter() - start
                best = elapsed if best is None else min(best, elapsed)
            ratio = END / best
            results.append(Result(f"simulator, seed scenario, {scheduler}", ratio, "faster than real time",
                                  ">= 10x", ratio >= 10,
                                  f"{END:g} simulated s in {best:.2f} s wall (best of 3), 56 pCPUs, 84 busy vCPUs"))
    return results
