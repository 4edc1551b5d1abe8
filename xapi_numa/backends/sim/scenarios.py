"""Seeded workloads for the rebalancer's benchmark and demo, and how they are measured.

Every scenario runs on the same host: 4 nodes x 4 pCPUs (one socket each),
8 GiB per node, SLIT distances of a 4-socket box where nodes 0-3 and 1-2 are
two hops apart (10 local, 16 one hop, 22 two hops).  Guests are PVH (their
memory can be moved), have 2 vCPUs and 1 GiB each, are homed by soft affinity
(their memory follows at creation), and are memory-bound 0.6 (see :mod:`.perf`).

``steady``      8 guests, 2 per node, each ``steady:60%``: every node 2.4 of 4
                pCPUs busy.  Nothing to gain; a rebalancer should stay still.
``asymmetric``  node 0: 4 busy guests (8 vCPUs on 4 pCPUs); node 1: 2 guests
                ``steady:50%``; nodes 2 and 3: 2 idle guests each.
``bursty``      12 guests, 3 per node, ``bursty:120s:50%`` with the whole guest
                in phase: nodes 0 and 1 burst together, nodes 2 and 3 in the
                other half of the period (each guest's start jittered by the
                seed), so two nodes are over-subscribed while two idle.
``diurnal``     12 guests, 3 per node, demand waving between 10% and 100% over
                10 minutes; nodes 0 and 1 peak together, 2 and 3 half a period
                later (peaks jittered by the seed).

The seed drives the host (scheduling, vCPU placement) and the jitter: the
same seed gives the same trace, so static placement and a rebalancer can be
compared on exactly the same load.

:func:`run` advances simulated time in steps of ``period`` seconds, calling
``on_period(sim, t)`` after each (where a daemon's cycle plugs in), and
measures: work done per guest and in total (:mod:`.perf`), two remote shares
per guest and overall, and per-node CPU demand over time.

The two remote shares: ``remote_share`` is what the performance model
charges for, the share of a guest's memory accesses that went to another node
than the one its vCPU ran on (weighted by run time); ``home_remote_share`` is
the share of its memory outside its home nodes (by
:mod:`xapi_numa.core.locality`, weighted by time), what a rebalancer that moves
homes and memory is judged on.  CPU demand per node comes twice: where the
vCPUs ran or waited (``demand``), and what the guests homed there asked for
(``home_demand``, a guest on several home nodes split evenly).
"""

import random
import time
from typing import Callable, Dict, List, Optional, Tuple

import attrs

from xapi_numa.core import locality
from xapi_numa.core.topology import Topology
from xapi_numa.errors import InvalidArgument
from xapi_numa.backends.sim.backend import SimHypervisor

SCENARIOS = ("steady", "asymmetric", "bursty", "diurnal")
NODES = 4
CPUS_PER_NODE = 4
MEMORY_PER_NODE = 8 << 30
DISTANCES = ((10, 16, 16, 22),
             (16, 10, 22, 16),
             (16, 22, 10, 16),
             (22, 16, 16, 10))
GUEST_VCPUS = 2
GUEST_MEMORY = 1 << 30
MEM_BOUND = "0.6"
BURST_PERIOD_S = 120
DIURNAL_PERIOD_S = 600
JITTER_S = 10


@attrs.frozen
class GuestSpec:
    """One guest of a scenario: where it is homed and what it runs."""

    name: str
    node: int
    load: str
    vcpus: int = GUEST_VCPUS
    memory: int = GUEST_MEMORY
    type: str = "pvh"  # memory a page mover can move (not PV)


@attrs.frozen
class GuestMetrics:
    """What one guest got over a run."""

    name: str
    domid: int
    work: float          # seconds of all-local CPU work done during the run
    cpu_time: float      # seconds its vCPUs ran
    remote_share: float  # of its memory accesses, the share to another node (weighted by run time)
    home_remote_share: float  # of its memory, the share outside its home nodes (weighted by time)


