"""The rebalancer's look on a host with many VMs (pure planner, no simulator).

Baseline in the same run: the same look weighing every swap (the planner with
no limit on the swaps it weighs).  Swaps grow with the square of the VMs; the
look runs in xapi-numad's cycle every ``rebalance_period`` (2 s), so its time
is what homing and pin restores wait for.  Goals: a look in under half a
period at 200 VMs, and the same choice as weighing every swap, on a host
where swaps are the best actions: the actions chosen must include a swap and
differ from the choice with no swap weighed at all (else no swap needed
weighing, and "the same choice" could not fail).  A different choice is
printed with the gain it loses.

The host: 4 nodes of 32 pCPUs, 50 VMs of 2 vCPUs on every node (100 vCPUs
homed on each, as many on each: any single-VM move leaves its target more
exposed, the choice's first key, while a swap of two 2-vCPU VMs does not).
Node 0 is over capacity all the window (half its VMs busy), node 1 in
bursts, nodes 2 and 3 light.  Each node has 8 GiB of room for memory that
follows: with 1-4 GiB guests that limits what a period can take.  Memory
alone cannot block single-VM moves while letting swaps through: a swap must
fit each VM's memory on its target just as that VM's own move must
(``fits_room`` does not count what a swap frees).

Second row, the same load at scale: 1024 VMs on 16 nodes (64 on each, 40
pCPUs each: about the 200-VM host's load per node, nodes 2-15 light).  Goals: a
look in under half a period, and at most about linear: its time per VM under
twice the 200-VM look's in the same run (each look's time the best of 3;
that look is on 4 nodes, and a look weighs each VM to each other node, so
more nodes cost more per VM; a quadratic look would be at 5.1x).  Weighing
every swap there is no baseline in the run: it took 48-50 s (the same
choice), and the look before 2026-12-06, which listed every swap, 12 s at
1000 VMs.
"""
import random
import time
from typing import List, Tuple

from common import Result

from xapi_numa.core import rebalance, rebalance_plan
from xapi_numa.core.topology import Topology

GIB_PAGES = (1 << 30) >> 12
WINDOW = 150
PER_NODE = 50
LARGE_VMS = 1024
ROOM = 8 * GIB_PAGES  # on each node


def _series(rng: random.Random, node: int, j: int) -> Tuple[float, ...]:
    busy = j % 2 == 0
    if node == 0:  # over capacity all along
        raw = [(1.6 if busy else 0.2) + rng.uniform(-0.2, 0.2) for _ in range(WINDOW)]
    elif node == 1:  # its busy half in bursts, out of phase with each other
        phase = rng.randrange(4)
        raw = [((1.4 if (t // 25 + phase) % 4 < 2 else 0.3) if busy else 0.2) + rng.uniform(-0.2, 0.2)
               for t in range(WINDOW)]
    else:
        raw = [0.2 + rng.uniform(-0.15, 0.15) for _ in range(WINDOW)]
    return tuple(max(0.0, x) for x in raw)


def host(n_vms: int = 4 * PER_NODE, seed: int = 1, nodes: int = 4, pcpus: int = 32):
    """Every node populated alike (see the module's docstring); loads differ."""
    rng = random.Random(seed)
    per = n_vms // nodes
    vms = []
    for i in range(n_vms):
        home = i // per
        history = _series(rng, home, i % per)
        vms.append(rebalance.VmLoad(i + 1, "u{}".format(i), "vm{}".format(i), home, (0, 1), history[-1],
                                    {home: GIB_PAGES * rng.choice((1, 2, 4))}, history=history))
    return vms, Topology.uniform(nodes, pcpus, 512 << 30)


def look(vms, topo, limit: int, repeat: int = 1) -> Tuple[float, tuple]:
    """Time of one look weighing at most ``limit`` swaps (the best of ``repeat``: other
    work on the machine only ever adds to it), and the actions it chooses."""
    saved = rebalance.SWAPS_WEIGHED
    rebalance.SWAPS_WEIGHED = limit
    took = []
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            chosen = rebalance_plan.plan(vms, topo, rebalance.Settings(), room={n.id: ROOM for n in topo.nodes},
                                         max_writes=256).chosen
            took.append(time.perf_counter() - started)
        return min(took), chosen
    finally:
        rebalance.SWAPS_WEIGHED = saved


def _named(chosen) -> list:
    return [(c.kind, [(vm.uuid, vm.home, to) for vm, to in c.moves]) for c in chosen]


def run() -> List[Result]:
    vms, topo = host()
    every, every_choice = look(vms, topo, 10 ** 9)
    limited, choice = look(vms, topo, rebalance.SWAPS_WEIGHED, repeat=3)
    _, no_swaps = look(vms, topo, 0)
    gain = lambda chosen: sum(c.gain for c in chosen)  # noqa: E731
    same = _named(choice) == _named(every_choice)
    swaps_matter = any(c.kind == "swap" for c in choice) and _named(choice) != _named(no_swaps)
    lost = gain(every_choice) - gain(choice)
    detail = ("{} VMs, {} periods of history, 4 nodes: {:.2f} s weighing every swap, {:.2f} s weighing the {} "
              "most promising; chosen {} ({:.2f} pCPUs gained); {}; with no swap weighed: {} ({:.2f} pCPUs, but "
              "single-VM moves, each leaving its target more exposed)".format(
                  len(vms), WINDOW, every, limited, rebalance.SWAPS_WEIGHED, _named(choice), gain(choice),
                  "the same as weighing every swap" if same else
                  "DIFFERENT from weighing every swap: {} ({:.2f} pCPUs, {:.2f} lost)".format(
                      _named(every_choice), gain(every_choice), lost),
                  _named(no_swaps), gain(no_swaps)))
    return [Result("rebalancer look, 200 VMs, swaps the best actions", every / limited,
                   "faster than weighing every swap",
                   "the same choice as weighing every swap, a swap among it (not the choice with none "
                   "weighed), < 1 s (half the 2 s period)",
                   same and swaps_matter and limited < 1.0, detail), large(len(vms), limited)]


def large(small_vms: int, small: float) -> Result:
    """1024 VMs on 16 nodes, against the look at ``small_vms`` VMs that took ``small`` s."""
    vms, topo = host(LARGE_VMS, nodes=16, pcpus=40)
    took, choice = look(vms, topo, rebalance.SWAPS_WEIGHED, repeat=3)
    _, no_swaps = look(vms, topo, 0)
    per_vm = (took / len(vms)) / (small / small_vms)
    swaps_matter = any(c.kind == "swap" for c in choice) and _named(choice) != _named(no_swaps)
    detail = ("{} VMs on 16 nodes, {} periods of history: {:.2f} s ({:.2f} ms per VM; the {}-VM look on 4 nodes "
              "{:.2f} s, {:.2f} ms per VM); chosen {}, {}".format(
                  len(vms), WINDOW, took, 1000 * took / len(vms), small_vms, small, 1000 * small / small_vms,
                  _named(choice), "a swap among it, unlike the choice with no swap weighed" if swaps_matter else
                  "NO SWAP NEEDED: the same as with no swap weighed ({})".format(_named(no_swaps))))
    return Result("rebalancer look, 1024 VMs on 16 nodes", per_vm,
                  "the 200-VM look's time per VM (quadratic: 5.1x)",
                  "< 1 s (half the 2 s period), < 2x the 200-VM look's time per VM, a swap among the choice",
                  took < 1.0 and per_vm < 2.0 and swaps_matter, detail)


if __name__ == "__main__":
    for r in run():
        print(r)
