"""Settling a VM after its build: the policy's affinity replaces the boot pin (pure).

``place`` pins a starting VM's vCPUs to the chosen nodes through xapi, so that
the build puts its memory there.  Once the domain runs, that pin must give way
to what the policy means for a running VM:

* ``strict``: hard affinity on the placed nodes (memory and vCPUs only there),
  narrowed to each vCPU's own admin mask there, if the admin set one;
* ``any``: no soft affinity (every CPU guests may use); hard affinity is the
  admin's mask, if any;
* ``best_effort`` / ``preferred``: soft affinity on the nodes that hold the
  memory (:func:`~xapi_numa.core.locality.memory_nodes`) — the placed nodes
  unless the memory landed elsewhere —, narrowed to each vCPU's own admin mask
  there, and hard affinity back to the admin's mask or the whole host.

Hard and soft both stay inside the host's guest mask, and both come from the boot
pin's rule (:func:`~xapi_numa.core.vcpu_cpus.vcpu_cpus`): the host mask first, each
vCPU's own mask inside it, so that a settled vCPU gets the CPUs ``place`` named.
"""
from typing import FrozenSet, Iterable, List, Optional, Sequence

import attrs

from xapi_numa.core.actions import SetAffinity
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.locality import memory_nodes
from xapi_numa.core.policy import Policy
from xapi_numa.core.topology import Topology
from xapi_numa.core.vcpu_cpus import vcpu_cpus
from xapi_numa.core.vcpu_mask import VcpuMask


@attrs.frozen
class Settlement:
    nodes: FrozenSet[int]          # where the VM now lives
    memory_nodes: FrozenSet[int]   # where its memory landed
    hard: FrozenSet[int]
    soft: Optional[FrozenSet[int]]
    fixed_up: bool                 # the memory decided, not the placement
    actions: tuple


def plan(domain: DomainInfo, vcpus: Sequence[VcpuInfo], topo: Topology, policy: Policy,
         placed: FrozenSet[int], pages: dict, admin_mask: Optional[VcpuMask],
         host_cpus: Optional[FrozenSet[int]] = None) -> Settlement:
    """``admin_mask``: the hard affinity the admin set (``VCPUs_params:mask``, maybe one
    per vCPU), which comes back once the boot pin goes.  ``host_cpus``: the host's guest
    mask (``guest_VCPUs_params:mask``), which xapi applied at the start: hard and soft
    affinity stay within it (where it leaves the nodes any CPU)."""
    landed = memory_nodes(pages)
    # a placed node this host lacks (placed for another host) names nothing here; with
    # neither a placement nor a node that holds much of the memory (many nodes, none
    # over the share memory_nodes asks), the VM lives on the whole host: never an empty mask
    nodes = (placed & topo.node_ids) or landed or topo.node_ids
    fixed_up = False
    strict, any_mode = policy.mode == "strict", policy.mode == "any"
    if not strict and not any_mode and landed and landed != nodes:
        nodes, fixed_up = landed, True
    # the boot pin's rule (vcpu_cpus): the host's guest mask first, each vCPU's own mask inside it
    hard = vcpu_cpus(topo, nodes if strict else topo.node_ids, host_cpus, admin_mask)
    soft = None if strict else vcpu_cpus(topo, topo.node_ids if any_mode else nodes, host_cpus,
                                         None if any_mode else admin_mask)
    numbers = [v.vcpu for v in vcpus] or [0]  # reported: the union of what the vCPUs get
    reason = "settled after the build ({} policy)".format(policy.mode)
    actions: List[SetAffinity] = [
        SetAffinity(domain.domid, domain.uuid, v.vcpu, soft=None if soft is None else soft.for_vcpu(v.vcpu),
                    reason=reason, hard=hard.for_vcpu(v.vcpu)) for v in vcpus]
    return Settlement(frozenset(nodes), landed, _union(hard, numbers), None if soft is None else _union(soft, numbers),
                      fixed_up, tuple(actions))


def _union(mask: VcpuMask, vcpus: Iterable[int]) -> FrozenSet[int]:
    return frozenset().union(*(mask.for_vcpu(v) for v in vcpus))
