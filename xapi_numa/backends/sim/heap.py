"""The simulated host's heap: free pages per node, Xen's DMA zone, claims, allocation.

Part of the :class:`~xapi_numa.backends.sim.model.Host` (a base class of it).  What
this module owns: where a domain's new pages come from (:mod:`xapi_numa.core.xenalloc`,
other domains' claims left alone), the claims themselves, and the DMA zone's books.

The DMA zone: a simulated host boots with a Xen command line, and keeps the memory
below the DMA width it gives (:func:`xapi_numa.core.dma_zone.dma_width`: ``dma_bits=``,
else a quarter of node 0, at most 4 GiB) as Xen 4.17 does, for the last of every
ordinary allocation.  Its nodes lie end to end from address 0 in node order (as on an
x86 host: node 0 holds the low memory), so the zone is node 0's first pages unless
``dma_bits=`` reaches further.  Pages carry no address here: each domain counts how
many of its pages on a node are in the zone (``Domain.dma_pages``), and when it frees
some of a node's pages but not all (a page move), its zone pages there go last: a
build takes the zone last, so they back its last gfns, which a mover reaches last.

A build's overhead (the paging pool a toolstack has Xen allocate, Xen's per-vCPU memory:
:func:`build_overhead`) is taken page by page round the domain's node affinity as it is
then (:meth:`Heap.take_overhead`).  Xen allocates it for the domain but not as the
domain's pages (``MEMF_no_owner``: hap_set_allocation, shadow_set_allocation), so it is
in neither its ``tot_pages`` nor the pages per node its page list gives (debug key 'u'):
the domain holds it apart (``Domain.overhead_pages``) until it is destroyed.
"""

import errno
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from xapi_numa.backends.sim.domain import Domain
from xapi_numa.backends.sim.masks import iter_bits
from xapi_numa.core import dma_zone
from xapi_numa.core import xenalloc as allocator
from xapi_numa.core.overhead import BuildOverhead
from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.errors import HypervisorError, NoCapacity


def zone_pages(commandline: str, node_pages: Sequence[int]) -> List[int]:
    """Each node's pages below Xen's DMA width, its nodes laid end to end from address 0."""
    width = dma_zone.dma_width(commandline, [p << PAGE_SHIFT for p in node_pages])
    below = 0 if width is None else (1 << width) >> PAGE_SHIFT
    zone, start = [], 0
    for pages in node_pages:
        zone.append(max(0, min(pages, below - start)))
        start += pages
    return zone


def assumed_dma_pages(domains: Iterable[Domain], node_pages: Sequence[int], zone: Sequence[int]) -> None:
    """Give domains of a state file written before the simulator had a DMA zone their
    zone pages: on each node, the pages beyond what lies above the zone, the domains built
    last holding them (an allocation takes the zone last)."""
    newest_first = sorted(domains, key=lambda d: d.domid, reverse=True)
    for n, (size, low) in enumerate(zip(node_pages, zone)):
        beyond = max(0, sum(d.node_pages[n] for d in newest_first) - (size - low))
        for d in newest_first:
            d.dma_pages[n] = min(d.node_pages[n], beyond)
            beyond -= d.dma_pages[n]


def build_overhead(dtype: str, vcpus: int, max_pages: int, pool: bool = True) -> int:
    """Pages of a guest's build overhead, sized as the planner sizes it (:class:`BuildOverhead`'s
    model on the domain's maximum): the paging pool and Xen's per-vCPU memory; ``pool`` False, or
    none asked for a PV guest (libxl sets none for PV): the per-vCPU memory only."""
    model = BuildOverhead()
    if not pool:
        return model.pages_without_pool(vcpus)
    return model.bytes_for(vcpus, max_pages << PAGE_SHIFT) >> PAGE_SHIFT


def below_max(d: Domain, pages: int) -> int:
    """Of ``pages`` new frames, those ``d``'s max_pages lets it have: Xen's assign_pages
    refuses a frame beyond it (a populate_physmap stops there, having done the rest)."""
    return max(0, min(pages, d.max_pages - d.tot_pages))


def raise_max(d: Domain, pages: int) -> int:
    """A mover's (or a recoverer's) raise of ``d``'s max_pages by what ``pages`` more frames
    lack (xn_raise_max); by how much (0: there was room, the maximum was not what failed).
    The raise is recorded first (the batch record's max_was, max_set: the toolstack's value
    stays the one before the first raise), then made."""
    short_by = d.tot_pages + pages - d.max_pages
    if short_by <= 0:
        return 0
    d.max_raise = [d.max_raise[0] if d.max_raise else d.max_pages, d.max_pages + short_by]
    d.max_pages += short_by
    return short_by


