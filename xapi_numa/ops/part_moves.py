"""Home moves the executor made only in part, and the writes that mend them.

Some writes of a home move went through, others were refused or deferred: the
VM is then homed on two nodes, which neither a later move (its home is several
nodes, no candidate) nor the affinity fix-up (its memory is inside its soft
affinity) would ever mend.  What was made is undone, period after period until
it is made (:func:`xapi_numa.core.rebalance_moves.undo_actions`); a vnode whose
pages have started moving gets its refused writes again instead.  An entry
goes with its domain (one not read this time keeps it), when the VM is no
longer the rebalancer's (its policy, an admin's pin, an opt-out: not ours to
write), for each vCPU whose soft affinity someone else changed since, and
after ``GIVE_UP`` seconds of refusals.
"""
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Set, Tuple

from xapi_numa.core import rebalance, rebalance_moves
from xapi_numa.core.actions import MoveMemory, SetAffinity, SetNodeAffinity
from xapi_numa.core.cpuset import within
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.vnuma import VnumaLayout
from xapi_numa.ops.executor import DONE, GONE
from xapi_numa.state.homes import Intent

Before = Tuple[Dict[int, FrozenSet[int]], Optional[FrozenSet[int]]]  # each vCPU's soft affinity, node affinity
GIVE_UP = 300.0  # seconds of refused mending writes before a VM is left as it is


def before(vm: rebalance.VmLoad, snap: HostSnapshot, layout: Optional[VnumaLayout]) -> Before:
    """What a move of ``vm`` changes, as it is now: each vCPU's soft affinity, and the
    node affinity: for a vnode, every pnode its vnodes live on; for a whole VM, not
    read here, so automatic (Xen derives it from the vCPUs' affinity, its home again)."""
    soft = {v.vcpu: v.soft for v in snap.vcpus.get(vm.domid, ())}
    if vm.vnode is not None and layout is not None:
        return soft, frozenset(p for p in layout.pnodes if p is not None)
    return soft, None


def writes_of(vm: rebalance.VmLoad, outcomes: Sequence) -> List:
    """The outcomes of the writes of a home move of ``vm``: a whole VM's (its node and soft
    affinity); a vnode's (its vCPUs', the node affinity), its page move included."""
    return [o for o in outcomes if getattr(o.action, "domid", None) == vm.domid
            and (not isinstance(o.action, MoveMemory) or vm.vnode is not None)
            and (vm.vnode is None or getattr(o.action, "vcpu", None) in (None,) + tuple(vm.vcpus))]


def counted(moves: Sequence[Tuple[object, Sequence]]) -> List[bool]:
    """Per (candidate, the outcomes of one of its VMs' writes) of a period: does that VM's move
    count?  Only if every write of the candidate was made: half a swap piles one VM onto the
    other's node, a move never weighed (the other half is undone as a move made in part).  A
    vnode whose pages started moving counts all the same: nothing undoes that."""
    def whole(outcomes: Sequence) -> bool:
        return bool(outcomes) and all(o.status == DONE for o in outcomes)
    short = {id(c) for c, outcomes in moves if not whole(outcomes)}
    return [whole(outcomes) and (id(c) not in short or any(isinstance(o.action, MoveMemory) for o in outcomes))
            for c, outcomes in moves]


Entry = Tuple[int, float, List[Tuple[object, object]]]  # (domid, since, [(write made, its mending write)])


