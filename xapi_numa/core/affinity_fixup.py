"""Soft affinity follows the memory (pure).

One rule, used in three places: when most of a running VM's memory sits on
nodes outside its soft affinity (its node was full at boot, say) the daemon's
fix-up points the VM at the nodes that hold it; after a page move the VM
follows its memory the same way; settling a started VM uses the same rule for
"where did the memory land".  Which nodes hold the memory is
:func:`xapi_numa.core.locality.memory_nodes` (one threshold).

Never for ``strict`` VMs, VMs whose stored policy cannot be read, or admin hard
pins (the caller excludes them: ``ops.left_alone``), and the fix-up only acts on
VMs whose soft affinity means something, never on a domain shut down and not yet
destroyed (its vCPUs do not run while it is: nothing to point anywhere).  The soft affinity stays inside the host's
guest mask (``guest_VCPUs_params:mask``) where that leaves the nodes any CPU, as the
rebalancer's home moves write it.
"""
from typing import FrozenSet, Iterable, List, Mapping, Optional, Sequence

from xapi_numa.core.actions import SetAffinity, SetNodeAffinity
from xapi_numa.core.cpuset import within
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.locality import memory_nodes, soft_is_narrow
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology

MAJORITY = 0.5  # the fix-up acts when more than this share of the memory is outside the soft affinity


def follow(domain: DomainInfo, vcpus: Sequence[VcpuInfo], topo: Topology, pages: Mapping[int, int],
           reason: str, node_affinity: bool = True, usable: Optional[FrozenSet[int]] = None) -> List[object]:
    """Actions that point a VM's node affinity and every vCPU's soft affinity at the nodes
    holding its memory (nothing if it has none), on their CPUs that guests may use
    (``usable``: the host's guest mask, if any).  Hard affinity is the admin's."""
    nodes = memory_nodes(pages)
    if not nodes:
        return []
    cpus = soft_for(nodes, topo, usable)
    out: List[object] = []
    if node_affinity:
        out.append(SetNodeAffinity(domain.domid, domain.uuid, nodes, reason))
    out += [SetAffinity(domain.domid, domain.uuid, v.vcpu, soft=cpus, reason=reason) for v in vcpus]
    return out


def soft_for(nodes: Iterable[int], topo: Topology, usable: Optional[FrozenSet[int]]) -> FrozenSet[int]:
    """The soft affinity of a VM whose memory is on ``nodes``: their CPUs (a memory-only
    node's nearest: never an empty mask) inside ``usable``, the host's guest mask, where
    that leaves any (else all of them, as :func:`~xapi_numa.core.cpuset.within` and the
    rebalancer's home moves)."""
    return within(topo.cpus_near(nodes), usable)


def outside_share(vcpus: Sequence[VcpuInfo], topo: Topology, pages: Mapping[int, int]) -> float:
    """Share of the memory on nodes outside the VM's soft affinity."""
    total = sum(pages.values())
    if not total:
        return 0.0
    soft_nodes: FrozenSet[int] = frozenset().union(*(topo.nodes_of_cpus(v.soft) for v in vcpus))
    return sum(p for n, p in pages.items() if n not in soft_nodes) / total


def plan(snap: HostSnapshot, excluded: Iterable[int] = ()) -> List[object]:
    """Soft affinity moves for the VMs whose memory is mostly elsewhere."""
    excluded = set(excluded)
    topo = snap.topology
    out: List[object] = []
    for d in snap.domains:
        if d.domid == 0 or d.domid in excluded or d.shutdown or d.domid not in snap.pages:
            continue
        vs = snap.vcpus.get(d.domid, ())
        if not vs or not all(soft_is_narrow(v, topo) and v.hard >= snap.unpinned for v in vs):
            continue
        share = outside_share(vs, topo, snap.pages[d.domid])
        if share <= MAJORITY:
            continue
        near = soft_for(memory_nodes(snap.pages[d.domid]), topo, snap.guest_cpus)
        if all(v.soft == near for v in vs):
            continue  # already where its memory is, or next to it (memory-only nodes have no CPUs)
        out += follow(d, vs, topo, snap.pages[d.domid],
                      "{:.0f}% of its memory is outside its soft affinity".format(100 * share), node_affinity=False,
                      usable=snap.guest_cpus)
    return out
