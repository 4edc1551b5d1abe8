"""The rebalancer against static placement, on the same seeded traces (simulator).

Baseline in the same run: the same scenario with xapi-numad's cycle but the
rebalancer off (homing and the fix-up still on), so the only difference is
the rebalancer.  Per scenario: total work done (the simulator's performance
model: CPU time weighted by where the memory is), the share of memory
accesses that went to another node, the home moves made, and for each move
how long its memory took to be 90 % local.  Goals from the issue:
asymmetric and bursty >= 15 % more work and half the remote share; steady
no move and <= 1 % less work; no VM moved twice within 5 minutes; memory
90 % local within 60 s of a move at the default rate.
"""
import os
import tempfile
from typing import Dict, List, Tuple

from common import Result

from xapi_numa.backends.sim import scenarios
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMoves

SECONDS = 300.0
PERIOD = 2.0
SEED = 1


def _run(name: str, rebalancing: bool, tmp: str) -> Tuple[scenarios.RunMetrics, list, Dict[str, str]]:
    path = os.path.join(tmp, "{}-{}.json".format(name, rebalancing))
    sim = scenarios.build(name, path, SEED)
    rt = Runtime(sim, Database(path + ".db"), Settings(rebalancing=rebalancing))
    metrics = scenarios.run(sim, SECONDS, PERIOD, lambda s, t: rt.cycle())
    names = {d.uuid: d.name for d in sim.domains()}
    return metrics, HomeMoves(rt.db).recent(), names


def _follow_delays(metrics: scenarios.RunMetrics, moves, names) -> List[float]:
    """Seconds from each home move until the VM's memory was 90 % local again."""
    delays = []
    start = None
    for move in moves:
        name = names.get(move.uuid)
        start = start if start is not None else 0.0
        after = [s for s in metrics.samples if s.t >= move.moved_at - 1e-9 and name in s.local_share]
        done = next((s.t for s in after if s.local_share[name] >= 0.9), None)
        delays.append(float("inf") if done is None else done - move.moved_at)
    return delays


def _hold_down_kept(moves) -> bool:
    last: Dict[str, float] = {}
    for m in sorted(moves, key=lambda m: m.moved_at):
        if m.uuid in last and m.moved_at - last[m.uuid] < 300:
            return False
        last[m.uuid] = m.moved_at
    return True


def run() -> List[Result]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("asymmetric", "bursty", "diurnal", "steady"):
            static, _, _ = _run(name, False, tmp)
            moving, moves, names = _run(name, True, tmp)
            ratio = moving.total_work / static.total_work if static.total_work else 1.0
            remote = (moving.remote_share / static.remote_share) if static.remote_share else 0.0
            delays = _follow_delays(moving, moves, names)
            detail = ("{} home moves; work {:.0f} vs {:.0f} static; remote accesses {:.1%} vs {:.1%}; memory 90% "
                      "local after {}; hold-down {}; {:.0f} s simulated, seed {}".format(
                          len(moves), moving.total_work, static.total_work, moving.remote_share, static.remote_share,
                          ", ".join("{:.0f}s".format(d) for d in delays) or "-",
                          "kept" if _hold_down_kept(moves) else "BROKEN", SECONDS, SEED))
            follow_ok = all(d <= 60 for d in delays) and _hold_down_kept(moves)
            if name == "steady":
                out.append(Result("rebalancer, steady load", ratio, "of static placement's work",
                                  "0 moves, >= 0.99x", not moves and ratio >= 0.99, detail))
            elif name == "diurnal":
                out.append(Result("rebalancer, diurnal load", ratio, "of static placement's work",
                                  "reported (no goal)", True, detail))
            else:
                out.append(Result("rebalancer, {} load".format(name), ratio, "of static placement's work",
                                  ">= 1.15x, remote share <= 0.5x, 90% local within 60 s",
                                  ratio >= 1.15 and remote <= 0.5 and follow_ok,
                                  detail + "; remote share {:.2f}x".format(remote)))
    return out


if __name__ == "__main__":
    for r in run():
        print("[{}] {}: {:.2f}x {} (goal {}); {}".format("ok " if r.met else "MISS", r.name, r.ratio, r.unit, r.goal,
                                                        r.detail))
