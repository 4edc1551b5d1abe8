"""Where a guest's backend work in dom0 belongs, and the plan that puts it there (pure).

A PV or PVH dom0 sees one NUMA node whatever the host has (Linux turns SRAT
off for Xen PV; a PVH dom0 on Xen 4.17 gets none), so dom0 cannot place its
own work by node.  What it can do is run each guest's backend work (the
device model, netback and blkback kernel threads, the event-channel IRQs of
those devices) on the dom0 vCPUs whose pCPUs are on the guest's home nodes,
provided every dom0 vCPU is pinned to one node.  This module owns:

* the values that describe dom0's layout and the backend work found in it
  (read by :mod:`xapi_numa.backends.dom0`);
* the rule: a guest's backend work is allowed on exactly the dom0 vCPUs of
  its home nodes (:func:`xapi_numa.core.locality.home_nodes`);
* :func:`plan`: the actions that make it so, and the ones that hand back what
  we changed once a guest opts out or the feature is switched off.

Only work attributed to a running guest (by the domid in its name) is ever
touched; dom0's own threads and IRQs, those of guests that opted out, and a
guest's thread whose mask someone else set (neither dom0's default nor one of
ours) never appear in a plan.
"""
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Set, Tuple

import attrs

from xapi_numa.core.actions import (ForgetBackendAffinity, RestoreBackendAffinity, SetAffinity, SetIrqAffinity,
                                    SetThreadAffinity)
from xapi_numa.core.locality import home_nodes
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology

THREAD, IRQ = "thread", "irq"
TASK_KINDS = ("qemu", "tapdisk", "netback", "blkback")


@attrs.frozen
class Dom0Layout:
    """Which node each dom0 vCPU is pinned to; ``problems`` says why it cannot be used."""

    node_of_vcpu: Mapping[int, int]
    problems: Tuple[str, ...] = ()
    online: FrozenSet[int] = frozenset()  # every online dom0 vCPU, pinned or not: dom0's default
    uncovered: FrozenSet[int] = frozenset()  # nodes with pCPUs but no dom0 vCPU: their guests' work stays put

    @property
    def usable(self) -> bool:
        return not self.problems and bool(self.node_of_vcpu)

    @property
    def all_vcpus(self) -> FrozenSet[int]:
        return frozenset(self.node_of_vcpu)

    @property
    def can_spread(self) -> bool:
        """Some node has no dom0 vCPU while another has two: pinned one node each, round
        robin (:func:`plan_dom0_pins`), they would cover more nodes."""
        return bool(self.uncovered) and len(self.node_of_vcpu) > len(set(self.node_of_vcpu.values()))

    def vcpus_on(self, nodes: FrozenSet[int]) -> FrozenSet[int]:
        return frozenset(v for v, n in self.node_of_vcpu.items() if n in nodes)


@attrs.frozen
class BackendTask:
    """One dom0 thread doing a guest's backend work (a kernel thread or a thread of a process)."""

    domid: int
    kind: str               # one of TASK_KINDS
    tid: int
    name: str               # its comm
    starttime: int          # /proc stat field 22: tells a reused tid from the thread we saw
    allowed: FrozenSet[int]  # dom0 vCPUs it may run on
    last_cpu: int = -1      # dom0 vCPU it last ran on
    cpu_time: float = 0.0   # seconds it has run


@attrs.frozen
class BackendIrq:
    """One event-channel IRQ of a guest's backend device."""

    domid: int
    irq: int
    name: str                 # the action name in /proc/interrupts (vif1.0-q0-tx ...)
    allowed: FrozenSet[int]
    counts: Tuple[Tuple[int, int], ...] = ()  # (dom0 vCPU, interrupts it took), online vCPUs only


@attrs.frozen
class Owned:
    """A thread or IRQ whose affinity we changed (from the backend journal)."""

    uuid: str
    kind: str     # THREAD or IRQ
    ident: int    # tid or irq number
    name: str
    starttime: int = 0
    # the dom0 vCPUs we gave it (None: not recorded, an entry older than 2026-12-05); not part
    # of which thread or IRQ the entry names
    cpus: Optional[FrozenSet[int]] = attrs.field(default=None, eq=False)


