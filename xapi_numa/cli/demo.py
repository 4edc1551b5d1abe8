"""``make demo``: the seed scenario on the embedded simulated host.

Two nodes of 28 pCPUs; guests A (soft affinity 0-27), B and C (soft 28-55)
with 28 busy vCPUs each.  A is paused, later unpaused, and B paused soon
after.  Every simulated second it prints, per guest, how many vCPUs run (or
wait) outside their soft affinity, under credit1 and under credit2, first
with Xen alone and then with xapi-numad's cycle running once a second.
Every figure comes from the simulator through the Hypervisor port.
"""

import os
import tempfile
import time
from typing import List, Optional, TextIO, Tuple

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.render import table
from xapi_numa.core.topology import Topology
from xapi_numa.ops import queries

GUESTS = (("A", "0-27"), ("B", "28-55"), ("C", "28-55"))
VCPUS = 28
MEMORY = 8 << 30
END = 20.0
# (time in seconds, action, guest): the admin's sequence.
TIMELINE: Tuple[Tuple[float, str, str], ...] = (
    (3.0, "pause", "A"),
    (8.0, "unpause", "A"),
    (8.5, "pause", "B"),
)


def run_scenario(path: str, scheduler: str, seed: int, daemon: bool = False, step: float = 0.5,
                 sample_every: float = 1.0, stats: Optional[dict] = None) -> List[dict]:
    """Run the seed scenario on a fresh simulated host; one row per ``sample_every``.

    With ``daemon``, xapi-numad's cycle runs once per simulated second.
    """
    from xapi_numa.ops.runtime import Runtime
    from xapi_numa.state.db import Database

    topo = Topology.uniform(2, 28, 64 << 30)
    sim = SimHypervisor.init(path, topo, scheduler, seed, force=True)
    domids = {}
    for name, soft in GUESTS:
        domids[name] = sim.create(name, VCPUS, MEMORY, soft=topo.parse_cpus(soft), load="busy")
    homer = Runtime(sim, Database(path + ".ledger.db")) if daemon else None
    rows = []
    events = list(TIMELINE)
    ticks = int(round(END / step))
    for i in range(1, ticks + 1):
        sim.run(step)
        now = round(i * step, 3)
        done = []
        while events and events[0][0] <= now:
            _, action, guest = events.pop(0)
            getattr(sim, action)(domids[guest])
            done.append(f"{action} {guest}")
            if stats is not None and homer is not None:
                stats["writes_before_last_event"] = homer.writes
        if homer is not None and abs(now - round(now)) < 1e-9:
            homer.cycle()
        if abs(now / sample_every - round(now / sample_every)) > 1e-9 and not done:
            continue
        paused = {d.name for d in sim.domains() if d.paused}
        counts = queries.outside_soft_counts(queries.vcpu_rows(sim, list(domids.values())))
        rows.append({"time": now, "events": done,
                     "outside": {g: (None if g in paused else counts.get(g, 0)) for g, _ in GUESTS}})
    if stats is not None and homer is not None:
        stats["writes"] = homer.writes
    return rows


def render(scheduler: str, rows: List[dict], daemon: bool = False) -> str:
    title = {"credit": "credit1 (sched=credit)", "credit2": "credit2 (Xen's default)"}[scheduler]
    title += ", with xapi-numad" if daemon else ", Xen alone"
    lines = [f"== {title}: vCPUs outside their soft affinity (of {VCPUS} per guest)"]
    body = [[f"{r['time']:.1f}s", ", ".join(r["events"])]
            + ["paused" if r["outside"][g] is None else r["outside"][g] for g, _ in GUESTS] for r in rows]
    lines.append(table(["time", "event"] + [g for g, _ in GUESTS], body))
    end = rows[-1]["outside"]
    stuck = [g for g, _ in GUESTS if end[g]]
    last_event = max(t for t, _, _ in TIMELINE)
    if stuck:
        lines.append(f"-> {END - last_event:.1f}s after the last pause, {' and '.join(stuck)} still have "
                     f"{' and '.join(str(end[g]) for g in stuck)} vCPUs outside their soft affinity: "
                     "nothing brings them home.")
    else:
        lines.append("-> every running vCPU is back inside its soft affinity at the end.")
    return "\n".join(lines)


def run_demo(seed: int, schedulers: List[str], out: TextIO) -> int:
    from xapi_numa.errors import InvalidArgument

    for i, s in enumerate(schedulers):
        if s not in ("credit", "credit2"):
            raise InvalidArgument("--schedulers", f"unknown scheduler {s!r}", "credit, credit2")
        if s in schedulers[:i]:
            raise InvalidArgument("--schedulers", f"{s!r} is listed twice", "credit, credit2, each at most once")
    out.write("Seed scenario: 2 nodes x 28 pCPUs; A soft 0-27, B and C soft 28-55, 28 busy vCPUs each.\n"
              "Timeline: " + "; ".join(f"{a} {g} at {t:g}s" for t, a, g in TIMELINE) + f"; end at {END:g}s.\n\n")
    with tempfile.TemporaryDirectory(prefix="xapi-numa-demo-") as tmp:
        for scheduler in schedulers:
            for daemon in (False, True):
                started = time.monotonic()
                stats: dict = {}
                rows = run_scenario(os.path.join(tmp, f"{scheduler}-{daemon}.json"), scheduler, seed, daemon,
                                    stats=stats)
                elapsed = time.monotonic() - started
                out.write(render(scheduler, rows, daemon) + "\n")
                extra = f", {stats['writes']} affinity writes by xapi-numad" if daemon else ""
                out.write(f"   ({END:g} simulated seconds in {elapsed:.1f}s of wall time, seed {seed}{extra})\n\n")
    return 0
