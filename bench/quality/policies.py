"""Every placement rule behind one decision interface, for the replay.

``decide(state, vm)`` returns a :class:`Decision`: the nodes the VM's vCPUs
are homed on (its affinity; None = no affinity, Xen stripes over all nodes),
an explicit node to build memory from (xenopsd's ``-mem_pnode``), or a
refusal.  ``state`` is the replay's :class:`HostState`; each rule reads only
what its toolstack reads.
"""

from typing import List, Optional, Tuple

import attrs

from xapi_numa.core.placement import SINGLE_NODE_RULE, NodeLoads, Planner, Request
from xapi_numa.errors import NoCapacity

from .libxl_baseline import LibxlNUMA

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from xenopsd_baseline import XenopsdNUMA  # noqa: E402

MIB = 1 << 20


@attrs.frozen
class Decision:
    home: Optional[Tuple[int, ...]]
    node: Optional[int] = None
    refused: bool = False


REFUSED = Decision(None, None, True)


class Ours:
    """Our engine with one of its single-node rules; vCPU loads as ops/reserve reads them
    (vCPUs whose home is one node)."""

    def __init__(self, topology, rule: str) -> None:
        self.name = "ours" if rule == SINGLE_NODE_RULE else f"ours-{rule}"
        self.planner = Planner(topology, single_node=rule)

    def decide(self, state, vm) -> Decision:
        loads = NodeLoads.of(state.free_bytes(), None, state.single_home_vcpus())
        try:
            p = self.planner.place(loads, Request(vm.vcpus, vm.memory))
        except NoCapacity:
            return REFUSED
        return Decision(tuple(p.nodes))


class XenopsdToday:
    """xenopsd's ``Best_effort`` (2025-11 on): cores >= vCPUs, free less claims, the
    claim and ``-mem_pnode`` on a single node, no affinity at all when the plan
    needs several nodes (then a global claim and Xen's striping)."""

    name = "xenopsd"

    def __init__(self, topology, planner_cores: List[int]) -> None:
        self.search = XenopsdNUMA(topology.distances, [n.cpus for n in topology.nodes], planner_cores)

    def decide(self, state, vm) -> Decision:
        # build_claim_pages is build_start_mib: the guest's memory, not the overhead
        nodes = self.search.plan_nodes(state.free_bytes(), vm.vcpus, vm.memory, cores=vm.vcpus)
        if nodes is not None and len(nodes) == 1:
            return Decision((nodes[0],), nodes[0])
        return Decision(None)


class Xenopsd2024:
    """xenopsd's search as of 2024 (now ``Prio_mem_only``): memory and threads only; the soft
    affinity is set on whatever set it picks, single or several nodes; memory from
    Xen following that affinity.  The 2024 code also kept a running minimum of
    each node's free memory across starts; that is left out (it would only make
    this baseline worse)."""

    name = "xenopsd-2024"

    def __init__(self, topology) -> None:
        self.search = XenopsdNUMA(topology.distances, [n.cpus for n in topology.nodes])

    def decide(self, state, vm) -> Decision:
        nodes = self.search.plan_nodes(state.free_bytes(), vm.vcpus, vm.memory + MIB, cores=0)  # xen_max_mib
        return Decision(tuple(sorted(nodes)) if nodes is not None else None)


class Libxl:
    """libxl's automatic placement (xl create without affinity)."""

    name = "libxl"

    def __init__(self, topology, need) -> None:
        self.search = LibxlNUMA([len(n.cpus) for n in topology.nodes])
        self.need = need

    def decide(self, state, vm) -> Decision:
        nodes = self.search.plan(state.free_bytes(), state.affinity_vcpus(), vm.vcpus, self.need(vm))
        return Decision(tuple(nodes) if nodes is not None else None)


def all_policies(topology) -> list:
    planner = Planner(topology)
    need = lambda vm: planner.need(Request(vm.vcpus, vm.memory))  # noqa: E731
    return [Ours(topology, "spare"), Ours(topology, "balanced"), Ours(topology, "best"), Ours(topology, "worst"),
            XenopsdToday(topology, planner.cores), Xenopsd2024(topology), Libxl(topology, need)]


BASELINES = ("xenopsd", "xenopsd-2024", "libxl")
