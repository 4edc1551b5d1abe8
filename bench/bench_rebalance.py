"""The rebalancer against static placement, on the same seeded traces (simulator).

Baseline in the same run: the same scenario with xapi-numad's cycle but the
rebalancer off (homing and the fix-up still on), so the only difference is
the rebalancer.  Both arms run what the daemon runs, at its defaults: a
cycle every second (``xapi-numad --period``: homing brings displaced vCPUs
home, the fix-up) and, in the rebalancer's arm, the rebalancer every 2 s
within it (``rebalance_period``); static placement is placement + homing,
the rebalancer's arm rebalancer + homing.  (The bench used to run one cycle
per 2 s, so homing ran half as often as in the product, in both arms.)

Per scenario: total work done (the simulator's performance model: CPU time
weighted by where the memory is), the share of memory accesses that went to
another node, the home moves made (VM, nodes, when), and for each move how
long its memory took to be 90 % local.  Goals from the issue: asymmetric
and bursty >= 15 % more work and half the remote share; steady no move and
<= 1 % less work; no VM moved twice within 5 minutes; memory 90 % local
within 60 s of a move at the default rate.  ``python bench/bench_rebalance.py
SEED [SCENARIO ...]`` runs other seeds (the planner is tuned on seeds 2-9;
``make bench`` reports seed 1).

A reference with no verdict, for bursty: a best home layout for its phases,
known in advance and set up at creation (one guest of each node that bursts
first trades homes with one of a one-hop node that bursts second: every node
then has 4, then 2, busy vCPUs per phase on its 4 pCPUs, the most even split
2-vCPU guests allow; the other layouts with that split measured within 1 %
of it), run the same way with the rebalancer off.  It is about what any
sequence of home moves could reach, and more, since it needs no move and no
burst to learn from.  With soft
affinity the credit2 balancer still pushes vCPUs off a node with more runnable
vCPUs than another, so it is run twice: homes as soft affinity (what the
rebalancer sets) and homes as hard affinity (vCPUs never leave home).
"""
import os
import tempfile
from typing import Dict, List, Tuple

import attrs

from common import Result

from xapi_numa.backends.sim import scenarios
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMoves

SECONDS = 300.0
CYCLE = 1.0  # seconds between the daemon's cycles: xapi-numad's default --period (homing every cycle)
SEED = 1
Shares = List[Tuple[float, Dict[str, Dict[int, int]]]]  # after each period: pages per node per VM (name)
# bursty: nodes 0 and 1 burst in the first half of each period, 2 and 3 in the second;
# 0-2 and 1-3 are one hop apart (scenarios.DISTANCES)
BURSTY_HINDSIGHT = {"burst-0a": 2, "burst-2a": 0, "burst-1a": 3, "burst-3a": 1}


def _run(name: str, rebalancing: bool, tmp: str, seed: int = SEED) -> Tuple[scenarios.RunMetrics, list, Shares]:
    path = os.path.join(tmp, "{}-{}.json".format(name, rebalancing))
    sim = scenarios.build(name, path, seed)
    rt = Runtime(sim, Database(path + ".db"), Settings(rebalancing=rebalancing))
    uuids = {d.domid: d.name for d in sim.domains()}  # moves and shares are told apart by VM name
    shares: Shares = []

    def cycle(s, t):
        rt.cycle()
        shares.append((t, {uuids[domid]: pages for domid, (_, pages) in s.placement_view().items()
                           if domid in uuids}))

    metrics = scenarios.run(sim, SECONDS, CYCLE, cycle)
    names = {d.uuid: d.name for d in sim.domains()}
    return metrics, [attrs.evolve(m, uuid=names.get(m.uuid, m.uuid)) for m in HomeMoves(rt.db).recent()], shares


def _hindsight(name: str, homes: Dict[str, int], hard: bool, tmp: str, seed: int = SEED) -> scenarios.RunMetrics:
    """The scenario with some guests homed elsewhere from the start, the rebalancer off."""
    path = os.path.join(tmp, "{}-hindsight-{}.json".format(name, hard))
    topo = scenarios.topology()
    sim = SimHypervisor.init(path, topo, "credit2", seed, dom0_vcpus=1, dom0_memory=256 << 20, force=True)
    for g in scenarios.guests(name, seed):
        cpus = topo.cpus_of_nodes([homes.get(g.name, g.node)])
        sim.create(g.name, g.vcpus, g.memory, hard=cpus if hard else None, soft=cpus, load=g.load, dtype=g.type)
    rt = Runtime(sim, Database(path + ".db"), Settings(rebalancing=False))
    return scenarios.run(sim, SECONDS, CYCLE, lambda s, t: rt.cycle())


