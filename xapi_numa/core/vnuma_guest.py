"""The guest a vNUMA plan is asked for, and what of it Xen 4.17 cannot honour.  Pure, no I/O.

Owns :class:`GuestSpec` and the limits and refusals :mod:`xapi_numa.core.vnuma` checks
before it plans, each with its own error, all before anything starts: populate-on-demand
(dynamic-min below static-max: libxl refuses vNUMA with PoD), more than 32 vnodes
(Xen keeps the distance table in one page), more vnodes than vCPUs, vnodes that do not
fit their pnode's free memory, and a NUMA policy that contradicts the vnode map.
"""
from typing import Dict, Mapping, Optional, Sequence, Tuple

import attrs

from xapi_numa.core.policy import Policy
from xapi_numa.core.topology import Topology
from xapi_numa.core.units import MAX_VM_MEMORY, SizeRange
from xapi_numa.errors import InvalidArgument, NoCapacity

MiB = 1 << 20
# Vnode boundaries fall on 2 MiB so each vnode can be built from superpages
# (Xen populates HVM/PVH memory in 2 MiB extents where it can).
ALIGN = 2 * MiB
PAGE = 4096
MAX_VCPUS = 4096  # as the placement engine's requests
VNUMA_MEMORY = SizeRange(ALIGN, MAX_VM_MEMORY, "one VM, in whole 4K pages")  # its static-max
# Xen 4.17 keeps a domain's vnode distances in one page (vnuma_alloc, XSA-77): 32 x 32 x 4 bytes
MAX_VNODES = 32
# Xen 4.17 holds a layout for any guest (vnuma_init checks no type) and libxc builds one for each
# (meminit_hvm, meminit_pv); a PV guest's ranges run end to end from 0 (no MMIO hole)
VNUMA_TYPES = ("hvm", "pvh", "pv")


@attrs.frozen
class GuestSpec:
    """What the planner needs to know about the guest."""

    type: str                     # pv, pvh or hvm
    vcpus: int
    memory: int                   # static-max, bytes: what the vnodes add up to
    dynamic_min: Optional[int] = None  # bytes; below ``memory`` means populate-on-demand
    policy: Policy = Policy()


def check_guest(guest: GuestSpec) -> None:
    """The refusals that do not depend on the host."""
    if guest.type not in VNUMA_TYPES:
        raise InvalidArgument("type", f"unknown guest type {guest.type!r}", ", ".join(VNUMA_TYPES))
    if not 1 <= guest.vcpus <= MAX_VCPUS:
        raise InvalidArgument("vcpus", f"{guest.vcpus}", f"1..{MAX_VCPUS}")
    VNUMA_MEMORY.check(guest.memory, "memory", f"{guest.memory} bytes")
    if guest.memory % PAGE:
        raise InvalidArgument("memory", f"{guest.memory} bytes is not a whole number of 4 KiB pages",
                              VNUMA_MEMORY.allowed)
    if guest.dynamic_min is not None and guest.dynamic_min < guest.memory:
        # (PV has no populate-on-demand: libxc refuses ranges that do not add up to what its build populates)
        why = ("would start ballooned, its build populating less than the vNUMA ranges hold, which libxc refuses"
               if guest.type == "pv" else "would start with populate-on-demand, which Xen refuses with vNUMA")
        raise InvalidArgument("memory_dynamic_min",
                              f"{guest.dynamic_min} bytes is below memory_static_max {guest.memory}: the guest {why}",
                              "memory_dynamic_min equal to memory_static_max")


def check_policy(policy: Policy, pnodes: Sequence[int]) -> None:
    """A NUMA policy must agree with the vnode map: vNUMA puts each vnode's memory on
    its pnode, so a policy that lets Xen choose, or confines the VM elsewhere, contradicts it.
    A node list confines only with ``on_exhaust=fail`` and no ``nearest``: otherwise placement
    itself goes on to other nodes when the listed ones are full."""
    if policy.mode == "any":
        raise InvalidArgument("policy", "mode 'any' lets Xen stripe memory anywhere, but vNUMA fixes each "
                                        "vnode's memory to its pnode", "best_effort, preferred or strict")
    if policy.nodes and policy.on_exhaust == "fail" and not policy.nearest:
        outside = sorted(set(pnodes) - set(policy.nodes))
        if outside:
            raise InvalidArgument("policy", f"the vnode map uses node(s) {outside} that the policy's node list "
                                            f"{list(policy.nodes)} with on_exhaust=fail leaves out",
                                  "a node list that includes every pnode of the vnode map, none, or "
                                  "on_exhaust=fallback")


def check_nodes(mode: str, topology: Topology, guest: GuestSpec, pnodes: Sequence[int]) -> None:
    """The pnodes of a plan of ``mode`` (one vnode each): nodes of the host, each once,
    no more than Xen gives a guest nor than the guest has vCPUs, and as the policy allows."""
    known = topology.node_ids
    for p in pnodes:
        if p not in known:
            raise InvalidArgument("nodes", f"no node {p} on this host", f"0..{max(known)}")
    if len(set(pnodes)) != len(pnodes) or not pnodes:
        raise InvalidArgument("nodes", "{}: each pnode once, at least one".format(",".join(map(str, pnodes)) or "none"),
                              "distinct node ids")
    k = len(pnodes)
    if k > MAX_VNODES:  # named as the nodes were given: the node list, or the split host's half
        raise InvalidArgument("half" if mode == "split" else "nodes", f"{k} nodes, one vnode each: Xen 4.17 gives a "
                              f"guest at most {MAX_VNODES} vnodes (its distance table must fit one page)",
                              f"at most {MAX_VNODES} nodes" + (
                                  ", but this host's halves have more: no split, name the nodes" if mode == "split"
                                  else ""))
    if k > guest.vcpus:  # (named by the guest's vCPUs, which callers name as typed: --vcpus, VCPUs_max)
        raise InvalidArgument("vcpus", "{}, but the plan has {} vnodes (nodes {}): every vnode needs a vCPU".format(
            guest.vcpus, k, ",".join(map(str, pnodes))), f"at least {k} (or fewer nodes, at most {guest.vcpus})")
    check_policy(guest.policy, pnodes)


def check_fits(sizes: Sequence[Tuple[int, int]], free: Mapping[int, int]) -> None:
    """Every pnode has the free memory its vnodes take (``sizes``: (pnode, bytes) per vnode)."""
    need: Dict[int, int] = {}
    for pnode, size in sizes:
        need[pnode] = need.get(pnode, 0) + size
    for pnode in sorted(need):
        if need[pnode] > free.get(pnode, 0):
            raise NoCapacity(f"vnodes on node {pnode} need {need[pnode]} bytes; it has {free.get(pnode, 0)} free",
                             ("vnuma", str(pnode), str(free.get(pnode, 0)), str(need[pnode])))
