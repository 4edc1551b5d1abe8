"""Settling a VM after its build: the policy's affinity replaces the boot pin (pure).

``place`` pins a starting VM's vCPUs to the chosen nodes through xapi, so that
the build puts its memory there.  Once the domain runs, that pin must give way
to what the policy means for a running VM:

* ``strict``: hard affinity on the placed nodes (memory and vCPUs only there);
* ``any``: no soft affinity; hard affinity is the admin's mask, if any;
* ``best_effort`` / ``preferred``: soft affinity on the nodes that hold the
  memory (:func:`~xapi_numa.core.locality.memory_nodes`) — the placed nodes
  unless the memory landed elsewhere — and hard affinity back to the admin's
  mask or the whole host.
"""
from typing import FrozenSet, List, Optional, Sequence

import attrs

from xapi_numa.core.actions import SetAffinity
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.locality import memory_nodes
from xapi_numa.core.policy import Policy
from xapi_numa.core.topology import Topology
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
         placed: FrozenSet[int], pages: dict, admin_mask: Optional[VcpuMask]) -> Settlement:
    """``admin_mask``: the hard affinity the admin set (``VCPUs_params:mask``, maybe one
    per vCPU), which comes back once the boot pin goes."""
    landed = memory_nodes(pages)
    nodes = placed or landed
    fixed_up = False
    soft: Optional[FrozenSet[int]]
    if policy.mode == "strict":
        hard, soft = topo.cpus_of_nodes(nodes), None
    elif policy.mode == "any":
        hard, soft = topo.all_cpus, topo.all_cpus
    else:
        if landed and landed != nodes:
            nodes, fixed_up = landed, True
        hard, soft = topo.all_cpus, topo.cpus_of_nodes(nodes)
    if admin_mask is not None and policy.mode != "strict":
        hard = admin_mask.cpus & topo.all_cpus or topo.all_cpus  # reported: the union of the vCPUs' masks
    reason = "settled after the build ({} policy)".format(policy.mode)
    actions: List[SetAffinity] = [
        SetAffinity(domain.domid, domain.uuid, v.vcpu, soft=soft, reason=reason,
                    hard=(admin_mask.for_vcpu(v.vcpu) & topo.all_cpus or topo.all_cpus)
                    if admin_mask is not None and policy.mode != "strict" else hard)
        for v in vcpus]
    return Settlement(frozenset(nodes), landed, hard, soft, fixed_up, tuple(actions))
