"""Where a VM lives and where its memory is: the one rule for each (pure).

* A vCPU's *home* is the nodes of its soft affinity (within its hard
  affinity) when the soft affinity says anything, else the nodes of a hard
  affinity narrower than the host, else every node.  A VM's home nodes are
  the union over its vCPUs.
* The nodes that *hold* a VM's memory are those with at least
  :data:`MEANINGFUL_SHARE` of it (not the odd page Xen puts elsewhere).
* The *local share* is the part of its memory on its home nodes.

Settling a started VM, the affinity fix-up, what a page move leaves behind,
``vm_memory``, ``top`` and placement's vCPU counts all use these functions.
"""
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

from xapi_numa.core.cpuset import within
from xapi_numa.core.host import VcpuInfo
from xapi_numa.core.topology import Topology

MEANINGFUL_SHARE = 0.05  # a node holding less than this share of a VM is not "where its memory is"


def soft_is_narrow(v: VcpuInfo, topo: Topology) -> bool:
    """Does soft affinity say anything (narrower than the host and the hard mask, meets hard)?"""
    return bool(v.soft & v.hard) and not v.hard <= v.soft and not topo.all_cpus <= v.soft


def outside_soft(v: VcpuInfo, topo: Topology) -> bool:
    """A vCPU that runs or waits to run on a pCPU outside its soft affinity."""
    return v.state in ("running", "runnable") and soft_is_narrow(v, topo) and v.cpu not in v.soft


def count_outside(guests: Iterable[Tuple[str, Iterable[VcpuInfo]]], topo: Topology,
                  counts: Dict[str, List[float]]) -> None:
    """Per VM (UUID: its vCPUs), one sample added to ``counts``: [vCPUs running or waiting
    outside their soft affinity, vCPUs running or waiting], summed over the samples."""
    for uuid, vcpus in guests:
        seen = counts.setdefault(uuid, [0.0, 0.0])
        for v in vcpus:
            if v.state in ("running", "runnable"):
                seen[1] += 1
                seen[0] += 1 if outside_soft(v, topo) else 0


def vcpu_home(v: VcpuInfo, topo: Topology) -> FrozenSet[int]:
    """The nodes a vCPU is meant to run on."""
    if soft_is_narrow(v, topo):
        return topo.nodes_of_cpus(v.soft & v.hard)
    if v.hard and not topo.all_cpus <= v.hard:
        return topo.nodes_of_cpus(v.hard)
    return frozenset(n.id for n in topo.nodes)


def single_homes(vcpus: Iterable[VcpuInfo], topo: Topology) -> Dict[int, int]:
    """Per node, the vCPUs homed on it alone (what a start weighs as that node's vCPU load).
    vCPUs share a few pairs of masks: each pair is worked out once."""
    out: Dict[int, int] = {}
    seen: Dict[Tuple[FrozenSet[int], FrozenSet[int]], Optional[int]] = {}
    for v in vcpus:
        key = (v.soft, v.hard)
        if key not in seen:
            home = vcpu_home(v, topo)
            seen[key] = next(iter(home)) if len(home) == 1 else None
        if seen[key] is not None:
            out[seen[key]] = out.get(seen[key], 0) + 1
    return out


def home_nodes(vcpus: Iterable[VcpuInfo], topo: Topology) -> FrozenSet[int]:
    """The nodes a VM is meant to run on (every node when nothing narrows it)."""
    out: FrozenSet[int] = frozenset()
    for v in vcpus:
        out |= vcpu_home(v, topo)
    return out or frozenset(n.id for n in topo.nodes)


def home_shares(vcpus: Iterable[VcpuInfo], topo: Topology,
                pool_nodes: Optional[FrozenSet[int]] = None) -> Dict[int, float]:
    """Per node, the share of a VM's vCPUs homed there (a vCPU homed on several nodes
    counts for each in equal parts; shares sum to 1): how a VM homed on several nodes
    loads them.  Only nodes that can run a vCPU count: those with CPUs, among
    ``pool_nodes`` (its CPU pool's nodes) when given."""
    runnable = within(frozenset(n.id for n in topo.nodes if n.cpus), pool_nodes)
    out: Dict[int, float] = {}
    vcpus = list(vcpus)
    for v in vcpus:
        nodes = vcpu_home(v, topo) & runnable or runnable
        for n in nodes:
            out[n] = out.get(n, 0.0) + 1.0 / (len(nodes) * len(vcpus))
    return out


def memory_nodes(pages: Mapping[int, int]) -> FrozenSet[int]:
    """Nodes holding a meaningful share of a VM's memory (empty for a VM with none)."""
    total = sum(pages.values())
    if not total:
        return frozenset()
    return frozenset(n for n, p in pages.items() if p and p >= MEANINGFUL_SHARE * total)


def local_share(pages: Mapping[int, int], homes: Iterable[int]) -> float:
    """Share of a VM's memory on its home nodes (1.0 for a VM with no memory)."""
    total = sum(pages.values())
    if not total:
        return 1.0
    homes = frozenset(homes)
    return sum(p for n, p in pages.items() if n in homes) / total
