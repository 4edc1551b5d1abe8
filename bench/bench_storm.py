"""Boot storm: 32 processes place and start VMs at once on a simulated host.

A 4-node host is filled to about 90%; then 32 processes, released together,
each decide where a VM goes, wait as a real VM.start would (the build takes
a while), and start it with a boot-time hard pin on the chosen nodes.
Measured: the share of started VMs whose memory landed entirely on the
nodes chosen for them.  With the ledger, reservations keep concurrent starts
apart; the baseline reads free memory only, as xenopsd does.
"""

import multiprocessing
import os
import random
import tempfile
import time
from typing import List

from common import Result

from xapi_numa.errors import NoCapacity
from xapi_numa.state.ledger import Ledger
from xapi_numa.core.placement import NodeLoads, Planner, Request
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.ops.reserve import place_and_reserve
from xapi_numa.core.topology import Topology

G = 1 << 30
M = 1 << 20
STARTS = 32
VM_MEMORY = 160 * M


def build_host(path: str) -> None:
    topo = Topology.uniform(4, 8, 16 * G)
    sim = SimHypervisor.init(path, topo, "credit2", 3, dom0_vcpus=2, dom0_memory=512 * M)
    rng = random.Random(5)
    # fill each node to about 90% with single-node guests (uneven on purpose)
    for node, target in enumerate((0.86, 0.88, 0.90, 0.92)):
        used = 128 * M  # dom0's share
        i = 0
        while used + G <= target * 16 * G:
            size = rng.choice((512 * M, G))
            sim.create(f"fill-{node}-{i}", 1, size, soft=topo.cpus_of_nodes([node]), load="idle")
            used += size
            i += 1


def _start(path: str, ledger_path: str, index: int, use_ledger: bool, barrier, results) -> None:
    sim = SimHypervisor(path)
    rng = random.Random(index)
    vm = f"00000000-0000-4000-8000-{index:012d}"
    request = Request(2, VM_MEMORY)
    barrier.wait()
    try:
        if use_ledger:
            placement, _, _ = place_and_reserve(sim, Ledger(ledger_path), request, vm, ttl=60)
        else:
            topo = sim.topology()
            placement = Planner(topo).place(
                NodeLoads.of([m.claimable for m in sim.node_memory()]), request)
    except NoCapacity:
        results.put((index, "refused"))
        return
    time.sleep(rng.uniform(0.05, 0.25))  # the toolstack builds the domain
    try:
        domid = sim.create(f"vm-{index}", 2, VM_MEMORY, hard=placement.hard or placement.soft, uuid=vm,
                           load="idle", auto_numa=False)
    except NoCapacity:
        results.put((index, "failed"))
        return
    pages = sim.node_pages(domid)
    outside = sum(p for n, p in pages.items() if n not in placement.nodes)
    if use_ledger:
        Ledger(ledger_path).release(vm)
    results.put((index, "local" if outside == 0 else "spilled"))


def storm(use_ledger: bool) -> dict:
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "host.json")
        build_host(path)
        ledger_path = os.path.join(tmp, "ledger.db")
        Ledger(ledger_path).close()
        barrier = ctx.Barrier(STARTS)
        results = ctx.Queue()
        procs = [ctx.Process(target=_start, args=(path, ledger_path, i, use_ledger, barrier, results))
                 for i in range(STARTS)]
        for p in procs:
            p.start()
        outcome = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
    counts = {"local": 0, "spilled": 0, "refused": 0, "failed": 0}
    for _, what in outcome:
        counts[what] += 1
    return counts


def run() -> List[Result]:
    with_ledger = storm(True)
    without = storm(False)

    def share(c):
        started = c["local"] + c["spilled"] + c["failed"]
        return c["local"] / started if started else 0.0

    ours, base = share(with_ledger), share(without)
    ratio = ours / base if base else float("inf")
    return [Result("boot storm, 32 concurrent starts, 4-node host at 90%", ratio,
                   "more VMs entirely on their chosen nodes than without reservations",
                   "100% with the ledger where capacity allows", ours == 1.0,
                   f"with ledger {100 * ours:.0f}% local ({with_ledger}); baseline without reservations "
                   f"{100 * base:.0f}% ({without})")]
