"""The placement engine's values: what it is asked (:class:`Request`), what it
knows of the nodes (:class:`NodeLoads`) and what it answers (:class:`Placement`).

Pure data with their own checks; :mod:`xapi_numa.core.placement` decides.
"""
from operator import sub
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import attrs

from xapi_numa.errors import InvalidArgument
from xapi_numa.core.cpuset import format_ids
from xapi_numa.core.policy import Policy
from xapi_numa.core.start_sizes import NO_STARTS, StartSizes
from xapi_numa.core.topology import Topology
from xapi_numa.core.units import MAX_VM_MEMORY, VM_MEMORY, format_size
from xapi_numa.core.xenalloc import BUILD_TYPES


def _int_tuple(values) -> Tuple[int, ...]:
    return tuple(map(int, values))


@attrs.frozen
class NodeLoads:
    """What the engine knows of the nodes right now, one entry per node id.

    ``free``: bytes free (less the hypervisor's outstanding claims);
    ``reserved``: bytes other starts have reserved in the ledger;
    ``vcpus``: vCPUs already homed on the node (soft/hard affinity);
    ``dma``: bytes free in Xen's DMA zone beyond ``free`` (none, or one entry per
    node): Xen gives them to a build only once every node is out of the rest;
    ``starts``: the memory sizes of the VMs started on the host that fit a node (the
    state database's history: what the single-node rule's split risk weighs).
    """

    free: Tuple[int, ...] = attrs.field(converter=_int_tuple)
    reserved: Tuple[int, ...] = attrs.field(converter=_int_tuple)
    vcpus: Tuple[int, ...] = attrs.field(converter=_int_tuple)
    dma: Tuple[int, ...] = attrs.field(default=(), converter=_int_tuple)
    starts: StartSizes = attrs.field(default=NO_STARTS, validator=attrs.validators.instance_of(StartSizes))

    def __attrs_post_init__(self) -> None:
        if not len(self.free) == len(self.reserved) == len(self.vcpus) or len(self.dma) not in (0, len(self.free)):
            raise InvalidArgument("loads", "free, reserved, vcpus (and dma, if any) need one entry per node each")

    def with_dma(self) -> "NodeLoads":
        """The same loads with the DMA zone counted as free (Xen's last resort)."""
        return attrs.evolve(self, free=map(int.__add__, self.free, self.dma or [0] * len(self.free)), dma=())

    @classmethod
    def of(cls, free: Sequence[int], reserved: Optional[Sequence[int]] = None,
           vcpus: Optional[Sequence[int]] = None, starts: StartSizes = NO_STARTS) -> "NodeLoads":
        n = len(free)
        return cls(free, reserved if reserved is not None else [0] * n, vcpus if vcpus is not None else [0] * n,
                   starts=starts)

    def available(self) -> List[int]:
        """Free minus reserved per node, never below zero."""
        avail = list(map(sub, self.free, self.reserved))
        if min(avail, default=0) < 0:
            avail = [a if a > 0 else 0 for a in avail]
        return avail


@attrs.frozen
class Request:
    vcpus: int
    memory: int
    policy: Policy = Policy()
    dtype: str = "hvm"  # how libxc lays out its RAM (pv, pvh or hvm: core.xenalloc.build_extents)
    # The nodes an admin's CPU mask reaches (xapi's VCPUs_params:mask): a hard bound on
    # where the engine may put the VM, the policy otherwise unchanged.  None: every node.
    within: Optional[FrozenSet[int]] = attrs.field(default=None, converter=attrs.converters.optional(frozenset))
    # The masks that narrowed ``within`` to it, as messages name them (ops.place_request); none: a CPU mask
    within_by: Tuple[str, ...] = attrs.field(default=(), converter=tuple)
    # Bytes the build takes beyond ``memory``, when the VM's own record says (its static
    # maximum, shadow multiplier and type: core.overhead.xapi_model); None: the planner's model.
    overhead: Optional[int] = None
    # Bytes of ``memory`` that are an HVM guest's video RAM: no RAM of the build (xenopsd leaves it
    # out), QEMU populates it after, page by page (core.xenalloc.build_extents)
    video: int = 0

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.vcpus, int) or not 1 <= self.vcpus <= 4096:
            raise InvalidArgument("vcpus", f"{self.vcpus!r}", "1..4096")
        if not isinstance(self.memory, int):
            raise InvalidArgument("memory", repr(self.memory), VM_MEMORY.allowed)
        VM_MEMORY.check(self.memory, "memory", format_size(self.memory) if self.memory > 0 else repr(self.memory))
        if self.overhead is not None and (not isinstance(self.overhead, int)
                                          or not 0 <= self.overhead <= MAX_VM_MEMORY):
            raise InvalidArgument("overhead", f"{self.overhead!r}", "0 .. 1P bytes")
        if not isinstance(self.video, int) or not 0 <= self.video <= self.memory:
            raise InvalidArgument("video", f"{self.video!r}", "0 .. the VM's memory, in bytes")
        if self.dtype not in BUILD_TYPES:
            raise InvalidArgument("type", repr(self.dtype), ", ".join(BUILD_TYPES))
        if self.within is not None and (not self.within or min(self.within) < 0):
            raise InvalidArgument("within", "{} (the nodes a CPU mask reaches)".format(sorted(self.within) or "none"),
                                  "one node id or more, from 0")

    @property
    def within_said(self) -> str:
        """Which mask(s) reach ``within``, with the verb: "the host's guest mask (...) reaches"."""
        by = " and ".join(self.within_by) or "its CPU mask"
        return by + (" reach" if len(self.within_by) > 1 else " reaches")

    def listed(self) -> bool:
        """Whether the policy's own order decides: it lists nodes (or says nearest) and a
        CPU mask, if any, leaves one of them.  A binding list (``strict`` or
        ``on_exhaust=fail``) with none left is refused; a preference with none left
        leaves the choice to the engine, inside the mask."""
        policy, within = self.policy, self.within
        if not (policy.nodes or policy.nearest):
            return False
        if within is None or not policy.nodes or any(node in within for node in policy.nodes):
            return True
        if policy.mode == "strict" or policy.on_exhaust == "fail":
            raise InvalidArgument("within", f"{self.within_said} nodes {format_ids(within)} only, none of the "
                                  f"policy's nodes {','.join(map(str, policy.nodes))}",
                                  "a mask that reaches a listed node, or another policy")
        return False


@attrs.frozen
class Placement:
    nodes: Tuple[int, ...]
    memory: Tuple[Tuple[int, int], ...]  # (node, bytes), nodes ascending; build overhead included
    soft: Optional[FrozenSet[int]]
    hard: Optional[FrozenSet[int]]
    fallback: bool
    reason: str
    policy: Policy
    overhead: int = 0  # bytes of the build's own overhead counted in ``memory``

    @property
    def bytes_per_node(self) -> Dict[int, int]:
        return dict(self.memory)

    def to_dict(self, topology: Topology) -> dict:
        return {
            "nodes": list(self.nodes),
            "memory": {str(n): b for n, b in self.memory},
            "overhead": self.overhead,
            "soft": topology.format_cpus(self.soft) if self.soft is not None else None,
            "hard": topology.format_cpus(self.hard) if self.hard is not None else None,
            "fallback": self.fallback,
            "reason": self.reason,
            "policy": self.policy.to_dict(),
        }
