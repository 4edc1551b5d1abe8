"""Moving one whole vnode of a vNUMA guest: what a page move adds for it.

:mod:`xapi_numa.ops.move_memory` moves the pages; this module says which pages
belong to the vnode (the gfns inside its guest-physical ranges) and, once they
have all moved, keeps the promise true again: the vnode's new pnode is recorded
with the hypervisor (``set_vnuma`` with the updated map: Xen replaces a layout;
the guest's own SRAT, read at boot, does not change, so the guest still sees the
same vnodes at the same distances), its vCPUs' soft affinity moves with it and
the domain's node affinity becomes the pnodes its vnodes now live on.  The rule
of what may move is :mod:`xapi_numa.core.vnode_units`.
"""
from typing import FrozenSet, List, Optional, Sequence

from xapi_numa.core import memory_move as pagemove
from xapi_numa.core.cpuset import within
from xapi_numa.core.host import DomainInfo
from xapi_numa.core.memory_move import MoveTally
from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.core.vnode_units import vnode_home_actions
from xapi_numa.core.vnuma import VnumaLayout
from xapi_numa.errors import InvalidArgument, NumaError
from xapi_numa.ops.executor import DONE as APPLIED, Executor
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.db import Database


def check_vnode_move(layout: VnumaLayout, vnode: int, max_bytes: Optional[int], skip: int) -> None:
    """A vnode moves whole, and its new pnode must be recordable afterwards (where it may
    go, as any memory moved by hand: :func:`~xapi_numa.core.vnode_units.check_target`)."""
    layout.vnode(vnode)
    if max_bytes is not None:
        raise InvalidArgument("max", "a vnode moves whole, never part of it", "no max with vnode")
    if skip:
        raise InvalidArgument("skip", "a vnode moves whole, from its first page", "0 with vnode")
    unknown = [v.index for v in layout.vnodes if v.pnode is None and v.index != vnode]
    if unknown:
        raise InvalidArgument("vnode", f"the pnode of vnode(s) {unknown} is unknown (the hypervisor did not "
                                       "show it), so the updated map could not be recorded",
                              "a host whose debug-key 'u' dump shows every vnode's pnode")


def vnode_gfns(layout: VnumaLayout, vnode: int, gfns: Sequence[int]) -> List[int]:
    """The movable ``gfns`` (ascending) inside vnode ``vnode``'s ranges."""
    return pagemove.gfns_within(gfns, [(r.start >> PAGE_SHIFT, -(-r.end >> PAGE_SHIFT))
                                       for r in layout.ranges_of(vnode)])


def rehome_vnode(hv: Hypervisor, d: DomainInfo, layout: VnumaLayout, vnode: int, to: int,
                 db: Optional[Database] = None, follow_affinity: bool = True,
                 guest_cpus: Optional[FrozenSet[int]] = None) -> dict:
    """After every page of vnode ``vnode`` moved to node ``to``: record its new pnode,
    and (unless ``follow_affinity`` is off: ``--keep-affinity``) point its vCPUs' soft
    affinity (inside ``guest_cpus``, the host's guest mask) and the domain's node affinity
    at where its vnodes now are.  Hard affinity is the admin's: reported, never changed."""
    before = layout.vnode(vnode).pnode
    moved = layout.with_pnode(vnode, to)
    hv.set_vnuma(d.domid, moved.as_plan(), moved.ranges)
    topo = hv.topology()
    cpus = within(topo.cpus_near([to]), guest_cpus)  # as vnode_home_actions writes them
    vcpus = moved.vnode(vnode).vcpus
    affinity = "kept (--keep-affinity)"
    if follow_affinity:
        why = f"vnode {vnode} moved from pnode {before} to {to}"
        outcomes = Executor(hv, db).apply(vnode_home_actions(d.domid, d.uuid, layout, vnode, to, topo, why,
                                                             guest_cpus))
        affinity = "set" if all(o.status == APPLIED for o in outcomes) else "partly refused"
    hard = {v.vcpu: v.hard for v in hv.vcpus(d.domid)}
    return {"vnode": vnode, "from": before, "to": to, "vcpus": list(vcpus), "pnodes": list(moved.pnodes),
            "affinity": affinity, "hard_excludes_target": [c for c in vcpus if not hard.get(c, cpus) & cpus]}


def after_vnode_move(hv: Hypervisor, d: DomainInfo, layout: VnumaLayout, vnode: int, to: int, done: bool,
                     tally: MoveTally, report: dict, db: Optional[Database] = None,
                     follow_affinity: bool = True, guest_cpus: Optional[FrozenSet[int]] = None) -> Optional[str]:
    """A whole vnode moved: record where it lives now (``report["vnode"]``).  Part of
    one moved (the move stopped), or the record failed: say so in the report's error,
    which is returned (the move then counts as failed)."""
    if done and tally.fallback:
        # the target ran short and Xen put some pages elsewhere: the vnode is not on one pnode
        report["error"] = ("node {} ran out of free memory: {} pages of vnode {} went to other nodes; the vnode "
                           "is now split, its recorded pnode unchanged (run the same --vnode move again once "
                           "node {} has room)").format(to, tally.fallback, vnode, to)
        return report["error"]
    if done:
        try:
            report["vnode"] = rehome_vnode(hv, d, layout, vnode, to, db, follow_affinity, guest_cpus)
            return None
        except NumaError as err:
            report["error"] = "every page of vnode {} moved to node {}, but recording its new pnode failed: {}" \
                .format(vnode, to, err.message)
            return report["error"]
    before = layout.vnode(vnode).pnode
    if not tally.released or before == to:
        return None
    report["error"] = ("{}; vnode {} is now split: {} of its pages on node {}, the rest on pnode {}, which the "
                       "hypervisor still records (run the same --vnode move again)").format(
                           report.get("error", "stopped"), vnode, tally.moved, to, before)
    return report["error"]
