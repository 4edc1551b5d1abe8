"""xapi-numad on the seed scenario (simulator, credit1): time back home and affinity writes.

Baseline in the same run: Xen alone (no daemon), where displaced vCPUs stay
displaced to the end.  Sampled every 0.1 simulated seconds; the daemon's
cycle runs once per simulated second.
"""

import os
import tempfile
from typing import List

from common import Result

from xapi_numa.cli.demo import END, TIMELINE, run_scenario

LAST_EVENT = max(t for t, _, _ in TIMELINE)


def _after(rows):
    return [r for r in rows if r["time"] > LAST_EVENT]


def _displaced(row) -> int:
    return sum(v or 0 for v in row["outside"].values())


def run() -> List[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        alone = run_scenario(os.path.join(tmp, "alone.json"), "credit", 1, daemon=False, step=0.1,
                             sample_every=0.1)
        stats: dict = {}
        helped = run_scenario(os.path.join(tmp, "daemon.json"), "credit", 1, daemon=True, step=0.1,
                              sample_every=0.1, stats=stats)
    stuck_at_end = _displaced(alone[-1])
    worst = max(_displaced(r) for r in _after(helped))
    home_at = next((r["time"] for r in _after(helped) if _displaced(r) == 0
                    and all(_displaced(x) == 0 for x in _after(helped) if x["time"] >= r["time"])), None)
    delay = (home_at - LAST_EVENT) if home_at is not None else float("inf")
    writes = stats["writes"] - stats.get("writes_before_last_event", 0)
    per_vcpu = writes / worst if worst else 0.0
    return [
        Result("xapi-numad, seed scenario, credit1: back home", (END - LAST_EVENT) / delay,
               "sooner than the end of the run (Xen alone never)", "<= 2 s after the last pause/unpause",
               delay <= 2.0 and stuck_at_end > 0,
               f"with the daemon all home {delay:.1f} s after the last event and stayed home; without it "
               f"{stuck_at_end} vCPUs still displaced {END - LAST_EVENT:.1f} s after it"),
        Result("xapi-numad, seed scenario, credit1: affinity writes", 2 / per_vcpu if per_vcpu else float("inf"),
               "of the budget of 2 writes per displaced vCPU", "<= 2 writes per displaced vCPU", per_vcpu <= 2,
               f"{writes} writes for {worst} displaced vCPUs ({per_vcpu:.1f} each)"),
    ]
