"""``make demo``, second part: uneven load, static placement against the rebalancer.

Two scenarios of the simulator (:mod:`xapi_numa.backends.sim.scenarios`: 4 nodes
x 4 pCPUs), each run twice on the same seed -- with xapi-numad's cycle but the
rebalancer off, then with it on -- and shown side by side:

* ``asymmetric``: node 0's four guests busy, node 1 half busy, nodes 2 and 3 idle;
* ``bursty``: three guests per node in on/off phases of 120 s, nodes 0 and 1 busy
  in one half, nodes 2 and 3 in the other (run for 180 s: one phase, the other,
  the first again).

Both arms run what the daemon runs at its defaults: a cycle every second (homing,
the fix-up) and, with the rebalancer on, the rebalancer every 2 s.  For each
scenario it prints the CPU demand homed on each node and the share of memory on
its VM's home, every 20 s, static and rebalancer in one table, the home moves,
the work done and the remote accesses; and it writes an SVG chart of the node
loads over time, one row per scenario, static on the left, rebalancer on the right.
"""
import os
import tempfile
from typing import List, Sequence, TextIO, Tuple

from xapi_numa.backends.sim import scenarios
from xapi_numa.cli import plot
from xapi_numa.cli.render import table
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMoves

CYCLE = 1.0   # seconds between the daemon's cycles (xapi-numad's default --period)
EVERY = 20.0  # seconds between the table's rows
SCENARIOS = (
    ("asymmetric", 120.0, "node 0's four guests busy (8 vCPUs on 4 pCPUs), node 1 half busy, nodes 2 and 3 idle"),
    ("bursty", 180.0, "3 guests per node, on/off phases of 120 s: nodes 0 and 1 busy for 60 s while 2 and 3 "
                      "idle, then the other way round"),
)
PANEL_W, PANEL_H = 560, 220


def _run(path: str, name: str, seconds: float, seed: int, rebalancing: bool) -> Tuple[scenarios.RunMetrics, list]:
    sim = scenarios.build(name, path, seed)
    rt = Runtime(sim, Database(path + ".db"), Settings(rebalancing=rebalancing))
    metrics = scenarios.run(sim, seconds, CYCLE, lambda s, t: rt.cycle())
    names = {d.uuid: d.name for d in sim.domains()}
    return metrics, [(m, names.get(m.uuid, m.uuid)) for m in HomeMoves(rt.db).recent()]


def _cells(metrics: scenarios.RunMetrics, t: float) -> List[str]:
    s = next(x for x in metrics.samples if abs(x.t - t) < 1e-9)
    local = sum(s.local_share.values()) / len(s.local_share) if s.local_share else 1.0
    # max(): a node's demand is a difference of counters, a hair below zero when it is idle
    return ["{:.1f}".format(max(d, 0.0)) for d in s.home_demand] + ["{:.0f}%".format(100 * local)]


def _side_by_side(static: scenarios.RunMetrics, moving: scenarios.RunMetrics, seconds: float) -> str:
    nodes = len(static.capacity)
    headers = (["time"] + ["static n{}".format(n) for n in range(nodes)] + ["home"]
               + ["rebal. n{}".format(n) for n in range(nodes)] + ["home"])
    rows = []
    t = 0.0
    while t < seconds - 1e-9:
        rows.append(["{:.0f}s".format(t)] + _cells(static, t) + _cells(moving, t))
        t += EVERY
    return table(headers, rows)


def _series(metrics: scenarios.RunMetrics):
    return [("node {}".format(n), [(s.t, s.home_demand[n] / metrics.capacity[n]) for s in metrics.samples])
            for n in range(len(metrics.capacity))]


def _grid(rows: Sequence[Sequence[List[str]]]) -> str:
    """Panels in rows of two (static, rebalancer): side by side."""
    body = ['<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif">'.format(
        2 * PANEL_W, PANEL_H * len(rows)), '<rect width="100%" height="100%" fill="white"/>']
    for r, row in enumerate(rows):
        for c, elements in enumerate(row):
            body.append('<g transform="translate({},{})">'.format(c * PANEL_W, r * PANEL_H))
            body += elements
            body.append("</g>")
    body.append("</svg>")
    return "\n".join(body) + "\n"


def run_rebalance_demo(seed: int, out: TextIO, plot_path: str) -> None:
    out.write("Uneven load: 4 nodes x 4 pCPUs, guests of 2 vCPUs and 1 GiB.  Static placement (xapi-numad with\n"
              "the rebalancer off) against the rebalancer, on the same seeded trace.  Per node: the CPU demand\n"
              "(vCPUs) of the guests homed there; home: the guests' memory on their home node.\n\n")
    rows = []
    with tempfile.TemporaryDirectory(prefix="xapi-numa-demo-") as tmp:
        for name, seconds, what in SCENARIOS:
            static, _ = _run(os.path.join(tmp, name + "-static.json"), name, seconds, seed, False)
            moving, moves = _run(os.path.join(tmp, name + "-rebalancer.json"), name, seconds, seed, True)
            out.write("== {} ({:g} simulated seconds): {}\n".format(name, seconds, what))
            out.write(_side_by_side(static, moving, seconds) + "\n")
            for m, vm in moves:
                out.write("   rebalancer: {} home move at {:.0f}s, {} node {} -> {}\n".format(
                    m.kind, m.moved_at, vm, m.from_node, m.to_node))
            out.write("-> work done (CPU-seconds at full locality): static {:.0f}, rebalancer {:.0f} ({:.2f}x); "
                      "memory accesses remote: {:.0%} vs {:.0%}\n\n".format(
                          static.total_work, moving.total_work, moving.total_work / static.total_work,
                          static.remote_share, moving.remote_share))
            rows.append([plot.panel("{}, static: node load".format(name), _series(static), 2.0, seconds, "load",
                                    PANEL_W, PANEL_H),
                         plot.panel("{}, rebalancer: node load".format(name), _series(moving), 2.0, seconds,
                                    "load", PANEL_W, PANEL_H)])
    with open(plot_path, "w", encoding="utf-8") as f:
        f.write(_grid(rows))
    out.write("chart: {} (node load = homed demand / pCPUs; static left, rebalancer right)\n".format(plot_path))
