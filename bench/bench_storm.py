"""Boot storm: 32 processes place and start VMs at once on a simulated host.

A 4-node host is filled to about 90%; then 32 processes, released together,
each decide where a VM goes, wait as a real VM.start would (the build takes
a while), and build it.  Measured: the share of the 32 starts whose memory
landed entirely on the node(s) chosen for them, and how long each start
waited for its decision (from the release to a decision it can build on).
Three schemes on the same host and seeds:

* ours: place_and_reserve with the ledger (optimistic reservations, no lock),
  then a build with a boot-time hard pin on the chosen nodes;
* xenopsd's, re-implemented from xen-api's ocaml/xenopsd/xc/domain.ml
  (``build_pre`` -> ``numa_placement``), in its order: the domain exists
  first (``domain_create``, no memory yet); under the one host-wide
  ``numa_mutex``: read each node's free less claimed memory, plan with
  ``Softaffinity.plan`` (bench/xenopsd_baseline.py, policy ``Best_effort``:
  cores = vCPUs, node usage counted across the host's starts), and for a
  single-node plan claim the guest's ``build_claim_pages`` (its
  ``build_start_mib``: the guest's memory) on that node and, once the claim
  is made, set the plan's CPUs as soft affinity; after the mutex, when there
  was no single-node claim (a multi-node plan, no plan, ENOMEM), a host-wide
  claim of the same pages, whose ENOMEM fails the start.  The build then
  populates from the claimed node first (xenguest's ``-mem_pnode``);
* free memory alone, with no reservation or claim (the race the ledger
  exists for).
"""

import errno
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from typing import List, Optional

from common import Result
from xenopsd_baseline import XenopsdNUMA

from xapi_numa.errors import HypervisorError, NoCapacity
from xapi_numa.state.ledger import Ledger
from xapi_numa.core.placement import NodeLoads, Planner, Request
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.ops.reserve import place_and_reserve
from xapi_numa.core.topology import Topology

G = 1 << 30
M = 1 << 20
STARTS = 32
VCPUS = 2
VM_MEMORY = 160 * M
PAGES = VM_MEMORY >> 12  # build_claim_pages: the guest's build_start_mib (no video RAM for a PV guest)


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


def xenopsd_search(topo: Topology) -> XenopsdNUMA:
    """numa_hierarchy: distances, CPUs per node and distinct cores per node (cputopoinfo)."""
    cores = [len({c.core for c in topo.cpus if c.node == n.id}) for n in topo.nodes]
    return XenopsdNUMA(topo.distances, [n.cpus for n in topo.nodes], cores)


def xenopsd_decide(sim: SimHypervisor, search: XenopsdNUMA, domid: int, mutex) -> Optional[int]:
    """build_pre's NUMA step for a Best_effort host: the node claimed, or None (host-wide
    claim).  Raises NoCapacity when the host-wide claim is refused, as the build fails."""
    with mutex:  # numa_placement: with_lock numa_mutex
        memfree = [m.free - m.claimed for m in sim.node_memory()]  # node_mem_claimable_for_new_vm
        nodes = search.plan_nodes(memfree, VCPUS, VM_MEMORY, cores=VCPUS)
        node = None
        if nodes is not None and len(nodes) == 1:  # Xen claims on one node or on none
            try:
                sim.claim(domid, PAGES, nodes[0])
                node = nodes[0]
            except HypervisorError as err:
                if err.errno != errno.ENOMEM:
                    raise  # xenopsd sets the affinity and goes on without a claim: not on the simulator
            if node is not None:
                cpus = sim.topology().cpus_of_nodes([node])
                for v in range(VCPUS):
                    sim.set_vcpu_affinity(domid, v, soft=cpus)
    if node is None:  # the global claim, after the mutex; its ENOMEM is a hard failure
        try:
            sim.claim(domid, PAGES)
        except HypervisorError as err:
            raise NoCapacity(err.message, ("memory", str(PAGES)))
    return node


def _start(path: str, ledger_path: str, index: int, scheme: str, barrier, mutex, results, search) -> None:
    sim = SimHypervisor(path)
    rng = random.Random(index)
    vm = f"00000000-0000-4000-8000-{index:012d}"
    request = Request(VCPUS, VM_MEMORY)
    if scheme == "xenopsd":  # domain_create comes before build_pre: the domain exists, with no memory
        domid = sim.create_shell(f"vm-{index}", VCPUS, VM_MEMORY, uuid=vm)
    barrier.wait()
    asked = time.monotonic()
    chosen = None
    try:
        if scheme == "xenopsd":
            node = xenopsd_decide(sim, search, domid, mutex)
            chosen = None if node is None else {node}
        elif scheme == "ledger":
            placement, _, _ = place_and_reserve(sim, Ledger(ledger_path), request, vm, ttl=60)
        else:
            topo = sim.topology()
            placement = Planner(topo).place(
                NodeLoads.of([m.claimable for m in sim.node_memory()]), request)
    except NoCapacity:
        results.put((index, "refused", time.monotonic() - asked))
        return
    decided = time.monotonic() - asked
    time.sleep(rng.uniform(0.05, 0.25))  # the toolstack builds the domain
    try:
        if scheme == "xenopsd":
            sim.build(domid, None if chosen is None else next(iter(chosen)))
        else:
            chosen = placement.nodes
            domid = sim.create(f"vm-{index}", VCPUS, VM_MEMORY, hard=placement.hard or placement.soft, uuid=vm,
                               load="idle", auto_numa=False)
    except NoCapacity:
        results.put((index, "failed", decided))
        return
    if chosen is None:  # no node claimed: xenopsd leaves the VM to Xen's striping
        results.put((index, "unplaced", decided))
        return
    pages = sim.node_pages(domid)
    outside = sum(p for n, p in pages.items() if n not in chosen)
    if scheme == "ledger":
        Ledger(ledger_path).release(vm)
    results.put((index, "local" if outside == 0 else "spilled", decided))


