"""Whether a set of nodes keeps a VM's striped build on it, and what to hold where.  Pure.

A set of nodes has room for a VM when its free memory adds up to what the VM needs, but
Xen's build does not take that memory as a sum: libxc asks an HVM/PVH guest's RAM a whole
GiB at a time, a PV one's in 2 MiB extents, and an extent no node of the affinity has goes
to any other node that has it before a smaller one is asked (:mod:`xapi_numa.core.xenalloc`).
:class:`BuildRoom` answers, for the placement engine's set searches, whether the build over
a set leaves any of the VM's memory elsewhere, and predicts per node what it puts there.

The overhead first (xen-api's domain.ml ``build_pre``: ``shadow_allocation_set`` before the hard
vCPU map; Xen 4.17's hap_set_allocation takes the pool page by page with the domain's node
affinity, which ``domain_update_node_aff`` made every node with CPUs of its cpupool once
XEN_DOMCTL_max_vcpus made its vCPUs): a set holds only what of it lands there (:meth:`for_sets`).
"""
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from xapi_numa.core.cpuset import format_ids
from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.core.xenalloc import (GIGAPAGE, SUPERPAGE, build_extents, striped_holding, striped_outside,
                                     take_overhead)
from xapi_numa.errors import NoCapacity


def room_for_extents(free_bytes: Sequence[int], need: int) -> List[int]:
    """Free bytes per node as room for a build of ``need`` bytes.

    Every build takes 2 MiB extents (PV's all, HVM/PVH's beside their 1 GiB ones), and
    an extent goes to a node outside the affinity when no node in it has a whole one
    left (:func:`xapi_numa.core.xenalloc.distribute`).  A node that holds the build's whole extents (the rest
    goes in 4 KiB pages) counts all its free bytes; any other counts its whole 2 MiB
    extents only.  Exact for one node: one with room for the RAM has as many whole GiBs
    as the build asks (F // GiB >= RAM // GiB).  For a set of nodes an upper bound only:
    one whose nodes have room enough but not in whole GiBs sees a GiB go to a node
    outside it (:func:`xapi_numa.core.xenalloc.striped_outside` says where).
    """
    extent = SUPERPAGE * 4096  # bytes
    whole = need - need % extent
    return [f if f - f % extent >= whole else f - f % extent for f in free_bytes]


