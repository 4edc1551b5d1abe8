"""Placement quality on start/stop traces: ours against xenopsd and libxl, same traces.

Prints one table per host (``ours`` is the engine's default single-node rule,
``ours-<rule>`` the others, ``ours-hole`` the previous default; every rule:
split share of VMs that fit one node,
access distance mean/p99, nodes spanned, memory and vCPU imbalance, refusals),
writes every figure to ``.cache/bench/quality.json``, and checks the issue's
must-show per trace: split, mean distance and memory imbalance <= the best
baseline's, vCPU imbalance within 10 % of libxl's, refusals <= the best
baseline's.  A miss is printed as a miss, with the figures.  The memory
comparison is also printed, with no verdict, over the states up to the last
start (the drain after it places nothing).  ``--seeds`` counts misses per
goal and per host size over other seeds.  Baselines:
xenopsd today (``Best_effort``), xenopsd's ``Prio_mem_only`` (today's code
path, memory-only search), xenopsd as of 2024 (memory-only search, multi-node
soft affinity, running minimum of free memory) and libxl; see
``quality/policies.py``.  Run alone: ``python bench/bench_quality.py``.
Whether the goals conflict on a trace, with the future known:
``python bench/quality/hindsight.py 2n-reg-nosmt`` (see its docstring).
"""

import json
import os
from typing import Dict, List

from common import Result
from quality.policies import BASELINES, all_policies
from quality.replay import replay
from quality.trace import hosts, make_trace

STARTS = 1500
SEED = 7
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "bench", "quality.json")

CHECKS = [  # (name, metric, how ours compares with the baselines)
    ("split share <= best baseline", "split_share", "min"),
    ("mean distance <= best baseline", "distance_mean", "min"),
    ("memory imbalance <= best baseline", "memory_cv", "min"),
    ("vCPU imbalance within 10% of libxl", "vcpu_cv", "libxl"),
    # a sanity check more than a verdict: in the replay a start is refused only when the whole
    # host is short, so every rule refuses the same starts (a bench review)
    ("refusals <= best baseline (a sanity check: refused only when the host is short)", "refusals", "min"),
]
# Printed beside the goals, not instead of them: the faithful 2024
# xenopsd stops placing once the host has been full (its free-memory view only
# ever shrinks), so Xen stripes every VM over every node and its memory CV is
# near 0 by construction; this line compares with the baselines that place VMs.
PLACING = ("xenopsd", "xenopsd-memonly", "libxl")
EXTRA = [("memory imbalance <= best placing baseline (xenopsd, xenopsd-memonly, libxl)", "memory_cv", "placing")]
# Printed with no verdict: the same comparison over the states up to the last
# start.  After it a trace only stops VMs; the host empties, the CV of what is
# left grows large (0.45-0.75 on 16 nodes) and weighs about a fifth of the
# memory figure there, though no placement is made in that phase.
INFO = [("memory imbalance before the final drain <= best placing baseline", "memory_cv_before_drain", "placing")]


def run_traces(starts: int = STARTS, only=None, seed: int = SEED) -> Dict[str, List[dict]]:
    out = {}
    for host in hosts():
        if only is not None and host.name not in only:
            continue
        trace = make_trace(host, seed, starts)
        out[host.name] = [replay(host, trace, policy) for policy in all_policies(host.topology())]
    return out


def check(rows: List[dict], metric: str, how: str):
    """(met, ours, reference) for one trace."""
    by = {r["policy"]: r for r in rows}
    ours = by["ours"][metric]
    if how == "libxl":
        ref = by["libxl"][metric]
        return ours <= ref * 1.10 + 1e-12, ours, ref
    ref = min(by[b][metric] for b in (PLACING if how == "placing" else BASELINES))
    return ours <= ref + 1e-12, ours, ref


def table(name: str, rows: List[dict]) -> str:
    lines = [f"  {name}: {rows[0]['starts']} starts",
             "    {:<14}{:>8}{:>10}{:>7}{:>7}{:>8}{:>8}{:>8}{:>9}".format(
                 "rule", "split%", "(n/fit)", "dist", "p99", "nodes", "mem cv", "cpu cv", "refused")]
    for r in rows:
        lines.append("    {:<14}{:>8.1f}{:>10}{:>7.2f}{:>7.1f}{:>8.2f}{:>8.3f}{:>8.3f}{:>9}".format(
            r["policy"], 100 * r["split_share"], f"{r['splits']}/{r['fitting']}", r["distance_mean"],
            r["distance_p99"], r["nodes_spanned"], r["memory_cv"], r["vcpu_cv"], r["refusals"]))
    return "\n".join(lines)


def run() -> List[Result]:
    results = run_traces()
    print("placement quality (bench/bench_quality.py; split = VMs that fit one node whose memory landed on "
          "several; dist = SLIT distance vCPUs->memory, weighted by memory; cv = coefficient of variation "
          "over nodes):")
    for name, rows in results.items():
        print(table(name, rows))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"starts": STARTS, "seed": SEED, "traces": results}, f, indent=1, sort_keys=True)
    print(f"  figures written to {OUT}")
    out = []
    for label, metric, how in CHECKS + EXTRA + INFO:
        misses, worst = [], 0.0
        for name, rows in results.items():
            met, ours, ref = check(rows, metric, how)
            ratio = ours / ref if ref else (1.0 if ours == ref else float("inf"))
            worst = max(worst, ratio)
            if not met:
                misses.append(f"{name} {ours:.3f} vs {ref:.3f}")
        detail = (f"met on all {len(results)} traces" if not misses else
                  f"missed on {len(misses)}/{len(results)} traces: " + "; ".join(misses))
        out.append(Result(f"placement quality: {label}", worst, "ours/reference, worst trace",
                          "<= 1.1" if how == "libxl" else "<= 1.0", not misses if (label, metric, how) not in INFO
                          else None, detail))
    return out


def across_seeds(seeds: List[int], starts: int = STARTS, only=None) -> List[str]:
    """How often each goal is missed over several seeds' traces, and the mean ratio
    ours / reference: one trace's verdict turns on a few VMs out of a thousand."""
    ratios: Dict[str, List[float]] = {label: [] for label, _, _ in CHECKS + EXTRA}
    misses = dict.fromkeys(ratios, 0)
    by_nodes: Dict[str, Dict[str, int]] = {label: {} for label in ratios}  # misses per host size
    for seed in seeds:
        for name, rows in run_traces(starts, only, seed).items():
            for label, metric, how in CHECKS + EXTRA:
                met, ours, ref = check(rows, metric, how)
                ratios[label].append(ours / ref if ref else (1.0 if ours == ref else float("inf")))
                misses[label] += not met
                size = name.split("-")[0]
                by_nodes[label][size] = by_nodes[label].get(size, 0) + (not met)
    return [f"seeds {','.join(map(str, seeds))}: {label}: missed on {misses[label]}/{len(ratios[label])} traces "
            f"({', '.join(f'{k} {v}' for k, v in by_nodes[label].items())}), "
            f"mean ratio ours/reference {sum(ratios[label]) / len(ratios[label]):.3f}" for label in ratios]


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", help="also count misses over these trace seeds, e.g. 1-6 (slow: a run per seed)")
    args = parser.parse_args()
    for r in run():
        print(f"[{'info' if r.met is None else 'ok ' if r.met else 'MISS'}] {r.name}: {r.ratio:.3f}x {r.unit} (goal {r.goal}); {r.detail}")
    if args.seeds:
        first, _, last = args.seeds.partition("-")
        for line in across_seeds(list(range(int(first), int(last or first) + 1))):
            print(line)