def _ceiling(static: scenarios.RunMetrics, tmp: str, seed: int = SEED) -> Result:
    soft = _hindsight("bursty", BURSTY_HINDSIGHT, False, tmp, seed)
    hard = _hindsight("bursty", BURSTY_HINDSIGHT, True, tmp, seed)
    detail = ("best bursty layout from the start, rebalancer off: homes as soft affinity {:.2f}x work, remote "
              "share {:.2f}x ({:.1%}); as hard affinity {:.2f}x, {:.1%} remote; seed {}".format(
                  soft.total_work / static.total_work, soft.remote_share / static.remote_share, soft.remote_share,
                  hard.total_work / static.total_work, hard.remote_share, seed))
    return Result("rebalancer, bursty: hindsight layout", soft.total_work / static.total_work,
                  "of static placement's work", "reported (no goal): what home moves can reach", None, detail)


def _follow_delays(moves, shares: Shares) -> List[float]:
    """Seconds from each home move until 90 % of the VM's memory was on its new home
    (pages per node read after every period; judged by node, not by the home the
    vCPUs' affinity names, which a temporary pin of homing's may still hold elsewhere)."""
    delays = []
    for move in moves:
        done = None
        for t, pages in shares:
            vm = pages.get(move.uuid, {})
            total = sum(vm.values())
            if t >= move.moved_at - 1e-9 and total and vm.get(move.to_node, 0) >= 0.9 * total:
                done = t
                break
        delays.append(float("inf") if done is None else done - move.moved_at)
    return delays


def _hold_down_kept(moves) -> bool:
    last: Dict[str, float] = {}
    for m in sorted(moves, key=lambda m: m.moved_at):
        if m.uuid in last and m.moved_at - last[m.uuid] < 300:
            return False
        last[m.uuid] = m.moved_at
    return True


def run(seed: int = SEED, names: Tuple[str, ...] = ("asymmetric", "bursty", "diurnal", "steady"),
        ceiling: bool = True) -> List[Result]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            static, _, _ = _run(name, False, tmp, seed)
            moving, moves, shares = _run(name, True, tmp, seed)
            ratio = moving.total_work / static.total_work if static.total_work else 1.0
            remote = (moving.remote_share / static.remote_share) if static.remote_share else 0.0
            delays = _follow_delays(moves, shares)
            detail = ("{} home moves ({}); work {:.0f} vs {:.0f} static; remote accesses {:.1%} vs {:.1%}; memory 90% "
                      "local after {}; hold-down {}; {:.0f} s simulated, seed {}".format(
                          len(moves), ", ".join("{} {}->{} at {:.0f}s".format(m.uuid, m.from_node, m.to_node, m.moved_at)
                                                for m in moves) or "none", moving.total_work, static.total_work, moving.remote_share, static.remote_share,
                          ", ".join("{:.0f}s".format(d) for d in delays) or "-",
                          "kept" if _hold_down_kept(moves) else "BROKEN", SECONDS, seed))
            follow_ok = all(d <= 60 for d in delays) and _hold_down_kept(moves)
            if name == "steady":
                out.append(Result("rebalancer, steady load", ratio, "of static placement's work",
                                  "0 moves, >= 0.99x", not moves and ratio >= 0.99, detail))
            elif name == "diurnal":
                out.append(Result("rebalancer, diurnal load", ratio, "of static placement's work",
                                  "reported (no goal)", None, detail))
            else:
                out.append(Result("rebalancer, {} load".format(name), ratio, "of static placement's work",
                                  ">= 1.15x, remote share <= 0.5x, 90% local within 60 s",
                                  ratio >= 1.15 and remote <= 0.5 and follow_ok,
                                  detail + "; remote share {:.2f}x".format(remote)))
            if name == "bursty" and ceiling:
                out.append(_ceiling(static, tmp, seed))
    return out


if __name__ == "__main__":
    # python bench/bench_rebalance.py [SEED [SCENARIO ...]]: other seeds, for tuning on other traces
    # than the reported one
    import sys
    chosen = int(sys.argv[1]) if len(sys.argv) > 1 else SEED
    for r in run(chosen, tuple(sys.argv[2:]) or ("asymmetric", "bursty", "diurnal", "steady"), len(sys.argv) <= 2):
        mark = "info" if r.met is None else "ok " if r.met else "MISS"
        print("[{}] {}: {:.2f}x {} (goal {}); {}".format(mark, r.name, r.ratio, r.unit, r.goal,
                                                        r.detail), flush=True)
