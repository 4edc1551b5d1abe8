"""What a rebalancer decision becomes (pure): a VM's new home, and the page moves
that bring its memory after it.  The rule that decides is :mod:`.rebalance`; the
two about homes we gave are here: the writes that mend a move made only in part
(:func:`undo_action`), and a VM whose memory stays brought back to it
(:func:`back_to_memory`)."""
import math
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import attrs

from xapi_numa.core.actions import MoveMemory, SetAffinity, SetNodeAffinity
from xapi_numa.core.cpuset import within
from xapi_numa.core.demand_window import node_series, sound_samples
from xapi_numa.core.rebalance import Settings, VmLoad, pages_to_move
from xapi_numa.core.topology import Topology

UNDO = "undo a home move made only in part"


def home_move_actions(vm: VmLoad, to: int, topo: Topology, reason: str,
                      usable: Optional[FrozenSet[int]] = None) -> List[object]:
    """A new home: node affinity (where new memory comes from) and soft affinity, on the
    node's CPUs that guests may use (``usable``: the host's guest mask, if any)."""
    cpus = within(topo.cpus_near([to]), usable)
    return ([SetNodeAffinity(vm.domid, vm.uuid, frozenset([to]), reason)]
            + [SetAffinity(vm.domid, vm.uuid, v, soft=cpus, reason=reason) for v in vm.vcpus])


def back_to_memory(vms: Sequence[VmLoad], homed_by_us: Mapping[str, int], capacity: Mapping[int, float],
                   settings: Settings) -> List[Tuple[VmLoad, int]]:
    """The VMs whose memory stays (:attr:`VmLoad.fixed_memory`) that we homed away from it
    (``homed_by_us``: uuid -> the home we gave it), to home back on the node holding most
    of it: still on that home, movable (its hold-down over, its policy and pins allowing),
    the node allowed to it and with pCPUs for guests (a memory-only node is no home), and
    room for it there over the whole demand window (with it, that node would have stayed
    within ``headroom`` at every period: the same evidence a move away is judged on, so a
    dip between bursts brings nobody back).  Held for good, they ran with their memory
    remote long after the load that sent them away was gone.  (Samples that are no finite number >= 0
    dropped as the plan drops them, :func:`.demand_window.sound_samples`: the plan says which.)"""
    vms = sound_samples(vms)[0]
    k = max([len(vm.history) for vm in vms] + [1])
    series = node_series(vms, list(capacity), k)
    out = []
    for vm in vms:
        if (vm.home is None or homed_by_us.get(vm.uuid) != vm.home or vm.vnode is not None or not vm.pages
                or not vm.movable):  # (home None: homed on several nodes, none of them ours to undo)
            continue
        back = max(sorted(vm.pages), key=lambda n: vm.pages[n])
        if back == vm.home or not capacity.get(back) or (vm.allowed is not None and back not in vm.allowed):
            continue
        with_it = [a + b for a, b in zip(series[back], vm.samples(k))]
        if max(with_it) <= capacity[back] * settings.headroom:
            out.append((vm, back))
            series[back] = with_it
    return out


def undo_action(made: object, soft_before: Mapping[int, FrozenSet[int]],
                nodes_before: Optional[FrozenSet[int]]) -> Optional[object]:
    """The write that puts back what ``made`` (a write of a home move that went through,
    when others of it did not) changed, or None: a VM is never left homed on two nodes.
    ``nodes_before`` None: automatic node affinity."""
    if isinstance(made, SetNodeAffinity):
        return attrs.evolve(made, nodes=nodes_before, reason=UNDO)
    if isinstance(made, SetAffinity) and made.vcpu in soft_before:
        return attrs.evolve(made, soft=soft_before[made.vcpu], reason=UNDO)
    return None


def follow_memory(vm: VmLoad, settings: Settings, already_moved: int = 0, chunk_pages: Optional[int] = None,
                  room: Optional[int] = None) -> Optional[MoveMemory]:
    """The next page move that brings the VM's memory home, or None once enough is local.

    The mover takes movable gfns in order and cannot tell which are on the target
    already: ``already_moved`` gfns are skipped (moved before, so on the target), and
    the count is scaled up by the share of the gfns after them that is elsewhere
    (not of all of them: that share is smaller, and a last step moved everything)."""
    if vm.home is None or vm.memory_stays or vm.vnode is not None or vm.local_share(vm.home) >= settings.local_enough:
        return None
    total = sum(vm.pages.values())
    rest = max(total - already_moved, 1)  # the gfns the mover still walks
    deficit = pages_to_move(vm, vm.home, max(settings.local_enough, settings.follow_target))
    elsewhere = min(1.0, (total - vm.pages.get(vm.home, 0)) / rest)
    pages = min(rest, int(math.ceil(deficit / max(elsewhere, 1e-6))))
    if chunk_pages is not None:
        pages = min(pages, chunk_pages)
    if room is not None:  # never into memory others need (claims, reservations for starts)
        pages = min(pages, room)
    if pages <= 0:
        return None
    return MoveMemory(vm.domid, vm.uuid, vm.home, max_pages=pages, rate=settings.rate, skip=already_moved,
                      reason="memory follows its home: {:.0%} local".format(vm.local_share(vm.home)))


def pages_after(pages: Dict[int, int], to: int, max_pages: Optional[int]) -> Dict[int, int]:
    """Where a VM's pages are once a step of at most ``max_pages`` (None: all) has moved
    them to ``to``, taken evenly from the other nodes (a model for hosts whose pages are
    read rarely)."""
    out = dict(pages)
    total = sum(out.values())
    elsewhere = total - out.get(to, 0)
    moved = min(max_pages or elsewhere, elsewhere)
    for node in list(out):
        if node != to and elsewhere:
            out[node] -= int(moved * out[node] / elsewhere)
    out[to] = total - sum(p for n, p in out.items() if n != to)
    return out
