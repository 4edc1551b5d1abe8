"""A vNUMA guest's vnodes as the units of memory moves (pure).

A vNUMA guest was told, at boot, which vnode each of its memory ranges and vCPUs
belongs to and how far apart the vnodes are; Xen keeps each vnode on one pnode.
A move may take a whole vnode -- every range, every vCPU -- to another pnode
(the vnode -> pnode map is then updated; the guest's own view does not change),
but it must never leave a vnode spread over two pnodes.  This module owns that
rule twice:

* :func:`check_move`: may a page move (the whole domain's memory to one node, or
  exactly one vnode's) go ahead?  Refused with ``NUMA_VNODE_SPLIT`` otherwise.
* :func:`whole_vnode_moves`: a proposal of new home nodes for the whole domain
  as whole-vnode moves, or None when no set of whole-vnode moves realises it.

and says where memory moved by hand may go, a vnode or a whole VM's (:func:`check_target`:
where guests may run, as the rebalancer's targets) and what the rebalancer's move of one
vnode is (:func:`vnode_move_actions`):
the vnode's vCPUs' soft affinity, the domain's node affinity (the pnodes its
vnodes will live on), then its memory through the page mover, ranges and all,
whose last step records the new map (:mod:`xapi_numa.ops.vnode_move`); and the affinity a layout just set gives its vCPUs
(:func:`layout_affinity_actions`).
"""
from typing import Dict, FrozenSet, Iterable, List, Optional, Tuple

import attrs

from xapi_numa.core.actions import MoveMemory, SetAffinity, SetNodeAffinity
from xapi_numa.core.cpuset import format_ids, within
from xapi_numa.core.topology import Topology
from xapi_numa.core.vnuma import VNode, VnumaLayout, VnumaPlan
from xapi_numa.errors import InvalidArgument, VnodeSplit


@attrs.frozen
class VnodeMove:
    """Move vnode ``vnode`` (its memory and its vCPUs) from pnode ``source`` to ``target``."""

    vnode: int
    source: int
    target: int
    memory: int  # bytes


def whole_move_form(vm: str, vnode: int, to: int) -> str:
    """The form of a move that keeps the promise, for error messages."""
    return f"move-memory {vm} --vnode {vnode} --to {to} (the whole vnode: its memory and vCPUs)"


def check_move(layout: Optional[VnumaLayout], vm: str, to: int, vnode: Optional[int] = None) -> None:
    """Refuse a page move of domain ``vm`` to node ``to`` that would break a vnode -> pnode
    promise.  ``vnode``: the move takes exactly that vnode's ranges (always whole).
    Without it the move takes any of the domain's memory, so it may go ahead only if
    every vnode already lives on ``to`` (it then only gathers memory that drifted)."""
    if layout is None:
        if vnode is not None:
            raise InvalidArgument("vnode", f"VM {vm} has no vNUMA layout, so it has no vnode {vnode}",
                                  "no vnode: move the VM's memory as a whole")
        return
    if vnode is not None:
        layout.vnode(vnode)  # refused with the vnodes there are
        return
    for v in layout.vnodes:
        if v.pnode != to:
            raise VnodeSplit(vm, v.index, "unknown" if v.pnode is None else v.pnode, to,
                             whole_move_form(vm, v.index, to))


def _largest_first(vnodes: Iterable[VNode]) -> List[VNode]:
    return sorted(vnodes, key=lambda v: (-v.memory, v.index))


def _spare(layout: VnumaLayout, targets: List[int], count: int) -> List[VNode]:
    """The ``count`` smallest vnodes that can leave a target node while it keeps one
    (its largest stays: the cheapest choice for every node, so greedy is optimal)."""
    spare: List[VNode] = []
    for n in targets:
        spare += _largest_first(v for v in layout.vnodes if v.pnode == n)[1:]
    return sorted(spare, key=lambda v: (v.memory, v.index))[:count]


def whole_vnode_moves(layout: VnumaLayout, homes: Iterable[int]) -> Optional[Tuple[VnodeMove, ...]]:
    """The whole-vnode moves after which the domain's vnodes live exactly on ``homes``
    (every vnode on one of them, every one of them holding a vnode), moving as little
    memory as possible; ``()`` when nothing needs to move.  None when that cannot be
    done without splitting a vnode (more home nodes than vnodes), or when a vnode's
    pnode is unknown.

    Vnodes off the home nodes must move; they fill home nodes with no vnode first
    (largest first), then go where the least of the domain's memory is.  If too few
    move to cover every home node, the smallest vnodes of nodes that hold several
    move as well."""
    targets = sorted(set(homes))
    if not targets or any(n < 0 for n in targets):
        raise InvalidArgument("homes", f"{targets}", "one or more node ids")
    if any(v.pnode is None for v in layout.vnodes) or len(layout.vnodes) < len(targets):
        return None
    movers = _largest_first(v for v in layout.vnodes if v.pnode not in targets)
    held = {v.pnode for v in layout.vnodes}
    uncovered = [n for n in targets if n not in held]
    if len(uncovered) > len(movers):
        movers += _largest_first(_spare(layout, targets, len(uncovered) - len(movers)))
    moving = {v.index for v in movers}
    load: Dict[int, int] = {n: 0 for n in targets}
    for v in layout.vnodes:
        if v.index not in moving:
            load[v.pnode] += v.memory
    moves = []
    for v in movers:
        target = uncovered.pop(0) if uncovered else min(targets, key=lambda n: (load[n], n))
        load[target] += v.memory
        moves.append(VnodeMove(v.index, v.pnode, target, v.memory))
    return tuple(sorted(moves, key=lambda m: m.vnode))


