"""Settling a VM after its build: the policy's affinity replaces the boot pin (pure).

``place`` pins a starting VM's vCPUs to the chosen nodes through xapi, so that
the build puts its memory there.  Once the domain runs, that pin must give way
to what the policy means for a running VM:

* ``strict``: hard affinity on the placed nodes (memory and vCPUs only there),
  narrowed to each vCPU's own admin mask there, if the admin set one;
* ``any``: no soft affinity; hard affinity is the admin's mask, if any;
* ``best_effort`` / ``preferred``: soft affinity on the nodes that hold the
  memory (:func:`~xapi_numa.core.locality.memory_nodes`) — the placed nodes
  unless the memory landed elsewhere — and hard affinity back to the admin's
  mask or the whole host.
"""
from typing import FrozenSet, List, Optional, Sequence

import attrs

from xapi_numa.core.actions import SetAffinity
from xapi_numa.core.cpuset import within
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
         placed: FrozenSet[int], pages: dict, admin_mask: Optional[VcpuMask],
         host_cpus: Optional[FrozenSet[int]] = None) -> Settlement:
    """``admin_mask``: the hard affinity the admin set (``VCPUs_params:mask``, maybe one
    per vCPU), which comes back once the boot pin goes.  ``host_cpus``: the host's guest
    mask (``guest_VCPUs_params:mask``), which xapi applied at the start: every hard
    affinity stays within it (where it leaves a vCPU anything)."""
    landed = memory_nodes(pages)
    # a placed node this host lacks (placed for another host) names nothing here; with
    # neither a placement nor a node that holds much of the memory (many nodes, none
    # over the share memory_nodes asks), the VM lives on the whole host: never an empty mask
    nodes = (placed & topo.node_ids) or landed or topo.node_ids
    fixed_up = False
    soft: Optional[FrozenSet[int]]
    if policy.mode == "strict":
        hard, soft = topo.cpus_near(nodes), None
    elif policy.mode == "any":
        hard, soft = topo.all_cpus, topo.all_cpus
    else:
        if landed and landed != nodes:
            nodes, fixed_up = landed, True
        hard, soft = topo.all_cpus, topo.cpus_near(nodes)
    per_vcpu = {v.vcpu: within(_vcpu_hard(v.vcpu, hard, admin_mask, topo, policy.mode == "strict"), host_cpus)
                for v in vcpus}
    if admin_mask is not None or host_cpus is not None:
        # reported: the union of what the vCPUs get
        hard = frozenset().union(*per_vcpu.values()) if per_vcpu else within(_vcpu_hard(
            0, hard, admin_mask, topo, policy.mode == "strict"), host_cpus)
    reason = "settled after the build ({} policy)".format(policy.mode)
    actions: List[SetAffinity] = [
        SetAffinity(domain.domid, domain.uuid, v.vcpu, soft=soft, reason=reason, hard=per_vcpu[v.vcpu])
        for v in vcpus]
    return Settlement(frozenset(nodes), landed, hard, soft, fixed_up, tuple(actions))


def _vcpu_hard(vcpu: int, policy_hard: FrozenSet[int], admin_mask: Optional[VcpuMask], topo: Topology,
               bound_by_policy: bool) -> FrozenSet[int]:
    """One vCPU's hard affinity once settled: the admin's mask for it comes back; a strict
    policy also keeps it on its nodes (the mask's CPUs there; the nodes' CPUs if the
    vCPU's own mask has none there, as the place step checked the mask reaches them)."""
    if admin_mask is None:
        return policy_hard
    own = admin_mask.for_vcpu(vcpu) & topo.all_cpus
    if not bound_by_policy:
        return own or topo.all_cpus
    return own & policy_hard or admin_mask.cpus & policy_hard or policy_hard
