"""What the nodes the placement engine chose become: the :class:`Placement`.  Pure, no I/O.

Owns the answer once :mod:`xapi_numa.core.placement` has chosen (or a policy has listed)
the nodes: the bytes the build puts on each node, its overhead included, so that a
reservation of them covers the whole build, and the soft or hard CPU mask.

A VM needs its memory plus the build's overhead (:mod:`xapi_numa.core.overhead`);
as xenopsd builds, the overhead goes round every node before the VM's affinity
is set, so the chosen nodes count their share of it only.

How memory spreads over several nodes is Xen's business: with an affinity
over a set of nodes the allocator stripes extents round-robin over them, 1 GiB
ones first for HVM/PVH (:func:`xapi_numa.core.xenalloc.striped_holding`); the
bytes per node are the most each can get, whichever node the round starts at,
and what the build puts outside the set (:class:`xapi_numa.core.set_room.BuildRoom`)
is held where it lands.
"""

from typing import Collection, FrozenSet, List, Sequence, Tuple

from xapi_numa.core.placement_values import Placement, Request
from xapi_numa.core.topology import Topology
from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.core.overhead import BuildOverhead
from xapi_numa.core.set_room import BuildRoom


class PlacementAssembly:
    """The host's facts a placement's answer needs, and the answer for chosen nodes.

    ``overhead``: what a build takes beyond the guest's RAM (counted in every
    placement and so in every reservation).
    """

    def __init__(self, topology: Topology, overhead: BuildOverhead) -> None:
        self.topology = topology
        self.overhead = overhead
        self.n = len(topology.nodes)
        self.pcpus = [len(node.cpus) for node in topology.nodes]
        self.cpu_nodes = sum(1 for c in self.pcpus if c)  # those the build overhead goes round

    def need(self, request: Request, nodes: int = 1) -> int:
        """Bytes the build puts on ``nodes`` chosen nodes: the guest's memory plus their
        part of the build overhead (all of it, or their share of a round of every node
        with CPUs: :class:`BuildOverhead`)."""
        return request.memory + self.overhead.on_nodes(request.vcpus, request.memory, nodes, self.cpu_nodes,
                                                       request.overhead)

    def allowed(self, request: Request) -> FrozenSet[int]:
        """The nodes the admin's CPU mask leaves the VM (all of them without one)."""
        return request.within if request.within is not None else frozenset(range(self.n))

    def shares_outside(self, request: Request, reach: Sequence[int]) -> int:
        """Bytes of the overhead's round that nodes outside the VM's CPU mask hold (those with room,
        ``reach``, for their share: :meth:`placement_on_one`), as the VM's nodes then need none of it."""
        if request.within is None:
            return 0
        share, others = self._shares(request, reach, request.within)
        return share * len(others)

    def _shares(self, request: Request, reach: Sequence[int], but: Collection[int]) -> Tuple[int, List[int]]:
        """A node's share of the overhead's round, and the nodes with CPUs not in ``but`` that have room
        for theirs (``reach``): none when the overhead goes with the VM (not ``before_affinity``)."""
        share = self.need(request) - request.memory
        total = self.overhead.bytes_for(request.vcpus, request.memory, request.overhead)
        return share, [i for i in range(self.n) if i not in but and self.pcpus[i] and reach[i] >= share] \
            if share < total else []

    def placement_on_one(self, node: int, reach: Sequence[int], request: Request, fallback: bool,
                         reason: str) -> Placement:
        """The guest's memory on one node that has room.  The build overhead goes round
        every node with CPUs before the VM's affinity is set (``BuildOverhead``), those outside
        its CPU mask too: each other node that has room for its share (``reach``: every node's
        room, the mask's outside nodes' too) is reserved that share, and the chosen node the rest,
        so that the reservation covers the whole build, on each node what the build takes there."""
        total = self.overhead.bytes_for(request.vcpus, request.memory, request.overhead)
        share, others = self._shares(request, reach, (node,))
        memory = {i: share for i in others}
        memory[node] = request.memory + total - share * len(others)
        memory = {i: -(-b >> PAGE_SHIFT) << PAGE_SHIFT for i, b in memory.items()}  # whole pages
        cpus = self.cpus_near([node], request)
        if request.policy.mode == "strict":
            soft, hard = None, cpus
        else:
            soft, hard = cpus, None
        return Placement((node,), tuple(sorted(memory.items())), soft, hard, fallback, reason, request.policy,
                         total)

    def cpus_near(self, nodes: Sequence[int], request: Request) -> FrozenSet[int]:
        """The CPUs of ``nodes``; for memory-only nodes, those of the nearest nodes with CPUs
        the CPU mask allows (:meth:`Topology.cpus_near`, as the boot pin and settling)."""
        return self.topology.cpus_near(nodes, self.allowed(request))

    def placement_on(self, nodes: Sequence[int], reach: List[int], request: Request, room: BuildRoom,
                     fallback: bool, reason: str, striped_all: bool = False) -> Placement:
        """Placement over several nodes: predict Xen's striping over them (on one, as placement_on_one,
        with ``reach``)."""
        if len(nodes) == 1 and not striped_all:  # a listed node: the overhead still goes round every node
            return self.placement_on_one(nodes[0], reach, request, fallback, reason)
        got = room.holding(nodes)
        memory = tuple(sorted((n, p << PAGE_SHIFT) for n, p in got.items() if p))
        cpus = self.cpus_near(nodes, request)
        if striped_all:
            soft = hard = None
            nodes = [n for n, _ in memory]
        elif request.policy.mode == "strict":
            soft, hard = None, cpus
        else:
            soft, hard = cpus, None
        return Placement(tuple(sorted(nodes)), memory, soft, hard, fallback, reason, request.policy,
                         self.need(request, self.cpu_nodes) - request.memory)
