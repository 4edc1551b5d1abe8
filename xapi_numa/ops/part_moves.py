"""Home moves the executor made only in part, and the writes that mend them.

Some writes of a home move went through, others were refused or deferred: the
VM is then homed on two nodes, which neither a later move (its home is several
nodes, no candidate) nor the affinity fix-up (its memory is inside its soft
affinity) would ever mend.  What was made is undone, period after period until
it is made (:func:`xapi_numa.core.rebalance_moves.undo_actions`); a vnode whose
pages have started moving gets its refused writes again instead.  A domain
that is gone takes its entry with it; one not read this time keeps it.
"""
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from xapi_numa.core import rebalance, rebalance_moves
from xapi_numa.core.actions import MoveMemory
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.vnuma import VnumaLayout
from xapi_numa.ops.executor import DONE, GONE

Before = Tuple[Dict[int, FrozenSet[int]], FrozenSet[int]]  # each vCPU's soft affinity, the node affinity


def before(vm: rebalance.VmLoad, snap: HostSnapshot, layout: Optional[VnumaLayout]) -> Before:
    """What a move of ``vm`` changes, as it is now: each vCPU's soft affinity, and the
    node affinity (its home; for a vnode, every pnode its vnodes live on)."""
    soft = {v.vcpu: v.soft for v in snap.vcpus.get(vm.domid, ())}
    if vm.vnode is not None and layout is not None:
        return soft, frozenset(p for p in layout.pnodes if p is not None)
    return soft, frozenset([vm.home])


class PartMoves:
    def __init__(self) -> None:
        self._writes: Dict[str, Tuple[int, List[object]]] = {}  # uuid -> (domid, writes still to make)

    def due(self, snap: HostSnapshot) -> List[object]:
        """The mending writes still to make (none for a domain that is gone)."""
        alive = dict(snap.unread, **{d.uuid: d.domid for d in snap.domains})
        self._writes = {u: e for u, e in self._writes.items() if alive.get(u) == e[0]}
        return [a for _, writes in self._writes.values() for a in writes]

    def made_in_part(self, vm: rebalance.VmLoad, mine: Sequence, was: Before) -> None:
        """``mine``: the outcomes of one move's actions, not all of them done."""
        made = [o.action for o in mine if o.status == DONE]
        if not made or any(o.status == GONE for o in mine):
            return
        if any(isinstance(a, MoveMemory) for a in made):
            writes = [o.action for o in mine if o.status != DONE and not isinstance(o.action, MoveMemory)]
        else:
            writes = rebalance_moves.undo_actions(made, *was)
        self._writes[vm.uuid] = (vm.domid, writes)

    def ended(self, outcomes: Sequence) -> None:
        """Mending writes made (or whose domain is gone) are not made again."""
        done = {id(o.action) for o in outcomes if o.status in (DONE, GONE)}
        for uuid, (domid, writes) in list(self._writes.items()):
            left = [a for a in writes if id(a) not in done]
            if left:
                self._writes[uuid] = (domid, left)
            else:
                del self._writes[uuid]
