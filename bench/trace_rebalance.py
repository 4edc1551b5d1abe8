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

Then, per arm, where homing stood: every guest vCPU found running or
waiting outside its home (soft affinity) before each cycle, in vCPU-seconds
(one sample a cycle), sorted by why homing left it there this cycle (the
first that applies, in this order): its VM excluded (a memory move in
flight, its policy); under a pin of ours and not home yet; displaced for less
than the threshold; its home has no pCPU free for it (none idle nor held by a
displaced vCPU); its home has no room (more vCPUs want to run there than it
has pCPUs); a waiting vCPU (homing brings back running ones); or due (homing
pins it in this cycle).  "home idle" counts the samples whose home had an idle
pCPU at the time: work homing could have saved.  Then the pins undone, by how
long they were held (HOLD_MAX's and the timeout's releases apart), and how
many of the VMs undone were displaced again within 10 s.

``python bench/trace_rebalance.py [SEED [SCENARIO [WINDOW]]]`` (defaults 1, bursty, 20 s).
"""
import os
import sys
import tempfile
from typing import Dict, List, Tuple

import bench_rebalance as bench
from xapi_numa.backends.sim import scenarios
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core import homing, locality
from xapi_numa.ops import observe
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database

FIELDS = ("work", "cpu_time", "wait_time", "remote_cpu_time")
Row = Tuple[float, List[float], List[float]]  # (time, totals per FIELDS, per node: demand above pCPUs)
WHY = ("excluded", "pinned, not home", "not due", "home busy", "no room", "waiting", "due")
BOUNCE = 10.0  # seconds after a restore within which a VM displaced again counts as pushed out again


class HomingLog:
    """Per cycle, before it runs: the vCPUs outside their home and why homing leaves them there."""

    def __init__(self) -> None:
        self.outside: Dict[str, float] = {w: 0.0 for w in WHY}
        self.idle: Dict[str, float] = {w: 0.0 for w in WHY}   # ... of which with an idle pCPU at home
        self.by_vm: Dict[str, List[float]] = {}                # name -> [outside, with home idle]
        self.held: List[float] = []                            # seconds each restored pin was held
        self.restored: Dict[str, float] = {}                   # name -> last restore
        self.bounces = 0
        self.restores = 0

    def sample(self, rt: Runtime, snap, names: Dict[int, str], dt: float) -> None:
        topo = snap.topology
        running = snap.running_on()
        pinned = homing.pinned_keys(snap, rt.pins.entries())
        excluded = rt.excluded(snap)
        displaced = {(v.domid, v.vcpu) for v in homing.displaced(snap)}
        has_room = homing._room_checker(snap)
        for domid, vs in snap.vcpus.items():
            if domid == 0:
                continue
            for v in vs:
                home = v.soft
                if v.state not in ("running", "runnable") or not home or home >= topo.all_cpus or v.cpu in home:
                    continue
                key = (domid, v.vcpu)
                usable = snap.pool_cpus(domid) & topo.all_cpus
                if domid in excluded:
                    why = "excluded"
                elif key in pinned:
                    why = "pinned, not home"
                elif v.state != "running" or not locality.soft_is_narrow(v, topo):
                    why = "waiting"
                elif snap.time - rt.displaced_since.get(key, snap.time) < rt.settings.threshold:
                    why = "not due"
                elif not homing.fixable(v, running, displaced, usable):
                    why = "home busy"
                elif not has_room(home & usable):
                    why = "no room"
                else:
                    why = "due"
                idle = any(cpu not in running for cpu in home & usable)
                self.outside[why] += dt
                self.idle[why] += dt if idle else 0.0
                acc = self.by_vm.setdefault(names.get(domid, str(domid)), [0.0, 0.0])
                acc[0] += dt
                acc[1] += dt if idle else 0.0
        now_displaced = {names.get(v.domid) for v in homing.displaced(snap)}
        for name, at in list(self.restored.items()):
            if name in now_displaced and snap.time - at <= BOUNCE:
                self.bounces += 1
                del self.restored[name]

    def after(self, before: list, after: list, now: float, names: Dict[str, str]) -> None:
        left = {(p.uuid, p.vcpu) for p in after}
        undone = [p for p in before if (p.uuid, p.vcpu) not in left]
        for p in undone:
            self.held.append(now - p.pinned_at)
        for uuid in {p.uuid for p in undone}:
            self.restores += 1
            self.restored[names.get(uuid, uuid)] = now

    def report(self, arm: str) -> List[str]:
        total = sum(self.outside.values())
        out = ["{:10s} vCPU-s outside home {:.0f} (home had an idle pCPU: {:.0f}); by why homing left them: {}".format(
            arm, total, sum(self.idle.values()),
            ", ".join("{} {:.0f}/{:.0f}".format(w, self.outside[w], self.idle[w]) for w in WHY if self.outside[w]))]
        if self.held:
            hold_max = sum(1 for h in self.held if homing.HOLD_MAX - 1e-6 <= h < 1e9)
            out.append("{:10s} pins undone {} (VM restores {}): held {:.0f}-{:.0f} s, mean {:.1f}; held >= HOLD_MAX "
                       "({:g} s): {}; VMs displaced again within {:g} s of a restore: {}".format(
                           "", len(self.held), self.restores, min(self.held), max(self.held),
                           sum(self.held) / len(self.held), homing.HOLD_MAX, hold_max, BOUNCE, self.bounces))
        worst = sorted(self.by_vm.items(), key=lambda kv: -kv[1][0])[:6]
        out.append("{:10s} most outside: {}".format("", ", ".join(
            "{} {:.0f}/{:.0f}".format(n, a[0], a[1]) for n, a in worst)))
        return out


def _sim(arm: str, name: str, seed: int, path: str) -> SimHypervisor:
    if arm != "hindsight":
        return scenarios.build(name, path, seed)
    topo = scenarios.topology()
    sim = SimHypervisor.init(path, topo, "credit2", seed, dom0_vcpus=1, dom0_memory=256 << 20, force=True)
    for g in scenarios.guests(name, seed):
        cpus = topo.cpus_of_nodes([bench.BURSTY_HINDSIGHT.get(g.name, g.node)])
        sim.create(g.name, g.vcpus, g.memory, soft=cpus, load=g.load, dtype=g.type)
    return sim


def trace(arm: str, name: str, seed: int, tmp: str) -> Tuple[List[Row], List[str], float, HomingLog]:
    """Per cycle: the totals and each node's demand above capacity; the home moves decided."""
    path = os.path.join(tmp, "{}-{}.json".format(name, arm))
    sim = _sim(arm, name, seed, path)
    rt = Runtime(sim, Database(path + ".db"), Settings(rebalancing=arm == "rebalancer"))
    guests = {d.domid for d in sim.domains() if d.domid != 0}
    prev = [sim.perf_counters()]
    rows: List[Row] = []
    moves: List[str] = []
    seen = [None]
    log = HomingLog()
    names = {d.domid: d.name for d in sim.domains()}
    uuid_names = {d.uuid: d.name for d in sim.domains()}

    def cycle(s: SimHypervisor, t: float) -> None:
        now = s.perf_counters()
        totals = [sum(now["domains"][d][f] - prev[0]["domains"][d][f] for d in guests) for f in FIELDS]
        over = [max(0.0, now["node_run"][n] + now["node_wait"][n] - prev[0]["node_run"][n]
                    - prev[0]["node_wait"][n] - bench.CYCLE * scenarios.CPUS_PER_NODE) for n in range(scenarios.NODES)]
        prev[0] = now
        log.sample(rt, observe.take(s, s.clock()), names, bench.CYCLE)
        before = rt.pins.entries()
        rt.cycle()
        log.after(before, rt.pins.entries(), s.clock(), uuid_names)
        rows.append((t, totals, over))
        decision, seen[0] = (rt.last_decision if rt.last_decision is not seen[0] else None), rt.last_decision
        if decision is not None and decision.note.startswith("moving"):
            moves.append("{:5.0f}s {}".format(t, decision.note))

    metrics = scenarios.run(sim, bench.SECONDS, bench.CYCLE, cycle)
    return rows, moves, metrics.total_work, log


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
    for arm in arms:
        for line in runs[arm][3].report(arm):
            print(line)
    print("rebalancer's home moves:")
    for line in runs["rebalancer"][1]:
        print("  " + line)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else bench.SEED, sys.argv[2] if len(sys.argv) > 2 else "bursty",
         float(sys.argv[3]) if len(sys.argv) > 3 else 20.0)