@attrs.frozen
class Sample:
    """One period of a run: per-node CPU demand and each guest's local share."""

    t: float                     # simulated seconds since the run began (start of the period)
    demand: Tuple[float, ...]    # per node: vCPUs running or waiting there, averaged over the period
    home_demand: Tuple[float, ...]  # per node: vCPUs of the guests homed there running or waiting
    local_share: Dict[str, float]  # per guest: share of its memory on its home nodes


@attrs.frozen
class RunMetrics:
    """The outcome of :func:`run`."""

    seconds: float
    period: float
    total_work: float
    remote_share: float       # all guests' remote accesses / all their accesses
    home_remote_share: float  # all guests' memory outside home, weighted by time and size
    guests: Tuple[GuestMetrics, ...]
    capacity: Tuple[int, ...]  # pCPUs per node
    samples: Tuple[Sample, ...]
    wall_seconds: float

    def to_dict(self) -> dict:
        return attrs.asdict(self)


def topology() -> Topology:
    return Topology.uniform(NODES, CPUS_PER_NODE, MEMORY_PER_NODE, [list(r) for r in DISTANCES])


def _jitter(rng: random.Random) -> int:
    return rng.randint(0, JITTER_S)


def guests(name: str, seed: int = 0) -> Tuple[GuestSpec, ...]:
    """The guests of scenario ``name``; the seed only moves bursts and peaks a little."""
    rng = random.Random(f"{name}:{seed}")
    mem = f"mem={MEM_BOUND}"
    if name == "steady":
        return tuple(GuestSpec(f"steady-{n}{i}", n, f"steady:60%:{mem}") for n in range(NODES) for i in "ab")
    if name == "asymmetric":
        layout = [(0, "busy")] * 4 + [(1, "steady:50%")] * 2 + [(2, "idle")] * 2 + [(3, "idle")] * 2
        return tuple(GuestSpec(f"asym-{n}{chr(97 + i)}", n, f"{load}:{mem}") for i, (n, load) in enumerate(layout))
    if name == "bursty":
        out = []
        for n in range(NODES):
            base = 0 if n < 2 else BURST_PERIOD_S // 2  # nodes 0-1 in one half, 2-3 in the other
            for i in "abc":
                out.append(GuestSpec(f"burst-{n}{i}", n,
                                     f"bursty:{BURST_PERIOD_S}s:50%:at={base + _jitter(rng)}s:{mem}"))
        return tuple(out)
    if name == "diurnal":
        out = []
        for n in range(NODES):
            peak = 0 if n < 2 else DIURNAL_PERIOD_S // 2
            for i in "abc":
                out.append(GuestSpec(f"wave-{n}{i}", n,
                                     f"diurnal:{DIURNAL_PERIOD_S}s:10%:100%:at={peak + _jitter(rng)}s:{mem}"))
        return tuple(out)
    raise InvalidArgument("scenario", f"unknown scenario {name!r}", ", ".join(SCENARIOS))


def build(name: str, path: str, seed: int = 0, scheduler: str = "credit2") -> SimHypervisor:
    """A fresh simulated host at ``path`` (replaced if it exists) running scenario ``name``."""
    specs = guests(name, seed)
    topo = topology()
    sim = SimHypervisor.init(path, topo, scheduler, seed, dom0_vcpus=1, dom0_memory=256 << 20, force=True)
    for g in specs:
        sim.create(g.name, g.vcpus, g.memory, soft=topo.cpus_of_nodes([g.node]), load=g.load, dtype=g.type)
    return sim


def _check_times(seconds: float, period: float) -> None:
    if not 0 < seconds <= 24 * 3600:
        raise InvalidArgument("seconds", f"{seconds}", "0 < seconds <= 86400")
    if not 0.01 <= period <= seconds:
        raise InvalidArgument("period", f"{period}", f"0.01 <= period <= seconds ({seconds})")


