"""Replay a start/stop trace under one placement rule and measure the outcome.

Memory lands as Xen's allocator puts it (:mod:`xapi_numa.core.xenalloc`), in
the order xenopsd builds a domain (``xc/domain.ml``, ``build_pre``): first the
build overhead of xapi's memory model (the shadow/HAP pool, set before any
vCPU affinity is applied, and Xen's own per-vCPU memory), page by page round
the domain's initial node affinity, which is every node; then the guest's
memory (``build_start``) as libxc builds it (:func:`xapi_numa.core.xenalloc.build`,
the simulator's model: an HVM guest's RAM a whole GiB at a time where it can,
the rest in 2 MiB extents), striped over the node affinity the rule chose (its
home nodes, all nodes without one) from the node after the one that gave the
overhead's last page, from an explicit node first when the rule names one
(xenopsd's ``-mem_pnode``), spilling to other nodes when the affinity runs out.
xenopsd's rules read free memory between the two, after the overhead is gone,
as its NUMA placement does; ours decides
before the start (the plugin's ``place`` runs before ``VM.start``) and
reserves the whole overhead on its nodes, more than lands there.  libxl
places before it sizes the paging pool (``libxl__build_pre``), so there the
overhead goes round the chosen nodes.  A start is
refused when the rule refuses it or Xen cannot build it.

Until 2026-12-04 the whole build, overhead included, landed on the rule's
choice: every xenopsd VM chosen for a node with room for its memory but not
for the overhead as well spilled a few MiB and counted as split (4 to 13 per
trace), though in xenopsd the overhead is allocated before it looks.  Until
2026-12-06 the guest's memory went in 2 MiB extents from the affinity's first
node, whatever the overhead's round had left.

Measures (per-VM ones over the starts after the warm-up, the first quarter
of the events; imbalance averaged over the states after it; refusals over the
whole trace):
* split: of the VMs that fit one node (build <= a node's memory and vCPUs <=
  its physical cores), the share whose guest memory landed on more than one
  node (the overhead is striped over every node for every rule);
* distance: per VM, the SLIT distance from its vCPUs (spread evenly over its
  home nodes) to its guest memory (as landed); mean and p99 weighted by memory;
* nodes spanned by a VM's guest memory, mean;
* memory and vCPU imbalance: coefficient of variation over nodes of memory
  used, and of vCPUs homed per core (a VM's vCPUs spread over its home nodes);
  the memory figure is also given over the states up to the last start only
  (``memory_cv_before_drain``): after it the trace only stops VMs, the host
  empties and the CV of what is left grows without any placement being made
  (printed beside the goals, not one of them);
* refusals.
"""

import statistics
import time
from typing import Dict, List, Optional, Sequence, Tuple

import attrs

from xapi_numa.core.placement import BuildOverhead
from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.core import xenalloc
from xapi_numa.core.xenalloc import build
from xapi_numa.errors import NoCapacity

from .policies import REFUSED
from .trace import CORES_PER_NODE, NODE_MEMORY, Event, HostSpec

WARMUP = 0.25


@attrs.define
class Running:
    pages: Dict[int, int]  # everything the domain holds: overhead and guest memory
    home: Optional[Tuple[int, ...]]
    vcpus: int


class HostState:
    """Free pages per node and where each running VM sits."""

    def __init__(self, nodes: int) -> None:
        self.n = nodes
        self.free = [NODE_MEMORY >> PAGE_SHIFT] * nodes
        self.vms: Dict[int, Running] = {}

    def free_bytes(self) -> List[int]:
        return [p << PAGE_SHIFT for p in self.free]

    def single_home_vcpus(self) -> List[int]:
        out = [0] * self.n
        for r in self.vms.values():
            if r.home is not None and len(r.home) == 1:
                out[r.home[0]] += r.vcpus
        return out

    def affinity_vcpus(self) -> List[int]:
        out = [0] * self.n
        for r in self.vms.values():
            for node in (r.home if r.home is not None else range(self.n)):
                out[node] += r.vcpus
        return out

    def spread_vcpus(self) -> List[float]:
        out = [0.0] * self.n
        for r in self.vms.values():
            home = r.home if r.home is not None else range(self.n)
            share = r.vcpus / len(home)
            for node in home:
                out[node] += share
        return out