def check_target(topo: Topology, to: int, usable: Optional[FrozenSet[int]]) -> None:
    """Memory moved by hand (a vnode, or a whole VM's) goes where its vCPUs may follow: to
    a node with CPUs (its nearest, for a memory-only one) that the host's guest mask
    (``usable``, None: no mask) lets guests use, as the rebalancer's targets
    (:func:`xapi_numa.core.pools.within_pool`); their soft affinity then stays inside the
    mask (:func:`vnode_home_actions`, :func:`xapi_numa.core.affinity_fixup.follow`).  A mask
    that names none of this host's CPUs narrows nothing, as the rebalancer reads it
    (:attr:`~xapi_numa.core.snapshot.HostSnapshot.unpinned`)."""
    usable = within(topo.all_cpus, usable)
    if topo.cpus_near([to]) & usable:
        return
    allowed = [n.id for n in topo.nodes if topo.cpus_near([n.id]) & usable]
    raise InvalidArgument("to", f"node {to} has no CPU in the host's guest mask (guest_VCPUs_params:mask, CPUs "
                                f"{format_ids(usable)}): the vCPUs could not run near the memory moved there",
                          f"nodes {format_ids(allowed)}")  # some: every CPU of the mask is some node's


def vnode_home_actions(domid: int, uuid: str, layout: VnumaLayout, vnode: int, to: int, topo: Topology,
                       reason: str, usable: Optional[FrozenSet[int]] = None) -> List[object]:
    """Vnode ``vnode`` homed on pnode ``to``: its vCPUs' soft affinity there (on the node's
    CPUs that guests may use, ``usable``: the host's guest mask, if any), and the domain's
    node affinity on every pnode its vnodes live on then (those known)."""
    moved = layout.with_pnode(vnode, to)
    cpus = within(topo.cpus_near([to]), usable)
    out: List[object] = [SetAffinity(domid, uuid, c, soft=cpus, reason=reason) for c in layout.vnode(vnode).vcpus]
    out.append(SetNodeAffinity(domid, uuid, frozenset(p for p in moved.pnodes if p is not None), reason))
    return out


def vnode_move_actions(domid: int, uuid: str, layout: VnumaLayout, vnode: int, to: int, topo: Topology,
                       rate: Optional[float], reason: str, usable: Optional[FrozenSet[int]] = None) -> List[object]:
    """The rebalancer's move of vnode ``vnode`` to pnode ``to``, whole: its new home
    (:func:`vnode_home_actions`), then every page of the vnode through the page mover
    at ``rate``, which records the new vnode -> pnode map once the last page is there."""
    if any(p is None for p in layout.with_pnode(vnode, to).pnodes):
        raise InvalidArgument("vnode", "a layout with a vnode of unknown pnode", "a layout with every pnode")
    return (vnode_home_actions(domid, uuid, layout, vnode, to, topo, reason, usable)
            + [MoveMemory(domid, uuid, to, rate=rate, reason=reason, vnode=vnode)])


def layout_affinity_actions(domid: int, uuid: str, plan: VnumaPlan, topo: Topology, reason: str,
                            usable: Optional[FrozenSet[int]] = None) -> List[object]:
    """A layout set on a domain about to run: each vnode's vCPUs' soft affinity on its
    pnode (its CPUs guests may use, ``usable``: the host's guest mask, if any), as libxl's
    ``set_vnuma_affinity`` does for a ``vnuma=`` guest, and the domain's node affinity on
    its pnodes; hard affinity is the admin's.  Without it a vCPU of vnode 1 runs anywhere
    (and the affinity fix-up leaves a soft affinity of every CPU alone), while the guest
    takes it for one of vnode 1's."""
    out: List[object] = []
    for v in plan.vnodes:
        cpus = within(topo.cpus_near([v.pnode]), usable)
        out += [SetAffinity(domid, uuid, c, soft=cpus, reason=reason) for c in v.vcpus]
    out.append(SetNodeAffinity(domid, uuid, frozenset(plan.pnodes), reason))
    return out
