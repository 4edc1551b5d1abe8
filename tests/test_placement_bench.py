"""The quality benchmark's multi-seed summary (tiny traces; the figures are `make bench`'s)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import bench_quality  # noqa: E402


def test_across_seeds_counts_every_goal_on_every_trace_of_every_seed():
    lines = bench_quality.across_seeds([3, 4], starts=12, only=("2n-reg-nosmt", "4n-irr-smt"))
    assert len(lines) == len(bench_quality.CHECKS + bench_quality.EXTRA)
    for line, (label, _, _) in zip(lines, bench_quality.CHECKS + bench_quality.EXTRA):
        assert line.startswith("seeds 3,4: " + label) and "/4 traces" in line
        missed = int(line.split("missed on ")[1].split("/")[0])
        assert 0 <= missed <= 4


def test_the_reported_seed_is_not_one_the_weights_were_chosen_on():
    # the single-node weights were chosen on seeds 1-6 (xapi_numa.core.single_node)
    assert bench_quality.SEED not in range(1, 7)