@attrs.frozen
class BackendState:
    """What the backend planner looks at besides the snapshot."""

    layout: Dom0Layout
    tasks: Tuple[BackendTask, ...] = ()
    irqs: Tuple[BackendIrq, ...] = ()
    owned: Tuple[Owned, ...] = ()
    opted_out: FrozenSet[str] = frozenset()  # uuids of VMs with numa_backend_affinity=false
    enabled: bool = True                     # the host-wide switch
    irqs_allowed: bool = True                # False when irqbalance would fight us
    default_irq_cpus: Optional[FrozenSet[int]] = None  # /proc/irq/default_smp_affinity (None: all)
    layout_lost: bool = False  # dom0's vCPUs read, and not pinned one node each, for a while: hand back
    # (uuid, mask) of the threads the last look's writes moved: the mask each had before, which a
    # thread born between that look's read and the write to its creator has (Linux: the creator's);
    # journalled with each write, so that a restart before the next look keeps them (state.backend_pins)
    moved_from: Tuple[Tuple[str, FrozenSet[int]], ...] = ()


def read_layout(dom0_vcpus: Sequence, topo: Topology) -> Dom0Layout:
    """dom0's layout from its vCPUs' hard affinity: usable only if each online one is pinned
    to one node (an offline vCPU runs nothing, and Linux will not put work on it)."""
    nodes: Dict[int, int] = {}
    problems: List[str] = []
    dom0_vcpus = [v for v in dom0_vcpus if v.state != "offline"]
    for v in dom0_vcpus:
        on = topo.nodes_of_cpus(v.hard)
        if len(on) == 1:
            nodes[v.vcpu] = next(iter(on))
        else:
            problems.append("dom0 vCPU {} may run on pCPUs {} (nodes {}): not pinned to one node".format(
                v.vcpu, topo.format_cpus(v.hard), ",".join(str(n) for n in sorted(on))))
    if not dom0_vcpus:
        problems.append("dom0 has no vCPUs to read")
    uncovered = frozenset(n.id for n in topo.nodes if n.cpus) - set(nodes.values()) if not problems else frozenset()
    return Dom0Layout(nodes, tuple(problems), frozenset(v.vcpu for v in dom0_vcpus), uncovered)


def plan_dom0_pins(dom0_vcpus: Sequence, topo: Topology) -> List[object]:
    """Pin dom0's vCPUs one node each, round robin over the nodes (vCPU i on node i mod n,
    hard affinity that node's pCPUs), for a dom0 booted without a per-node layout or whose
    vCPUs are all on fewer nodes than they could cover.  Nothing if it already has one."""
    layout = read_layout(dom0_vcpus, topo)
    if layout.usable and not layout.can_spread:
        return []
    nodes = [n for n in topo.nodes if n.cpus]
    out: List[object] = []
    for v in dom0_vcpus:
        node = nodes[v.vcpu % len(nodes)]
        cpus = frozenset(node.cpus)
        if v.hard != cpus:
            out.append(SetAffinity(0, "", v.vcpu, hard=cpus, reason="dom0 vCPU {} to node {} (--pin-dom0)".format(
                v.vcpu, node.id)))
    return out


def target_vcpus(snap: HostSnapshot, layout: Dom0Layout, domid: int) -> FrozenSet[int]:
    """The dom0 vCPUs a guest's backend work belongs on (empty: none on its home nodes)."""
    homes = home_nodes(snap.vcpus.get(domid, ()), snap.topology)
    return layout.vcpus_on(homes)


def _guests(snap: HostSnapshot, state: BackendState) -> Dict[int, str]:
    """domid -> uuid of the guests whose backend work we manage (not one shut down and not
    yet destroyed: its work is about to go, or, resumed, stays where it was)."""
    if not state.enabled or not state.layout.usable:
        return {}
    return {d.domid: d.uuid for d in snap.domains
            if d.domid != 0 and d.uuid not in state.opted_out and not d.shutdown}