class PartMoves:
    def __init__(self) -> None:
        self._writes: Dict[str, Entry] = {}  # uuid -> what is still to mend

    def due(self, snap: HostSnapshot, not_ours: Set[str], not_now: Set[str]) -> List[object]:
        """The mending writes to make now.  ``not_ours``: VMs the rebalancer must leave (their
        entries go); ``not_now``: VMs to leave this period (a mover of theirs runs: entries kept).
        A VM not read this time keeps its entry and gets no write: nothing is known of it."""
        alive = dict(snap.unread, **{d.uuid: d.domid for d in snap.domains})
        kept: Dict[str, Entry] = {}
        out: List[object] = []
        for uuid, (domid, since, pairs) in self._writes.items():
            if alive.get(uuid) != domid or uuid in not_ours or snap.time - since > GIVE_UP:
                continue
            if uuid in not_now or uuid in snap.unread:
                kept[uuid] = (domid, since, pairs)
                continue
            soft = {v.vcpu: v.soft for v in snap.vcpus.get(domid, ())}
            pairs = [(made, mend) for made, mend in pairs  # a vCPU another has set since is theirs
                     if not isinstance(made, SetAffinity) or soft.get(made.vcpu, made.soft) == made.soft]
            if pairs:
                kept[uuid] = (domid, since, pairs)
                out += [mend for _, mend in pairs]
        self._writes = kept
        return out

    @property
    def mending(self) -> Set[str]:
        return set(self._writes)

    def take_unwritten(self, snap: HostSnapshot, unwritten: Mapping[str, Intent], moving: Set[str],
                       layout_of: Callable[[str], Optional[VnumaLayout]]) -> List[str]:
        """Home moves noted and not known whole (``unwritten``: the notes), that this process is
        not mending yet: left by a process killed between their writes, or by a cycle that failed
        before the executor said how they went (:meth:`left_unwritten`); ``moving``: VMs a mover
        runs for.  Returns the VMs found whole, whose notes go."""
        mending = self.mending
        return [uuid for uuid, intent in sorted(unwritten.items()) if uuid not in mending
                and not self.left_unwritten(snap, uuid, intent, layout_of(uuid), uuid in moving)]

    def left_unwritten(self, snap: HostSnapshot, uuid: str, intent: Intent,
                       layout: Optional[VnumaLayout], mover_runs: bool) -> bool:
        """A home move noted and not known whole (a process killed between its writes, or a
        cycle that failed before the executor said how they went): mend what it left, as
        for a move made in part.  True while there is something to wait for or mend (the
        note stays), False once the VM is whole (the note goes).

        A whole VM: its vCPUs split between the old and the new node (or all on the old,
        the node affinity perhaps written first) are put back on the old one, its node
        affinity automatic; all on the new one, the move was made.  A vnode: its vCPUs on
        the new pnode while its pages never started to move (no mover, the layout still
        naming the old pnode) go back, the node affinity on the layout's pnodes."""
        d = next((x for x in snap.domains if x.uuid == uuid), None)
        if uuid in snap.unread:
            return True
        if d is None or d.domid != intent.domid:
            return False
        topo = snap.topology  # the new home as the move wrote it: inside the host's guest mask
        old, new = topo.cpus_near([intent.from_node]), within(topo.cpus_near([intent.to_node]), snap.unpinned)
        vcpus = snap.vcpus.get(d.domid, ())
        if intent.vnode is not None:
            if layout is None or mover_runs:
                return layout is None or mover_runs
            if layout.vnode(intent.vnode).pnode == intent.to_node:
                return False  # its mover moved it
            vcpus = [v for v in vcpus if v.vcpu in layout.vnode(intent.vnode).vcpus]
        was = {v.vcpu: intent.soft_before.get(v.vcpu, old) for v in vcpus}  # (a note of before: the old node's)
        if not vcpus or any(v.soft not in (was[v.vcpu], new) for v in vcpus):
            return False  # someone else set them since: theirs
        if all(v.soft == new for v in vcpus) and intent.vnode is None:
            return False  # every write was made
        nodes = (None if intent.vnode is None
                 else frozenset(p for p in layout.pnodes if p is not None))  # type: Optional[FrozenSet[int]]
        mends: List[object] = [SetAffinity(d.domid, uuid, v.vcpu, soft=was[v.vcpu], reason=rebalance_moves.UNDO)
                               for v in vcpus if v.soft == new and was[v.vcpu] != new]
        mends.append(SetNodeAffinity(d.domid, uuid, nodes, rebalance_moves.UNDO))
        self._writes[uuid] = (d.domid, snap.time, [(None, m) for m in mends])
        return True

    def made_in_part(self, vm: rebalance.VmLoad, mine: Sequence, was: Before, now: float) -> None:
        """``mine``: the outcomes of one move's actions, not all of them done."""
        made = [o.action for o in mine if o.status == DONE]
        if not made or any(o.status == GONE for o in mine):
            return
        if any(isinstance(a, MoveMemory) for a in made):
            pairs = [(None, o.action) for o in mine if o.status != DONE and not isinstance(o.action, MoveMemory)]
        else:
            pairs = [(a, rebalance_moves.undo_action(a, *was)) for a in made]
        self._writes[vm.uuid] = (vm.domid, now, [(a, m) for a, m in pairs if m is not None])

    def ended(self, outcomes: Sequence) -> None:
        """Mending writes made (or whose domain is gone) are not made again."""
        done = {id(o.action) for o in outcomes if o.status in (DONE, GONE)}
        for uuid, (domid, since, pairs) in list(self._writes.items()):
            left = [(made, mend) for made, mend in pairs if id(mend) not in done]
            if left:
                self._writes[uuid] = (domid, since, left)
            else:
                del self._writes[uuid]