def _homes(sim: SimHypervisor, topo: Topology, names: Dict[int, str]) -> Dict[int, tuple]:
    """Per guest: (home nodes, share of memory on them, pages), by the one locality rule."""
    out = {}
    for domid, (vcpus, pages) in sim.placement_view().items():
        if domid in names:
            homes = locality.home_nodes(vcpus, topo)
            out[domid] = (homes, locality.local_share(pages, homes), sum(pages.values()))
    return out


def _demand(prev: dict, now: dict, homes: Dict[int, tuple], period: float,
            nr_nodes: int) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """CPU demand per node over a period: where it ran or waited, and by home."""
    where = tuple((now["node_run"][n] + now["node_wait"][n] - prev["node_run"][n] - prev["node_wait"][n])
                  / period for n in range(nr_nodes))
    by_home = [0.0] * nr_nodes
    for domid, (nodes, _, _) in homes.items():
        a, b = prev["domains"].get(domid), now["domains"].get(domid)
        if a is None or b is None:
            continue
        wanted = (b["cpu_time"] + b["wait_time"] - a["cpu_time"] - a["wait_time"]) / period
        for n in nodes:
            by_home[n] += wanted / len(nodes)
    return where, tuple(by_home)


def run(sim: SimHypervisor, seconds: float, period: float = 2.0,
        on_period: Optional[Callable[[SimHypervisor, float], None]] = None) -> RunMetrics:
    """Run for ``seconds`` of simulated time, calling ``on_period(sim, t)`` every ``period``."""
    _check_times(seconds, period)
    wall = time.perf_counter()
    topo = sim.topology()
    names = {d.domid: d.name for d in sim.domains() if d.domid != 0}
    first = prev = sim.perf_counters()
    home_remote = {domid: 0.0 for domid in names}   # seconds x share outside home
    pages_time = [0.0, 0.0]                         # page-seconds outside home, page-seconds in all
    samples: List[Sample] = []
    steps = int(round(seconds / period))
    for i in range(steps):
        homes = _homes(sim, topo, names)
        sim.run(period)
        now = sim.perf_counters()
        where, by_home = _demand(prev, now, homes, period, len(topo.nodes))
        samples.append(Sample(round(i * period, 6), where, by_home, {names[d]: h[1] for d, h in homes.items()}))
        for domid, (_, share, pages) in homes.items():
            home_remote[domid] += (1.0 - share) * period
            pages_time[0] += (1.0 - share) * pages * period
            pages_time[1] += pages * period
        prev = now
        if on_period is not None:
            on_period(sim, round((i + 1) * period, 6))
    return _metrics(names, first, prev, home_remote, pages_time, steps * period, period,
                    tuple(len(n.cpus) for n in topo.nodes), tuple(samples), time.perf_counter() - wall)


def _metrics(names: Dict[int, str], first: dict, last: dict, home_remote: Dict[int, float],
             pages_time: List[float], seconds: float, period: float, capacity: Tuple[int, ...],
             samples: Tuple[Sample, ...], wall: float) -> RunMetrics:
    out = []
    cpu_all = remote_all = 0.0
    for domid, name in sorted(names.items()):
        a, b = first["domains"].get(domid), last["domains"].get(domid)
        if a is None or b is None:
            continue  # destroyed during the run
        cpu = b["cpu_time"] - a["cpu_time"]
        remote = b["remote_cpu_time"] - a["remote_cpu_time"]
        cpu_all += cpu
        remote_all += remote
        out.append(GuestMetrics(name, domid, b["work"] - a["work"], cpu, remote / cpu if cpu else 0.0,
                                home_remote[domid] / seconds))
    return RunMetrics(seconds, period, sum(g.work for g in out), remote_all / cpu_all if cpu_all else 0.0,
                      pages_time[0] / pages_time[1] if pages_time[1] else 0.0, tuple(out), capacity,
                      samples, wall)