def storm(scheme: str) -> dict:
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "host.json")
        build_host(path)
        ledger_path = os.path.join(tmp, "ledger.db")
        Ledger(ledger_path).close()
        barrier = ctx.Barrier(STARTS)
        mutex = ctx.Lock()
        results = ctx.Queue()
        search = xenopsd_search(SimHypervisor(path).topology())
        # one xenopsd per host: its node usage (never decremented) is shared by every start
        search.node_usage = ctx.RawArray("i", len(search.node_usage))
        procs = [ctx.Process(target=_start, args=(path, ledger_path, i, scheme, barrier, mutex, results, search))
                 for i in range(STARTS)]
        for p in procs:
            p.start()
        outcome = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
    counts = {"local": 0, "spilled": 0, "unplaced": 0, "refused": 0, "failed": 0}
    waits = [wait for _, _, wait in outcome]
    for _, what, _ in outcome:
        counts[what] += 1
    counts["wait_median_ms"] = round(1000 * statistics.median(waits), 1)
    counts["wait_max_ms"] = round(1000 * max(waits), 1)
    return counts


def _against(ours: float, theirs: float) -> str:
    """Ours against another arm's wait, as a ratio >= 1 that says which way it goes."""
    if ours >= theirs:
        return f"ours {ours / theirs:.1f}x longer" if theirs else "theirs 0"
    return f"ours {theirs / ours:.1f}x shorter" if ours else "ours 0"


def _longer_or_shorter(ours: float, theirs: float):
    """(ratio >= 1, word) for ours against theirs."""
    if ours >= theirs:
        return (ours / theirs if theirs else float("inf")), "longer"
    return (theirs / ours if ours else float("inf")), "shorter"


def run() -> List[Result]:
    with_ledger = storm("ledger")
    xenopsd = storm("xenopsd")
    without = storm("free")

    def share(c):
        # of all the starts: the host has room for every one (a refusal is a miss, not
        # left out: a ledger refusing all but three scored 100 %)
        return c["local"] / STARTS

    ours, base, xs = share(with_ledger), share(without), share(xenopsd)
    arms = (("ours", with_ledger), ("xenopsd", xenopsd), ("no reservations", without))

    def outcome(name, c):
        left = ", ".join(f"{k} {c[k]}" for k in ("spilled", "unplaced", "refused", "failed") if c[k])
        return f"{name} {100 * share(c):.0f}% local" + (f" ({left})" if left else "")

    placed = "; ".join(outcome(name, c) for name, c in arms)
    results = [
        Result("boot storm, 32 concurrent starts, 4-node host at 90%: ours against no reservations",
               ours / base if base else float("inf"),
               "more of the 32 starts entirely on their chosen nodes than without reservations",
               "100% with the ledger (the host has room for every start)", ours == 1.0, placed),
        Result("boot storm against xenopsd (its plan and per-node claim under its numa_mutex)",
               ours / xs if xs else float("inf"),
               "ours' share / xenopsd's share of the 32 starts whose memory is all on the node(s) "
               "chosen for them (a refusal or a start with no node claimed counts as a miss)",
               "at least xenopsd's share", ours >= xs, placed)]
    for key, what in (("wait_median_ms", "median"), ("wait_max_ms", "max")):
        ratio, word = _longer_or_shorter(with_ledger[key], xenopsd[key])
        waits = "; ".join(f"{name} {c[key]} ms" + ("" if c is with_ledger else
                                                    f" ({_against(with_ledger[key], c[key])})")
                          for name, c in arms)
        results.append(Result(f"boot storm, {what} wait for a decision, ours against xenopsd's mutex", ratio,
                              f"{word} {what} wait than xenopsd's", "reported, no goal", None,
                              waits + " (on the simulator every query re-reads the host's state file under one "
                              "file lock, so no scheme's reads run in parallel; ours makes more of them: "
                              "a vCPU read per domain, the ledger's transaction, retries)"))
    return results


if __name__ == "__main__":
    for r in run():
        print(r)
