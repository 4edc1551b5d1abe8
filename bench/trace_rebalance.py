"""Where the work goes: one scenario run second by second, static placement beside the rebalancer.

Diagnostics for ``bench_rebalance.py`` (same scenario, seed, cycle and
measure; nothing here is a goal).  Per window of simulated time and per arm:
the work done, CPU time, time waiting to run and CPU time run away from the
memory (remote), and per node the vCPU-seconds run or waiting there beyond
its pCPUs (where they ran, not where they are homed: spilled vCPUs count on
the node that took them); then
every decision of the rebalancer that moved a home, with the node loads it
saw.  For bursty, the hindsight layout (bench_rebalance.BURSTY_HINDSIGHT, as
soft affinity) runs as a third arm: what the rebalancer loses to it is what
learning the bursts and moving the memory cost.

``python bench/trace_rebalance.py [SEED [SCENARIO [WINDOW]]]`` (defaults 1, bursty, 20 s).
"""
import os
import sys
import tempfile
from typing import Dict, List, Tuple

import bench_rebalance as bench
from xapi_numa.backends.sim import scenarios
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database

FIELDS = ("work", "cpu_time", "wait_time", "remote_cpu_time")
Row = Tuple[float, List[float], List[float]]  # (time, totals per FIELDS, per node: demand above pCPUs)


def _sim(arm: str, name: str, seed: int, path: str) -> SimHypervisor:
    if arm != "hindsight":
        return scenarios.build(name, path, seed)
    topo = scenarios.topology()
    sim = SimHypervisor.init(path, topo, "credit2", seed, dom0_vcpus=1, dom0_memory=256 << 20, force=True)
    for g in scenarios.guests(name, seed):
        cpus = topo.cpus_of_nodes([bench.BURSTY_HINDSIGHT.get(g.name, g.node)])
        sim.create(g.name, g.vcpus, g.memory, soft=cpus, load=g.load, dtype=g.type)
    return sim


def trace(arm: str, name: str, seed: int, tmp: str) -> Tuple[List[Row], List[str], float]:
    """Per cycle: the totals and each node's demand above capacity; the home moves decided."""
    path = os.path.join(tmp, "{}-{}.json".format(name, arm))
    sim = _sim(arm, name, seed, path)
    rt = Runtime(sim, Database(path + ".db"), Settings(rebalancing=arm == "rebalancer"))
    guests = {d.domid for d in sim.domains() if d.domid != 0}
    prev = [sim.perf_counters()]
    rows: List[Row] = []
    moves: List[str] = []
    seen = [None]

    def cycle(s: SimHypervisor, t: float) -> None:
        now = s.perf_counters()
        totals = [sum(now["domains"][d][f] - prev[0]["domains"][d][f] for d in guests) for f in FIELDS]
        over = [max(0.0, now["node_run"][n] + now["node_wait"][n] - prev[0]["node_run"][n]
                    - prev[0]["node_wait"][n] - bench.CYCLE * scenarios.CPUS_PER_NODE) for n in range(scenarios.NODES)]
        prev[0] = now
        rt.cycle()
        rows.append((t, totals, over))
        decision, seen[0] = (rt.last_decision if rt.last_decision is not seen[0] else None), rt.last_decision
        if decision is not None and decision.note.startswith("moving"):
            moves.append("{:5.0f}s {}".format(t, decision.note))

    metrics = scenarios.run(sim, bench.SECONDS, bench.CYCLE, cycle)
    return rows, moves, metrics.total_work


def _windows(rows: List[Row], width: float) -> Dict[int, Tuple[List[float], List[float]]]:
    out: Dict[int, Tuple[List[float], List[float]]] = {}
    for t, totals, over in rows:
        key = int((t - 1e-9) // width)
        acc = out.setdefault(key, ([0.0] * len(FIELDS), [0.0] * len(over)))
        for i, x in enumerate(totals):
            acc[0][i] += x
        for i, x in enumerate(over):
            acc[1][i] += x
    return out


def main(seed: int, name: str, width: float) -> None:
    arms = ("static", "rebalancer") + (("hindsight",) if name == "bursty" else ())
    with tempfile.TemporaryDirectory() as tmp:
        runs = {arm: trace(arm, name, seed, tmp) for arm in arms}
    print("{} seed {}: per {:.0f} s window, each arm: work / cpu / wait / remote cpu  [vCPU-s run or waiting "
          "beyond the pCPUs, per node]".format(name, seed, width))
    windows = {arm: _windows(runs[arm][0], width) for arm in arms}
    for key in sorted(windows[arms[0]]):
        cells = []
        for arm in arms:
            totals, over = windows[arm][key]
            cells.append("{:5.0f} {:4.0f} {:3.0f} {:4.0f} [{}]".format(*totals, " ".join("{:3.0f}".format(o) for o in over)))
        print("{:3.0f}-{:3.0f}s  {}".format(key * width, (key + 1) * width, "  |  ".join(cells)))
    for arm in arms:
        rows = runs[arm][0]
        totals = [sum(r[1][i] for r in rows) for i in range(len(FIELDS))]
        print("{:10s} work {:.0f} ({:.4f}x static), cpu {:.0f}, wait {:.0f}, remote cpu {:.0f}".format(
            arm, totals[0], runs[arm][2] / runs["static"][2], totals[1], totals[2], totals[3]))
    print("rebalancer's home moves:")
    for line in runs["rebalancer"][1]:
        print("  " + line)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else bench.SEED, sys.argv[2] if len(sys.argv) > 2 else "bursty",
         float(sys.argv[3]) if len(sys.argv) > 3 else 20.0)