def plan(snap: HostSnapshot, state: BackendState) -> List[object]:
    """Actions that put each managed guest's backend work on its home nodes' dom0 vCPUs,
    and hand back what we changed for guests no longer managed or homed where dom0 has no vCPU."""
    managed = _guests(snap, state)
    targets = {domid: target_vcpus(snap, state.layout, domid) for domid in managed}
    actions: List[object] = []
    held = {(o.ident, o.name, o.starttime): o for o in state.owned if o.kind == THREAD}
    online = state.layout.online or state.layout.all_vcpus
    ours = _our_masks(state, held, online)
    for t in state.tasks:
        cpus = targets.get(t.domid)
        if not cpus:
            continue
        entry = held.get((t.tid, t.name, t.starttime))
        if entry is not None and entry.cpus is not None and t.allowed & online != entry.cpus & online:
            # not the mask we gave it: someone set theirs since (an admin's taskset).  Theirs
            # from now on: forgotten, so that neither this look nor a hand-back undoes it
            actions.append(ForgetBackendAffinity(entry.uuid, THREAD, t.tid, t.name, t.starttime,
                                                 reason="{} of domain {}: its mask was set by someone else since "
                                                        "ours; left as they set it".format(t.kind, t.domid)))
            continue
        if entry is None and not _ours_to_take(t, cpus, online, ours.get(managed[t.domid], frozenset())):
            continue  # pinned by someone else (an admin's taskset): theirs, left as they set it
        if t.allowed != cpus:
            actions.append(SetThreadAffinity(t.domid, managed[t.domid], t.tid, t.name, t.starttime, cpus,
                                             reason="{} of domain {} to dom0 vCPUs of its home".format(
                                                 t.kind, t.domid), moved_from=t.allowed))
        elif entry is None:
            # already there, not by a write of ours: a thread started since by one we moved
            # (Linux gives it its creator's mask).  Written again so that it is journalled,
            # and handed back with the others; never journalled, it stayed on one node for good
            actions.append(SetThreadAffinity(t.domid, managed[t.domid], t.tid, t.name, t.starttime, cpus,
                                             reason="{} of domain {}, on its home's dom0 vCPUs already (a "
                                                    "thread started by one moved there): taken in hand".format(
                                                        t.kind, t.domid)))
    if state.irqs_allowed:
        for q in state.irqs:
            cpus = targets.get(q.domid)
            if cpus and q.allowed != cpus:
                actions.append(SetIrqAffinity(q.domid, managed[q.domid], q.irq, q.name, cpus,
                                              reason="IRQ of domain {} to dom0 vCPUs of its home".format(q.domid)))
    actions += _hand_back(snap, state, managed, targets)
    return actions


def _our_masks(state: BackendState, held: Mapping[Tuple[int, str, int], Owned],
               online: FrozenSet[int]) -> Dict[str, FrozenSet[FrozenSet[int]]]:
    """uuid -> the masks (their online vCPUs) of the guest's threads we hold: the ones we gave
    them, and the ones they have now (an entry older than 2026-12-05 does not say which it got);
    and the ones the last look's writes moved its threads off (``moved_from``: dom0's default
    or a mask of ours, as only such threads are written)."""
    out: Dict[str, Set[FrozenSet[int]]] = {}
    for uuid, mask in state.moved_from:
        out.setdefault(uuid, set()).add(mask & online)
    for o in held.values():
        if o.cpus is not None:
            out.setdefault(o.uuid, set()).add(o.cpus & online)
    for t in state.tasks:
        o = held.get((t.tid, t.name, t.starttime))
        if o is not None:
            out.setdefault(o.uuid, set()).add(t.allowed & online)
    return {uuid: frozenset(masks) for uuid, masks in out.items()}


def _ours_to_take(task: BackendTask, target: FrozenSet[int], online: FrozenSet[int],
                  ours: FrozenSet[FrozenSet[int]]) -> bool:
    """May a thread we never wrote be aligned?  Only if its mask is dom0's default (every
    online dom0 vCPU, or more: Linux counts offline possible CPUs too), or one of ours: its
    home's dom0 vCPUs, or a mask a thread of the same guest that we hold got from us or has
    (a thread born to one we moved has its mask: the plan is made before this look's writes,
    so a home that moved since still finds the old mask on the thread that passed it on; one
    born between the last look's read and its write to its creator has the mask that write
    moved the creator off, counted for the next look only: ``BackendState.moved_from``).
    A mask is judged by its online vCPUs: Linux keeps a dom0 vCPU gone offline in the masks
    we gave.  Any other mask was set by someone else on purpose, and overwriting it would
    undo that."""
    mask = task.allowed & online
    return task.allowed >= online or mask == target or mask in ours


