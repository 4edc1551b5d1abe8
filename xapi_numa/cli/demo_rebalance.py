"""``make demo``, second part: uneven load, static placement against the rebalancer.

The ``asymmetric`` scenario of the simulator (:mod:`xapi_numa.backends.sim.scenarios`:
4 nodes x 4 pCPUs, node 0's four guests busy, nodes 2 and 3 idle) runs twice on
the same seed: with xapi-numad's cycle but the rebalancer off, then with it
on.  It prints the CPU demand homed on each node and the share of memory
accesses that went to another node as time passes, the work done, and
writes both runs as an SVG chart (node load and remote share over time).
"""
import os
import tempfile
from typing import List, TextIO, Tuple

from xapi_numa.backends.sim import scenarios
from xapi_numa.cli import plot
from xapi_numa.cli.render import table
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMoves

SCENARIO = "asymmetric"
SECONDS = 120.0
PERIOD = 2.0


def _run(path: str, seed: int, rebalancing: bool) -> Tuple[scenarios.RunMetrics, list]:
    sim = scenarios.build(SCENARIO, path, seed)
    rt = Runtime(sim, Database(path + ".db"), Settings(rebalancing=rebalancing))
    metrics = scenarios.run(sim, SECONDS, PERIOD, lambda s, t: rt.cycle())
    return metrics, HomeMoves(rt.db).recent()


def _rows(metrics: scenarios.RunMetrics, every: float = 20.0) -> List[list]:
    rows = []
    for s in metrics.samples:
        if abs(s.t / every - round(s.t / every)) < 1e-9:
            local = sum(s.local_share.values()) / len(s.local_share) if s.local_share else 1.0
            rows.append(["{:.0f}s".format(s.t)] + ["{:.1f}".format(d) for d in s.home_demand]
                        + ["{:.0f}%".format(100 * local)])
    return rows


def _series(metrics: scenarios.RunMetrics):
    nodes = [("node {}".format(n), [(s.t, d / c) for s in metrics.samples
                                    for d, c in [(s.home_demand[n], metrics.capacity[n])]])
             for n in range(len(metrics.capacity))]
    return nodes


def run_rebalance_demo(seed: int, out: TextIO, plot_path: str) -> None:
    out.write("Uneven load ({} scenario, {:g} simulated seconds): 4 nodes x 4 pCPUs; node 0's four guests\n"
              "busy (8 vCPUs), node 1 half busy, nodes 2 and 3 idle.  Static placement against the rebalancer.\n\n"
              .format(SCENARIO, SECONDS))
    panels = []
    with tempfile.TemporaryDirectory(prefix="xapi-numa-demo-") as tmp:
        for rebalancing in (False, True):
            metrics, moves = _run(os.path.join(tmp, "{}.json".format(rebalancing)), seed, rebalancing)
            title = "with the rebalancer" if rebalancing else "static placement (xapi-numad, rebalancer off)"
            headers = ["time"] + ["node{} demand".format(n) for n in range(len(metrics.capacity))] + ["memory home"]
            out.write("== {}: CPU demand homed on each node (pCPUs: {})\n".format(
                title, "/".join(map(str, metrics.capacity))))
            out.write(table(headers, _rows(metrics)) + "\n")
            for m in moves:
                out.write("   home move at {:.0f}s: node {} -> {} ({})\n".format(m.moved_at, m.from_node, m.to_node,
                                                                               m.kind))
            out.write("-> work done {:.0f} (CPU-seconds at full locality), {:.0%} of memory accesses remote\n\n"
                      .format(metrics.total_work, metrics.remote_share))
            panels.append(plot.panel(title + ": node load (demand / pCPUs)", _series(metrics), 2.0, SECONDS,
                                     "load"))
    with open(plot_path, "w", encoding="utf-8") as f:
        f.write(plot.svg(panels))
    out.write("chart: {}\n".format(plot_path))
