"""xapi-numad on the seed scenario (simulator): time back home and affinity writes,
for seeds 1-5 under credit1 and under credit2.

Baseline in the same run: Xen alone (no daemon), where displaced vCPUs stay
displaced to the end.  Sampled every 0.1 simulated seconds; the daemon's
cycle runs once per simulated second.  Goals: home within 2 s of the last
pause/unpause and at most 2 affinity writes per displaced vCPU, on every seed.
Under credit2 it also prints, with no verdict, the fewest writes an oracle's
pin-and-hold schedule needs for the 2 s goal on the same runs (credit2_bound).
"""
import os
import tempfile
from typing import List, Tuple

import credit2_bound
from common import Result

from xapi_numa.cli.demo import END, TIMELINE, run_scenario

LAST_EVENT = max(t for t, _, _ in TIMELINE)
SEEDS = (1, 2, 3, 4, 5)


def _after(rows):
    return [r for r in rows if r["time"] > LAST_EVENT]


def _displaced(row) -> int:
    return sum(v or 0 for v in row["outside"].values())


def one(scheduler: str, seed: int, tmp: str) -> Tuple[float, float, int, int, int]:
    """(seconds until all home for good, writes per displaced vCPU, displaced at the end without it,
    affinity writes after the last event, most vCPUs displaced at once after it)."""
    alone = run_scenario(os.path.join(tmp, "alone.json"), scheduler, seed, daemon=False, step=0.1, sample_every=0.1)
    stats: dict = {}
    helped = run_scenario(os.path.join(tmp, "daemon.json"), scheduler, seed, daemon=True, step=0.1,
                          sample_every=0.1, stats=stats)
    worst = max(_displaced(r) for r in _after(helped))
    home_at = next((r["time"] for r in _after(helped) if _displaced(r) == 0
                    and all(_displaced(x) == 0 for x in _after(helped) if x["time"] >= r["time"])), None)
    delay = (home_at - LAST_EVENT) if home_at is not None else float("inf")
    writes = stats["writes"] - stats.get("writes_before_last_event", 0)
    return delay, (writes / worst if worst else 0.0), _displaced(alone[-1]), writes, worst


def run() -> List[Result]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for scheduler in ("credit", "credit2"):
            figures = [one(scheduler, seed, tmp) for seed in SEEDS]
            delays = [f[0] for f in figures]
            per_vcpu = [f[1] for f in figures]
            stuck = [f[2] for f in figures]
            label = "credit1" if scheduler == "credit" else "credit2"
            detail = ("seeds {}: home after {} s; writes per displaced vCPU {} ({} writes, at most {} displaced "
                      "at once); Xen alone leaves {} displaced").format(
                ",".join(map(str, SEEDS)), ", ".join("{:.1f}".format(d) for d in delays),
                ", ".join("{:.1f}".format(w) for w in per_vcpu), "/".join(str(f[3]) for f in figures),
                "/".join(str(f[4]) for f in figures), ", ".join(map(str, stuck)))
            out.append(Result("xapi-numad, seed scenario, {}: back home (worst seed)".format(label),
                              (END - LAST_EVENT) / max(delays), "sooner than the end of the run (Xen alone never)",
                              "<= 2 s after the last pause/unpause, every seed", max(delays) <= 2.0, detail))
            out.append(Result("xapi-numad, seed scenario, {}: affinity writes (worst seed)".format(label),
                              2 / max(per_vcpu) if max(per_vcpu) else float("inf"),
                              "of the budget of 2 writes per displaced vCPU", "<= 2 per displaced vCPU, every seed",
                              max(per_vcpu) <= 2, detail))
    return out + credit2_bound.run()