class BuildRoom:
    """A VM's build striped over a set of nodes, as Xen does it (:mod:`xapi_numa.core.xenalloc`):
    whether it keeps the VM's memory on the set, and what to hold where.

    Free memory counted in whole 2 MiB extents adds up over a set, but an HVM/PVH build asks
    each whole GiB as one 1 GiB extent, and one that no node of the set has goes to any other
    node that has it (nodes 0 and 1 with 1.5 GiB each: the third GiB of a 3 GiB PVH VM).
    ``free``: pages free on every node, those outside the VM's CPU mask too (Xen takes from
    them); ``overhead``: pages of the build beside the RAM's ``pages``, dealt page by page round
    ``overhead_round`` before the RAM (``BuildOverhead.round_of``: xenopsd sets the shadow/HAP pool
    before the VM's affinity, so every node with CPUs gives its share; None: round the set, as libxl
    does), as :func:`xapi_numa.core.xenalloc.striped_builds` deals it.  ``zone``: pages free below
    Xen's DMA width on every node, beyond ``free``: alloc_domheap_pages looks there for an extent
    only once no node has it above, so a GiB none has above comes from a zone (node 0's) before
    libxc asks 2 MiB extents.  ``video``: of ``pages``, an HVM guest's video RAM, which QEMU populates
    page by page after the build (:func:`xapi_numa.core.xenalloc.build_extents`).

    A set is checked on a host of its own nodes only (:meth:`_alike`), which builds as the host
    does up to the first extent that goes elsewhere: a search checks a dozen sets or more, on
    hosts of up to 64 nodes.  The answer is remembered by that host, so the many alike sets of a
    host of equal nodes cost one check.
    """

    def __init__(self, free: Sequence[int], overhead: int, pages: int, dtype: str, binding: bool,
                 overhead_round: Optional[Sequence[int]] = None, zone: Optional[Sequence[int]] = None,
                 video: int = 0) -> None:
        self.free, self.overhead, self.pages, self.dtype, self.video = list(free), overhead, pages, dtype, video
        self.zone = list(zone) if zone and any(zone) else None
        self.overhead_round = overhead_round
        # the free pages the RAM's build meets, and the overhead a set's own build still deals: a round
        # of every node with CPUs is the same whatever the set, so it is dealt once here
        self._ram_free, self._set_overhead = self.free, overhead
        self.landed = [0] * len(self.free)  # pages of the overhead each node gives before any set's build
        if overhead_round is not None:
            self._ram_free, self._set_overhead = list(self.free), 0
            try:
                take_overhead(overhead, self._ram_free, overhead_round)
                self.landed = [f - r for f, r in zip(self.free, self._ram_free)]
            except NoCapacity:  # (the host lacks the room: no set keeps it)
                self._ram_free = [0] * len(self.free)
        # a binding VM's memory must stay on its nodes (strict, or on_exhaust=fail: Policy.binding); any
        # other may take a set Xen spills from when none keeps it (its memory held where it lands)
        self.passes = (True,) if binding else (True, False)
        self._most_first = sorted(range(len(free)), key=lambda n: -self._ram_free[n])
        self._seen: Dict[tuple, bool] = {}
        # what the build asks: 1 GiB extents, 2 MiB ones, and pages taken otherwise (the overhead's too)
        extents = build_extents(pages, dtype, video)
        self._gibs = sum(count // GIGAPAGE for count, largest in extents if largest == GIGAPAGE)
        self._sups = sum(count // SUPERPAGE for count, largest in extents if largest == SUPERPAGE)
        self._small = self._set_overhead + sum(count % SUPERPAGE if largest == SUPERPAGE else count
                                     for count, largest in extents if largest < GIGAPAGE)

    def for_sets(self, avail: Sequence[int], need: int) -> Tuple[List[int], int]:
        """Bytes per node (``avail``) and the whole build's ``need`` as a set's sum weighs them.  With
        the overhead dealt round every node with CPUs first, a set holds only what of it lands there:
        each node counts what its share leaves (the shares of nodes without room for theirs go on
        round), in whole extents as :func:`room_for_extents` counts them for the RAM, and a set
        needs the rest of the build.  Dealt round the set (libxl's): unchanged."""
        if self.overhead_round is None:
            return list(avail), need
        left = room_for_extents([p << PAGE_SHIFT for p in self._ram_free], self.pages << PAGE_SHIFT)
        return [r if a > 0 else 0 for a, r in zip(avail, left)], need - (sum(self.landed) << PAGE_SHIFT)

    def keeps(self, nodes: Sequence[int]) -> bool:
        """Whether the build over ``nodes`` puts nothing on other nodes, whichever node its round starts after."""
        free, zone, affinity = self._alike(frozenset(nodes))
        key = tuple(free), tuple(zone or ()), len(affinity)
        if key not in self._seen and self._surely_keeps(free, affinity):  # (above the zones: never in them)
            self._seen[key] = True
        if key not in self._seen:
            try:  # (a start that spills ends the check)
                self._seen[key] = not striped_outside(self._set_overhead, self.pages, self.dtype, _all(free, zone),
                                                      affinity, first=True, zone=zone, video=self.video)
            except NoCapacity:  # the host lacks the room: it cannot keep it either
                self._seen[key] = False
        return self._seen[key]

    def outside(self, nodes: Sequence[int]) -> List[int]:
        """The other nodes the build over ``nodes`` puts memory on."""
        return striped_outside(self.overhead, self.pages, self.dtype, _all(self.free, self.zone), sorted(nodes),
                               overhead_round=self.overhead_round, zone=self.zone, video=self.video)

    def holding(self, nodes: Sequence[int]) -> Dict[int, int]:
        """Pages to hold on each node for the build over ``nodes``."""
        return striped_holding(self.overhead, self.pages, self.dtype, _all(self.free, self.zone), sorted(nodes),
                               self.overhead_round, self.zone, self.video)

    def lacking(self, nodes: Sequence[int], avail: Sequence[int], need: int) -> str:
        """Why ``nodes``, with ``need`` bytes of room (``avail``), do not keep the VM: where Xen's
        build puts the rest ("" where they lack the room, or keep it)."""
        with_room = [n for n in nodes if avail[n] > 0]
        cap, need = self.for_sets(avail, need)
        outside = self.outside(with_room) if sum(cap[n] for n in nodes) >= need else []
        return (f", not in the whole extents Xen's build takes, 1 GiB ones first: it would put part of it on "
                f"node{'s' if len(outside) > 1 else ''} {format_ids(outside)}") if outside else ""

    def spill(self, nodes: Sequence[int]) -> str:
        """For a set the build does not keep the VM on (not binding): where the rest goes, held there."""
        outside = [] if self.keeps(nodes) else self.outside(nodes)
        return (f"; Xen's build puts part of it on node{'s' if len(outside) > 1 else ''} {format_ids(outside)} "
                f"(whole extents these lack), held there") if outside else ""

    def _surely_keeps(self, free: Sequence[int], affinity: Sequence[int]) -> bool:
        """Whether the nodes ``affinity`` of ``free`` have an extent of each size whenever the build
        asks one, however it deals them, so that none leaves them (then no build need say so).

        Pages taken other than in whole extents of a size cost a node at most one extent of that
        size more than their share: ``x`` pages leave a node of F free at least F // E - x / E - 1
        whole ones of size E (and a GiB taken costs exactly 512 2 MiB extents).  So while the
        nodes' whole GiBs less the GiBs and 2 MiB extents of the build in GiBs, less one a node,
        are at least the GiBs asked, one is left for each; 2 MiB extents alike; pages while the
        nodes have the build's pages in all."""
        gib_pages = self._sups * SUPERPAGE + self._small
        gibs = sum(free[n] // GIGAPAGE for n in affinity) - len(affinity) - gib_pages / GIGAPAGE
        sups = sum(free[n] // SUPERPAGE for n in affinity) - len(affinity) - self._small / SUPERPAGE
        return (gibs >= self._gibs and sups >= self._gibs * (GIGAPAGE // SUPERPAGE) + self._sups
                and sum(free[n] for n in affinity) >= self._set_overhead + self.pages)

    def _alike(self, inside: FrozenSet[int]) -> Tuple[List[int], Optional[List[int]], List[int]]:
        """A host the build over ``inside`` goes the same way on until an extent leaves it: (free pages
        per node, those below the DMA width or None, the affinity).  Its nodes in the same order (the
        round's), a first node that is the host's node 0 or holds nothing (a new domain's first extent
        goes to the next node), and one node for all the others, with the largest extent any of them
        has, above the width and below it (the first extent that leaves goes to one with it: which one
        does not matter here)."""
        free = self._ram_free  # (after the overhead's round of every node with CPUs, when it goes first)
        most = next((free[n] for n in self._most_first if n not in inside), 0)
        affinity = list(range(0 if 0 in inside else 1, len(inside) + (0 not in inside)))
        alike = _alike_pages(free, inside, most)
        if self.zone is None:
            return alike, None, affinity
        return alike, _alike_pages(self.zone, inside, max((z for n, z in enumerate(self.zone) if n not in inside),
                                                         default=0)), affinity


def _alike_pages(pages: Sequence[int], inside: FrozenSet[int], most: int) -> List[int]:
    """``pages`` per node on :meth:`BuildRoom._alike`'s host: node 0's (or none), the set's, and the
    largest extent ``most`` pages of the others make."""
    head = [pages[0]] if 0 in inside else [0]
    return head + [pages[n] for n in sorted(inside - {0})] + [
        next((size for size in (GIGAPAGE, SUPERPAGE, 1) if most >= size), 0)]


def _all(free: Sequence[int], zone: Optional[Sequence[int]]) -> List[int]:
    """Every free page per node: ``free`` and, where given, the ``zone`` below the DMA width."""
    return list(free) if zone is None else [f + z for f, z in zip(free, zone)]
