"""``make bench``: every figure against its baseline, measured in the same run.

Each benchmark module exposes ``run() -> list[Result]``; this prints them as
ratios with their goals.  Timings here are only meaningful relative to the
baseline measured alongside them.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_daemon  # noqa: E402
import bench_ledger  # noqa: E402
import bench_pagemove  # noqa: E402
import bench_placement  # noqa: E402
import bench_plugin  # noqa: E402
import bench_quality  # noqa: E402
import bench_rebalance  # noqa: E402
import bench_rebalance_scale  # noqa: E402
import bench_sim  # noqa: E402
import bench_storm  # noqa: E402

MODULES = [bench_sim, bench_placement, bench_quality, bench_storm, bench_ledger, bench_daemon, bench_rebalance,
           bench_rebalance_scale,
           bench_pagemove, bench_plugin]


def main() -> int:
    failed = 0
    for module in MODULES:
        for r in module.run():
            mark = "info" if r.met is None else "ok " if r.met else "MISS"
            failed += 1 if r.met is False else 0
            print(f"[{mark}] {r.name}: {r.ratio:.1f}x {r.unit} (goal {r.goal}); {r.detail}")
    print(f"{failed} goal(s) missed" if failed else "all goals met")
    return 1 if failed else 0  # a missed goal is a failed run, not a line to overlook


if __name__ == "__main__":
    sys.exit(main())
