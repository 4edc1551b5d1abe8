"""Every placement rule behind one decision interface, for the replay.

``decide(state, vm)`` returns a :class:`Decision`: the nodes the VM's vCPUs
are homed on (its affinity; None = no affinity, Xen stripes over all nodes),
an explicit node to build memory from (xenopsd's ``-mem_pnode``), or a
refusal.  ``state`` is the replay's :class:`HostState`; each rule reads only
what its toolstack reads.
"""

from typing import List, Optional, Tuple

import attrs

from xapi_numa.core.overhead import WITH_THE_VM
from xapi_numa.core.placement import SINGLE_NODE_RULE, NodeLoads, Planner, Request
from xapi_numa.core.start_sizes import NO_STARTS
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
    (vCPUs whose home is one node), and the sizes of the starts it placed that fit a node, as
    the state database keeps them (the plugin's place counts each it reserves, ops/reserve)."""

    decides_before_build = True  # the plugin's place runs before VM.start

    def __init__(self, topology, rule: str) -> None:
        self.name = "ours" if rule == SINGLE_NODE_RULE else f"ours-{rule}"
        self.planner = Planner(topology, single_node=rule)
        self.starts = NO_STARTS

    def decide(self, state, vm, record: bool = True) -> Decision:
        """``record``: count the start in the history if placed (not in a rollout's imagined ones)."""
        request = Request(vm.vcpus, vm.memory, dtype=vm.dtype)
        loads = NodeLoads.of(state.free_bytes(), None, state.single_home_vcpus(), self.starts)
        try:
            p = self.planner.place(loads, request)
        except NoCapacity:
            return REFUSED
        if record and self.planner.fits_a_node(request):  # (after: the planner counts the VM itself)
            self.starts = self.starts.with_start(vm.memory)
        return Decision(tuple(p.nodes))


class XenopsdToday:
    """xenopsd's ``Best_effort`` (2025-11 on): cores >= vCPUs, free less claims, the
    claim and ``-mem_pnode`` on a single node, no affinity at all when the plan
    needs several nodes (then a global claim and Xen's striping)."""

    name = "xenopsd"
    cores_wanted = True

    def __init__(self, topology, planner_cores: List[int]) -> None:
        self.search = XenopsdNUMA(topology.distances, [n.cpus for n in topology.nodes], planner_cores)

    def decide(self, state, vm) -> Decision:
        # build_claim_pages is build_start_mib: the guest's memory, not the overhead
        nodes = self.search.plan_nodes(state.free_bytes(), vm.vcpus, vm.memory,
                                        cores=vm.vcpus if self.cores_wanted else 0)
        if nodes is not None and len(nodes) == 1:
            return Decision((nodes[0],), nodes[0])
        return Decision(None)


class XenopsdMemOnly(XenopsdToday):
    """xenopsd's ``Prio_mem_only`` (2025-11 on, ``numa-best-effort-prio-mem-only``): today's
    code path (free less claims, single-node claim and ``-mem_pnode``, no affinity for
    multi-node plans) with the 2024 memory-only search (no core count)."""

    name = "xenopsd-memonly"
    cores_wanted = False


class Xenopsd2024:
    """xenopsd's search as of 2024 (the memory-only rule, now ``Prio_mem_only``): memory and
    threads only; the soft affinity is set on whatever set it picks, single or several
    nodes; memory from Xen following that affinity (auto node affinity).  The request is
    ``xen_max_mib``.  The per-node free memory it plans with is the running minimum of
    every reading it has made (the 2024 ``numa_resources`` kept, per node, the lower of
    the stored and the current free memory, and stored that): memory freed by stopped
    VMs is never seen again, so once the host has been full its plans fail and VMs start
    with no affinity (Xen stripes them over every node).  That is what the 2024 code
    did; leaving it out would make this baseline stronger than the real one."""

    name = "xenopsd-2024"

    def __init__(self, topology) -> None:
        self.search = XenopsdNUMA(topology.distances, [n.cpus for n in topology.nodes])
        self.seen: Optional[List[int]] = None  # the running minimum of free memory per node

    def decide(self, state, vm) -> Decision:
        free = state.free_bytes()
        self.seen = free if self.seen is None else [min(a, b) for a, b in zip(self.seen, free)]
        nodes = self.search.plan_nodes(self.seen, vm.vcpus, vm.memory + MIB, cores=0)  # xen_max_mib
        return Decision(tuple(sorted(nodes)) if nodes is not None else None)


class Libxl:
    """libxl's automatic placement (xl create without affinity)."""

    name = "libxl"
    decides_before_build = True  # libxl__build_pre places, then sets the paging pool
    overhead_follows = True

    def __init__(self, topology, need) -> None:
        self.search = LibxlNUMA([len(n.cpus) for n in topology.nodes])
        self.need = need

    def decide(self, state, vm) -> Decision:
        nodes = self.search.plan(state.free_bytes(), state.affinity_vcpus(), vm.vcpus, self.need(vm))
        return Decision(tuple(nodes) if nodes is not None else None)


def all_policies(topology) -> list:
    planner = Planner(topology)
    # libxl sizes the paging pool after it has placed the domain: the whole build goes there
    with_the_vm = Planner(topology, WITH_THE_VM)
    need = lambda vm: with_the_vm.need(Request(vm.vcpus, vm.memory))  # noqa: E731
    return [Ours(topology, "scored"), Ours(topology, "hole"), Ours(topology, "spare"), Ours(topology, "balanced"),
            Ours(topology, "best"), Ours(topology, "worst"),
            XenopsdToday(topology, planner.cores), XenopsdMemOnly(topology, planner.cores), Xenopsd2024(topology),
            Libxl(topology, need)]


BASELINES = ("xenopsd", "xenopsd-memonly", "xenopsd-2024", "libxl")