def give_back_max(d: Domain) -> int:
    """The toolstack's max_pages again after a raise (xn_give_back_max), unless it set its own
    since (the maximum is no longer the one raised to: that stands); the record's raise is
    cleared either way.  The value given back (0: none was)."""
    if d.max_raise is None:
        return 0
    was, raised = d.max_raise
    d.max_raise = None
    if d.max_pages != raised:
        return 0
    d.max_pages = was
    return was


class Heap:
    """Free pages per node (``free``; ``zone_free`` of them below the DMA width), claims and
    allocation for the :class:`~xapi_numa.backends.sim.model.Host` that inherits it."""

    free: List[int]
    size: List[int]
    zone_size: List[int]  # each node's pages below the DMA width
    zone_free: List[int]  # of them, free (part of ``free``)
    domains: Dict[int, Domain]

    def set_dma_zone(self, commandline: str) -> None:
        """The Xen command line the host booted with, and the zone it gives (from the
        domains' books: set them first)."""
        self.commandline = commandline
        self.zone_size = zone_pages(commandline, self.size)
        used = [sum(d.held_below(n) for d in self.domains.values()) for n in range(len(self.size))]
        self.zone_free = [z - u for z, u in zip(self.zone_size, used)]

    def zone_budget(self, budget: Sequence[int]) -> List[int]:
        """Of each node's pages an allocation may take (``budget``), those in the DMA zone:
        other domains' claims are on the pages above it first, as a node's room counts them."""
        return [min(z, b) for z, b in zip(self.zone_free, budget)]

    def charge(self, d: Domain, node: int, pages: int, zone: int = 0) -> None:
        """``pages`` free frames of ``node`` become ``d``'s, ``zone`` of them in the DMA zone."""
        self.free[node] -= pages
        self.zone_free[node] -= zone
        d.node_pages[node] += pages
        d.dma_pages[node] += zone

    def release(self, d: Domain, node: int, pages: int) -> None:
        """``d`` frees ``pages`` of its frames on ``node``: its zone pages there last."""
        d.node_pages[node] -= pages
        self.free[node] += pages
        freed = max(0, d.dma_pages[node] - d.node_pages[node])
        d.dma_pages[node] -= freed
        self.zone_free[node] += freed

    def take_exact(self, d: Domain, node: int, pages: int) -> int:
        """As many of ``pages`` frames as ``node`` has (an exact-node populate: above the
        DMA width first, then in its zone) and ``d``'s maximum allows, charged to ``d``; how many."""
        got = min(pages, self.free[node], below_max(d, pages))
        self.charge(d, node, got, max(0, got - (self.free[node] - self.zone_free[node])))
        return got

    def room_for(self, d: Optional[Domain]) -> Tuple[List[int], int]:
        """Each node's free pages an allocation for ``d`` may take, and how many of them in all:
        those no other domain's claim holds (None: no domain's, its own included)."""
        host_claims = sum(o.claim for o in self.domains.values() if o is not d)
        per_node = [0] * len(self.free)
        for o in self.domains.values():
            if o is not d:
                for n, p in o.node_claims.items():
                    per_node[n] += p
        budget = [max(0, f - c) for f, c in zip(self.free, per_node)]
        return budget, sum(self.free) - host_claims - sum(per_node)

    def allocate(self, d: Domain, pages: int, node: Optional[int] = None, exact: bool = False) -> Dict[int, int]:
        """Populate ``pages`` of ``d``'s memory as libxc asks it and Xen's allocator gives it (the DMA
        zone last)."""
        def lay(budget: List[int], affinity: List[int], zone: List[int]) -> Tuple[Dict[int, int], int]:
            if d.tot_pages == 0:  # a build from gfn 0 in libxc's extents (1 GiB ones for HVM/PVH)
                return allocator.build(pages, d.type, budget, affinity, d.last_alloc_node, node, exact, zone,
                                       min(d.video, pages))  # (its video RAM last, page by page)
            return allocator.distribute(pages, budget, affinity, d.last_alloc_node, allocator.SUPERPAGE, node,
                                        exact, zone)  # more pages later: 2 MiB first
        return self._populate(d, pages, lay)

    def build_vnuma(self, d: Domain, ranges: Sequence[Tuple[int, int, int]],
                    unplaced: int) -> Tuple[Dict[int, int], List[Tuple[int, int, int]]]:
        """Build ``d`` from its vmemranges [(first gfn, end gfn, pnode)], then ``unplaced`` pages with no
        node (:func:`xapi_numa.core.xenalloc.build_vnuma`): (pages per node, the gfn runs)."""
        runs: List[Tuple[int, int, int]] = []

        def lay(budget: List[int], affinity: List[int], zone: List[int]) -> Tuple[Dict[int, int], int]:
            got, last, laid = allocator.build_vnuma(ranges, d.type, budget, affinity, d.last_alloc_node, zone,
                                                    unplaced)
            runs.extend(laid)
            return got, last
        return self._populate(d, sum(end - first for first, end, _ in ranges) + unplaced, lay), runs

    def _populate(self, d: Domain, pages: int, lay: Callable[[List[int], List[int], List[int]],
                                                             Tuple[Dict[int, int], int]]) -> Dict[int, int]:
        """``pages`` new frames for ``d`` where ``lay`` puts them, given each node's free pages after
        other domains' claims, ``d``'s node affinity and the DMA zone's pages of those (both lists
        changed as it takes them): charged to ``d``, its own claims used up."""
        if d.tot_pages + pages > d.max_pages:
            raise HypervisorError(errno.ENOMEM, f"domain {d.domid} would exceed its maximum memory")
        budget, usable = self.room_for(d)
        if pages > usable:
            raise NoCapacity(f"not enough free memory for {pages} pages: {max(usable, 0)} usable "
                             "after other domains' claims", ("memory", str(pages)))
        affinity = list(iter_bits(self.effective_node_affinity(d)))
        zone = self.zone_budget(budget)
        zone_before = list(zone)
        got, d.last_alloc_node = lay(budget, affinity, zone)
        for n, p in got.items():
            self.charge(d, n, p, zone_before[n] - zone[n])
            if n in d.node_claims:
                d.node_claims[n] = max(0, d.node_claims[n] - p)
                if d.node_claims[n] == 0:
                    del d.node_claims[n]
        d.claim = max(0, d.claim - pages)
        return got

    def take_overhead(self, d: Domain, pages: int) -> Dict[int, int]:
        """``pages`` of ``d``'s build overhead (:func:`build_overhead`), page by page round its node
        affinity as it is now (:func:`xapi_numa.core.xenalloc.take_overhead`, the DMA zone last), moving
        its last_alloc_node: held by ``d`` apart from its own pages.  From memory no claim holds, ``d``'s
        own included (alloc_heap_pages lets only the domain's own pages use its claim).  Pages per node;
        NoCapacity, nothing taken, when the host lacks them."""
        budget, usable = self.room_for(None)
        if pages > usable:
            raise NoCapacity(f"not enough free memory for a build overhead of {pages} pages: {max(usable, 0)} "
                             "usable after the domains' claims", ("memory", str(pages)))
        zone = self.zone_budget(budget)
        zone_before = list(zone)
        nodes = list(iter_bits(self.effective_node_affinity(d)))
        got, d.last_alloc_node = allocator.take_overhead(pages, budget, nodes, zone)
        for n, p in got.items():
            self.free[n] -= p
            self.zone_free[n] -= zone_before[n] - zone[n]
            d.overhead_pages[n] += p
            d.overhead_dma[n] += zone_before[n] - zone[n]
        return got

    def release_overhead(self, d: Domain) -> None:
        """``d``'s build overhead freed (the domain is destroyed)."""
        for n, (pages, zone) in enumerate(zip(d.overhead_pages, d.overhead_dma)):
            self.free[n] += pages
            self.zone_free[n] += zone
        d.overhead_pages, d.overhead_dma = [0] * len(self.free), [0] * len(self.free)

    def claim(self, domid: int, pages: int, node: Optional[int] = None) -> None:
        """Claim pages as ``domain_set_outstanding_pages`` does, host-wide like
        xc_domain_claim_pages or on one node (XenServer's): one claim per domain, its
        argument the domain's total (the claim is that less the pages it has), 0 cancels
        the domain's claim whichever node it is on."""
        d = self.domain(domid)
        if pages < 0:
            raise HypervisorError(errno.EINVAL, "negative claim")
        if node is not None and not 0 <= node < len(self.free):
            raise HypervisorError(errno.EINVAL, f"node {node} does not exist")
        if pages == 0:
            d.claim, d.node_claims = 0, {}
            return
        if d.claim or d.node_claims:  # one claim at a time, cancel (0) first
            raise HypervisorError(errno.EINVAL, f"domain {domid} already has a claim of "
                                  f"{d.claim + sum(d.node_claims.values())} pages")
        if pages <= d.tot_pages or pages > d.max_pages:
            raise HypervisorError(errno.EINVAL, f"claim of {pages} pages must exceed the domain's "
                                  f"{d.tot_pages} and not exceed its maximum {d.max_pages}")
        want = pages - d.tot_pages
        budget, usable = self.room_for(d)
        if want > usable:
            raise HypervisorError(errno.ENOMEM, f"claim of {want} pages")
        if node is None:
            d.claim = want
            return
        if want > budget[node]:
            raise HypervisorError(errno.ENOMEM, f"claim of {want} pages on node {node}")
        d.node_claims = {node: want}

    def outstanding(self) -> List[int]:
        """Pages claimed per node (host-wide claims are not on any node)."""
        per_node = [0] * len(self.free)
        for d in self.domains.values():
            for n, p in d.node_claims.items():
                per_node[n] += p
        return per_node