def cv(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return statistics.pstdev(values) / mean if mean > 0 else 0.0


def weighted_percentile(pairs: List[Tuple[float, float]], q: float) -> float:
    if not pairs:
        return 0.0
    pairs = sorted(pairs)
    total = sum(w for _, w in pairs)
    acc = 0.0
    for value, w in pairs:
        acc += w
        if acc >= q * total:
            return value
    return pairs[-1][0]


def vm_distance(distances, home: Optional[Tuple[int, ...]], pages: Dict[int, int], n: int) -> float:
    homes = home if home is not None else tuple(range(n))
    total = sum(pages.values())
    return sum(distances[h][m] * p for h in homes for m, p in pages.items()) / (total * len(homes))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def build_bytes(vm, overhead: BuildOverhead) -> int:
    return vm.memory + overhead.bytes_for(vm.vcpus, vm.memory)


def fits_one_node(vm, overhead: BuildOverhead) -> bool:
    """The VM's build fits one node's memory and its vCPUs one node's cores."""
    return build_bytes(vm, overhead) <= NODE_MEMORY and vm.vcpus <= CORES_PER_NODE


def stop(state: HostState, vm) -> None:
    r = state.vms.pop(vm.vid, None)
    if r is not None:
        for node, p in r.pages.items():
            state.free[node] += p


def pages_of(nbytes: int) -> int:
    return (nbytes + (1 << PAGE_SHIFT) - 1) >> PAGE_SHIFT


@attrs.frozen
class Overhead:
    pages: Dict[int, int]  # what the build's overhead took per node
    last_node: int  # the new domain's last_alloc_node after it: its RAM's round starts after it


def take_overhead(state: HostState, vm, overhead: BuildOverhead,
                  affinity: Optional[Sequence[int]] = None) -> Optional[Overhead]:
    """The build's overhead, page by page round ``affinity`` (every node: before any is
    set) from a new domain's start, spilling beyond it when it is full (None, nothing
    taken, when the host has not that much)."""
    try:
        taken, last = xenalloc.take_overhead(pages_of(overhead.bytes_for(vm.vcpus, vm.memory)), state.free,
                                             list(affinity) if affinity is not None else list(range(state.n)))
    except NoCapacity:
        return None
    return Overhead({node: p for node, p in taken.items() if p}, last)


def give_back(state: HostState, pages: Dict[int, int]) -> None:
    for node, p in pages.items():
        state.free[node] += p


def land_guest(state: HostState, vm, d, pre: Overhead) -> Optional[Dict[int, int]]:
    """Build ``vm``'s guest memory as decided (Xen's allocator), after the overhead
    ``pre`` taken already: its guest pages per node, or None when refused (the overhead
    given back: the domain is destroyed)."""
    if d.refused:
        give_back(state, pre.pages)
        return None
    affinity = list(d.home) if d.home is not None else list(range(state.n))
    try:
        landed, _ = build(pages_of(vm.memory), vm.dtype, state.free, affinity, pre.last_node, node=d.node)
    except NoCapacity:
        give_back(state, pre.pages)
        return None
    landed = {node: p for node, p in landed.items() if p}
    held = dict(pre.pages)
    for node, p in landed.items():
        held[node] = held.get(node, 0) + p
    state.vms[vm.vid] = Running(held, d.home, vm.vcpus)
    return landed


def land(state: HostState, vm, d, overhead: BuildOverhead, overhead_follows: bool = False
         ) -> Optional[Dict[int, int]]:
    """Build ``vm`` as decided before its start (the overhead, then the guest's memory):
    its guest pages per node, or None when refused.  The overhead goes round every node
    (xenopsd sets it before the VM's hard affinity), or with ``overhead_follows`` round
    the decision's nodes (libxl places first)."""
    if d.refused:
        return None
    pre = take_overhead(state, vm, overhead, d.home if overhead_follows else None)
    return land_guest(state, vm, d, pre) if pre is not None else None


def memory_cv(state: HostState) -> float:
    total = NODE_MEMORY >> PAGE_SHIFT
    return cv([total - f for f in state.free])


def replay(host: HostSpec, trace: List[Event], policy, overhead: BuildOverhead = BuildOverhead()) -> dict:
    n = host.nodes
    state = HostState(n)
    warm = int(len(trace) * WARMUP)
    last_start = max((k for k, ev in enumerate(trace) if ev.start), default=-1)
    refusals = splits = fitting = 0
    dist: List[Tuple[float, float]] = []
    spans: List[int] = []
    mem_cv: List[float] = []
    cpu_cv: List[float] = []
    decide_time = 0.0
    decisions = 0
    for k, ev in enumerate(trace):
        vm = ev.vm
        if not ev.start:
            stop(state, vm)
        else:
            # ours decides before the start (the plugin's place), libxl before it allocates
            # the paging pool (libxl__build_pre); xenopsd after (build_pre's shadow
            # allocation comes before its NUMA placement)
            before = getattr(policy, "decides_before_build", False)
            pre = None if before else take_overhead(state, vm, overhead)
            start = time.perf_counter()
            d = policy.decide(state, vm) if before or pre is not None else REFUSED
            decide_time += time.perf_counter() - start
            decisions += 1
            if before:
                landed = land(state, vm, d, overhead, getattr(policy, "overhead_follows", False))
            else:
                landed = land_guest(state, vm, d, pre) if pre is not None else None
            if landed is None:
                refusals += 1
            elif k >= warm:
                fits = fits_one_node(vm, overhead)
                fitting += fits
                splits += fits and len(landed) > 1
                dist.append((vm_distance(host.distances, d.home, landed, n), vm.memory))
                spans.append(len(landed))
        if k >= warm:
            mem_cv.append(memory_cv(state))
            cpu_cv.append(cv(state.spread_vcpus()))
    weight = sum(w for _, w in dist) or 1
    return {
        "policy": policy.name,
        "split_share": splits / fitting if fitting else 0.0,
        "splits": splits,
        "fitting": fitting,
        "distance_mean": sum(v * w for v, w in dist) / weight,
        "distance_p99": weighted_percentile(dist, 0.99),
        "nodes_spanned": sum(spans) / len(spans) if spans else 0.0,
        "memory_cv": sum(mem_cv) / len(mem_cv) if mem_cv else 0.0,
        "memory_cv_before_drain": _mean(mem_cv[:max(last_start - warm + 1, 0)]),
        "vcpu_cv": sum(cpu_cv) / len(cpu_cv) if cpu_cv else 0.0,
        "refusals": refusals,
        "starts": decisions,
        "decide_ms_mean": 1e3 * decide_time / decisions if decisions else 0.0,
    }