def _hand_back(snap: HostSnapshot, state: BackendState, managed: Mapping[int, str],
               targets: Mapping[int, FrozenSet[int]]) -> List[object]:
    """For each journalled change: restore the default if the guest still runs but is no
    longer managed, or its home nodes have no dom0 vCPU any more, or if the thread/IRQ is no
    longer attributed to it (its guest gone, or, for a tapdisk, its record removed or shared
    with another guest).  The write checks the thread's or IRQ's identity first, so one that
    is gone is only forgotten."""
    running = {d.uuid for d in snap.domains}
    managed_uuids = set(managed.values())
    # not read this time, or shut down and not yet destroyed (it may resume): what we changed stays as it is
    unread = set(snap.unread) | {d.uuid for d in snap.domains if d.shutdown}
    # a managed guest homed where dom0 has no vCPU has no better place than dom0's default:
    # kept, its work would stay pinned to its old home, and its IRQs banned from irqbalance
    placed_uuids = {uuid for domid, uuid in managed.items() if targets[domid]}
    present = {(THREAD, t.tid, t.name, t.starttime) for t in state.tasks}
    present |= {(IRQ, q.irq, q.name, 0) for q in state.irqs}
    # dom0's default is every online vCPU it has now, whether the admin still pins them or not
    threads_default = state.layout.online or state.layout.all_vcpus or None
    out: List[object] = []
    for o in state.owned:
        still_there = (o.kind, o.ident, o.name, o.starttime) in present
        if (o.uuid in placed_uuids or o.uuid in unread) and still_there:
            continue
        cpus = threads_default if o.kind == THREAD else (state.default_irq_cpus or threads_default)
        if o.uuid not in running or not still_there:
            # gone, or alive but no longer this guest's work: dom0's default back on whatever is left
            out.append(RestoreBackendAffinity(o.uuid, o.kind, o.ident, o.name, o.starttime, cpus,
                                              reason="its guest or its device is gone, or it is not the guest's "
                                                     "alone any more"))
            continue
        if o.uuid in managed_uuids:
            out.append(RestoreBackendAffinity(o.uuid, o.kind, o.ident, o.name, o.starttime, cpus,
                                              reason="its home nodes have no dom0 vCPU"))
            continue
        why = "backend affinity is off for this VM" if o.uuid in state.opted_out else "backend affinity is off"
        if not state.layout.usable and state.enabled and o.uuid not in state.opted_out:
            if not state.layout_lost:
                continue  # a layout unusable for a moment (dom0 being re-pinned) is no reason to undo anything
            # lastingly not pinned one node each: a dom0 vCPU no longer stands for a node, and
            # kept, the work would stay confined to it (its IRQs banned from irqbalance)
            why = "dom0's vCPUs have not been pinned one node each for a while"
        out.append(RestoreBackendAffinity(o.uuid, o.kind, o.ident, o.name, o.starttime, cpus, reason=why))
    return out + _inherited_too(snap, state, out, threads_default)


def _inherited_too(snap: HostSnapshot, state: BackendState, restores: Sequence[object],
                   default: Optional[FrozenSet[int]]) -> List[object]:
    """A running guest's threads handed back take with them its threads that hold the same
    mask but were never journalled: started since the last write by one we had moved (Linux
    gives a new thread its creator's mask), they would stay on one node's dom0 vCPUs."""
    if default is None:
        return []
    uuid_of = {d.domid: d.uuid for d in snap.domains}
    allowed = {(t.tid, t.name, t.starttime): t.allowed for t in state.tasks}
    owned = {(o.ident, o.name, o.starttime) for o in state.owned if o.kind == THREAD}
    masks: Dict[str, Set[FrozenSet[int]]] = {}  # uuid -> the masks of its threads being handed back
    for r in restores:
        mask = allowed.get((r.ident, r.name, r.starttime)) if r.kind == THREAD else None
        if mask is not None and mask != default:
            masks.setdefault(r.uuid, set()).add(mask)
    return [RestoreBackendAffinity(uuid_of[t.domid], THREAD, t.tid, t.name, t.starttime, default,
                                   reason="started by a thread of the guest's that was moved, with its mask; "
                                          "handed back with it")
            for t in state.tasks
            if t.allowed in masks.get(uuid_of.get(t.domid, ""), ()) and (t.tid, t.name, t.starttime) not in owned]
