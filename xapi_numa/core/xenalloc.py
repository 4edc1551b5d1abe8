"""Xen's domain heap allocator, as far as NUMA placement goes.

What it models (xen/common/page_alloc.c, get_free_buddy):
* an explicit node is tried first; with ``exact`` nothing else is tried;
  without, each extent it has no room for goes to the first node with room in
  ``next_node`` order from it through the affinity, then the other nodes;
* otherwise each allocation (one extent) starts at the node after the
  domain's ``last_alloc_node`` within its node affinity and goes to the first
  node there with room, which becomes ``last_alloc_node`` (alloc_heap_pages):
  memory is striped round-robin over the nodes of the affinity that have room;
* when no node of the affinity has room, the other nodes are tried in
  ascending order;
* outstanding claims: free memory promised to other domains' claims is not
  available; a domain's own claim is used up as it allocates;
* the DMA zone (alloc_domheap_pages): memory below Xen's DMA width is looked
  for, in the same node order, only when no node has the extent above it.
A build's extents (:func:`build_extents`, laid by :func:`build`, which the simulator,
the engine's prediction and the quality benchmark's replay all use): libxc's meminit_pv asks 2 MiB
extents, then single pages; meminit_hvm (HVM/PVH) asks each whole, aligned GiB
as one 1 GiB extent first, the rest in 2 MiB extents, then single pages.  An
extent size no node has is not asked again (free memory only shrinks during a
build).  A vNUMA guest's build (:func:`build_vnuma`) goes range by range, each from
its vnode's pnode alone (``XENMEMF_exact_node``).  Free memory is taken to come in the largest buddies it can make: a
node with F free pages has F // size whole extents of a size.  An HVM/PVH guest
started below its static maximum is built with populate-on-demand: its memory
is the PoD cache, in 2 MiB extents (:func:`xapi_numa.core.xenopsd_build.build_type`).

Checked against Xen 4.17 (stable-4.17) and not modelled, as dom0 cannot see it:
get_free_buddy's first pass takes only scrubbed buddies of an order above 0, on
every node outside the affinity too, before a second pass takes dirty ones, and
XEN_SYSCTL_physinfo reports scrub_pages as 0; free memory by buddy order is not
reported at all (numainfo's memfree is a node's sum), so a node whose free memory
is fragmented below 1 GiB looks whole.  Also left out: hap_enable's first 256 pool
pages, taken at domain_create round every online node (node affinity still all).
"""

from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.errors import NoCapacity

SUPERPAGE = 512  # pages in a 2 MiB extent
GIGAPAGE = 512 * SUPERPAGE  # pages in a 1 GiB extent
# Where xenopsd's builder (XenServer's xenguest: hvm_build_setup_mem, pvh_setup_mem) ends a translated
# guest's RAM below 4 GiB by default, in pages: both leave HVM_BELOW_4G_MMIO_LENGTH (256 MiB) for MMIO,
# PVH too; the rest of the RAM starts at 4 GiB.  (libxl__build_hvm, xl's, starts a PVH guest's hole at
# its ACPI tables, 0xfc000000.)  A VM given a bigger MMIO hole (a passed-through device, a vGPU,
# platform:mmio_size) ends lower.  The one copy: a vNUMA layout's default hole starts here too.
LOWMEM_END = {"hvm": 0xF0000, "pvh": 0xF0000}
BUILD_TYPES = ("pv", "pvh", "hvm")  # the domain types libxc builds (the keys of LOWMEM_END translated)
HIGHMEM_START = 1 << 20
HVM_LOW_PAGES = 0x200  # an HVM guest's first 2 MiB (round the VGA hole) go page by page
VGA_HOLE_START = 0xA0  # below it libxc populates an HVM guest's pages first, before any vnode's, with no node
VGA_HOLE_END = 0xC0  # a vNUMA build's first range starts here: meminit_hvm leaves the hole unpopulated
# A new domain's last_alloc_node: Xen clears the structure (alloc_domain_struct), so its first
# striped extent goes to the affinity's first node after node 0 (cycle_node)
NEW_DOMAIN_LAST_NODE = 0


def ram_end_below_4g(dtype: str) -> int:
    """Bytes: where a build of ``dtype`` ends its RAM below 4 GiB by default (:data:`LOWMEM_END`);
    a PV guest's pseudo-physical map has no MMIO hole (libxl lays its vnodes end to end from 0,
    libxl__vnuma_build_vmemrange_pv_generic): 4 GiB, its RAM running on past it."""
    return LOWMEM_END.get(dtype, HIGHMEM_START) << PAGE_SHIFT


def build_extents(pages: int, dtype: str, video: int = 0) -> List[Tuple[int, int]]:
    """A new domain's ``pages`` as libxc populates them with no vNUMA, in gfn order: [(pages, largest
    extent asked)].  PV (meminit_pv): 2 MiB extents.  HVM/PVH (meminit_hvm): each 1 GiB-aligned
    whole GiB of the RAM below the MMIO hole and from 4 GiB as a 1 GiB extent, the rest in 2 MiB
    ones; an HVM guest's first 2 MiB page by page (the VGA hole's 32 pages, which Xen leaves
    unpopulated, are counted as RAM here: the domain gets the pages it asked for).  ``video``: of ``pages``,
    an HVM guest's video RAM (not in xenopsd's build_max_mib), which QEMU populates after the build page
    by page with no node (xen_ram_alloc): the last segment."""
    pages, tail = pages - video, [(video, 1)] if video else []
    if dtype not in LOWMEM_END:
        return ([(pages, SUPERPAGE)] if pages else []) + tail
    low = min(pages, LOWMEM_END[dtype])
    first = min(low, HVM_LOW_PAGES) if dtype == "hvm" else 0
    out = [(first, 1)]
    for gfn, end in ((first, low), (HIGHMEM_START, HIGHMEM_START + pages - low)):
        out += range_extents(gfn, end)
    return [(run, largest) for run, largest in out if run] + tail


def range_extents(gfn: int, end: int) -> List[Tuple[int, int]]:
    """gfns [gfn, end) as meminit_hvm asks them, in gfn order: [(pages, largest extent asked)]."""
    out = []
    while gfn < end:
        if gfn % GIGAPAGE == 0 and end - gfn >= GIGAPAGE:  # whole GiBs, each asked as one extent
            run, largest = (end - gfn) // GIGAPAGE * GIGAPAGE, GIGAPAGE
        elif gfn % SUPERPAGE:  # up to the next 2 MiB boundary page by page
            run, largest = min(end, gfn - gfn % SUPERPAGE + SUPERPAGE) - gfn, 1
        else:  # up to the next GiB boundary (or the end) in 2 MiB extents
            run, largest = min(end, gfn - gfn % GIGAPAGE + GIGAPAGE) - gfn, SUPERPAGE
        out.append((run, largest))
        gfn += run
    return out


def _rotate_after(order: Sequence[int], last: int) -> List[int]:
    """``order`` starting at the first node after ``last`` (cycle_node)."""
    after = [n for n in order if n > last]
    return after + [n for n in order if n <= last]


def distribute(
    pages: int,
    free: List[int],
    affinity: Sequence[int],
    last_alloc_node: int,
    extent: int,
    node: Optional[int] = None,
    exact: bool = False,
    zone: Optional[List[int]] = None,
) -> (Dict[int, int], int):
    """Decide where ``pages`` go; mutate ``free``; return (per node, last node).

    ``zone``: of each node's ``free`` pages, those below Xen's DMA width (mutated as
    they are taken).  alloc_domheap_pages looks for each extent above that width on
    every node first, and in the zones only when none has one (then in the same node
    order): a build spills off its nodes before it gets their DMA zone.

    Raises NoCapacity (changing nothing) when they do not fit.
    """
    return distribute_build([(pages, extent)], free, affinity, last_alloc_node, node, exact, zone)


def distribute_build(
    segments: Sequence[Tuple[int, int]],
    free: List[int],
    affinity: Sequence[int],
    last_alloc_node: int,
    node: Optional[int] = None,
    exact: bool = False,
    zone: Optional[List[int]] = None,
) -> (Dict[int, int], int):
    """:func:`distribute` for a build's ``segments`` ([(pages, largest extent)] in gfn order,
    :func:`build_extents`): each segment's extents as large as it allows while some node has
    them, then the next size down."""
    low = list(zone) if zone is not None else [0] * len(free)
    pools = ([f - z for f, z in zip(free, low)], low)  # above the width, then below it
    got: Dict[int, int] = {}
    pages = sum(count for count, _ in segments)
    last = last_alloc_node
    for takes, _size, last in _rounds(segments, pools, affinity, last_alloc_node, node, exact):
        for n, taken in takes:
            got[n] = got.get(n, 0) + taken
    remaining = pages - sum(got.values())
    if remaining > 0:
        where = f"node {node}" if node is not None and exact else "the host"
        raise NoCapacity(f"not enough free memory on {where} for {pages} pages "
                         f"({pages - remaining} would fit)", ("memory", str(pages)))
    free[:] = [a + b for a, b in zip(*pools)]
    if zone is not None:
        zone[:] = pools[1]
    return got, last


def build(pages: int, dtype: str, free: List[int], affinity: Sequence[int],
          last_alloc_node: int = NEW_DOMAIN_LAST_NODE, node: Optional[int] = None, exact: bool = False,
          zone: Optional[List[int]] = None, video: int = 0) -> (Dict[int, int], int):
    """Where a domain's RAM lands as libxc builds it from gfn 0 (:func:`build_extents` for its
    ``dtype``): the simulator's build, the engine's prediction of it and the quality benchmark's
    replay all ask this.  ``last_alloc_node``: a new domain's, or the node that gave the last
    page of what it allocated before (xenopsd's shadow/HAP pool); ``video``: :func:`build_extents`'."""
    return distribute_build(build_extents(pages, dtype, video), free, affinity, last_alloc_node, node, exact, zone)


def take_overhead(overhead: int, free: List[int], nodes: Sequence[int],
                  zone: Optional[List[int]] = None) -> Tuple[Dict[int, int], int]:
    """A build's ``overhead`` pages taken from ``free`` (changed) page by page round ``nodes`` from a
    new domain's start, before its RAM (the engine's check and holding, and the quality benchmark's
    replay): (pages per node, the domain's last_alloc_node).  NoCapacity when the host lacks them.
    ``zone``: as :func:`distribute`'s."""
    return distribute(overhead, free, nodes, NEW_DOMAIN_LAST_NODE, 1, zone=zone)


def striped_builds(overhead: int, pages: int, dtype: str, free: Sequence[int], affinity: Sequence[int],
                   overhead_round: Optional[Sequence[int]] = None, zone: Optional[Sequence[int]] = None,
                   video: int = 0) -> Iterator[Dict[int, int]]:
    """A build striped over ``affinity``, as pages per node, one at a time: first ``overhead`` pages
    page by page round ``overhead_round`` (xenopsd's order: every node with CPUs, the domain's node
    affinity before the VM's is set, ``BuildOverhead.round_of``; None: the affinity, libxl's), then
    the domain's ``pages`` of RAM (:func:`build`) from each node of the affinity the round may start
    after.  That node is unknown: on Xen everything allocated for the
    domain before its RAM (the shadow/HAP pool, the pages of its devices) moves
    ``last_alloc_node``, and with 1 GiB extents it decides where whole GiBs go.  ``free``: every
    node's, as a GiB the affinity lacks goes to another node; ``zone``: of those, the pages below Xen's
    DMA width (:func:`distribute`: a GiB none has above it comes from a zone, node 0's, before libxc asks
    2 MiB); ``video``: of ``pages``, the video RAM (:func:`build_extents`).  NoCapacity when it does not fit."""
    budget, below = list(free), None if zone is None else list(zone)
    held, _ = take_overhead(overhead, budget, affinity if overhead_round is None else overhead_round, below)
    yield held
    for last in affinity:
        yield build(pages, dtype, list(budget), affinity, last, zone=None if below is None else list(below),
                    video=video)[0]


def striped_holding(overhead: int, pages: int, dtype: str, free: Sequence[int], affinity: Sequence[int],
                    overhead_round: Optional[Sequence[int]] = None, zone: Optional[Sequence[int]] = None,
                    video: int = 0) -> Dict[int, int]:
    """Pages to hold on each node for a build striped over ``affinity`` (a reservation of them
    covers what lands on every node): the overhead's pages plus the most of the RAM any start of
    the round puts there (:func:`striped_builds`)."""
    held, *rams = striped_builds(overhead, pages, dtype, free, affinity, overhead_round, zone, video)
    most: Dict[int, int] = {}
    for got in rams:
        for n, p in got.items():
            most[n] = max(most.get(n, 0), p)
    return {n: held.get(n, 0) + most.get(n, 0) for n in set(held) | set(most)}


def striped_outside(overhead: int, pages: int, dtype: str, free: Sequence[int], affinity: Sequence[int],
                    first: bool = False, overhead_round: Optional[Sequence[int]] = None,
                    zone: Optional[Sequence[int]] = None, video: int = 0) -> List[int]:
    """The nodes outside ``affinity`` a build striped over it puts pages on from some start
    (:func:`striped_builds`): where the affinity lacks an extent another node has, a 1 GiB one
    above all (get_free_buddy tries every other node before libxc asks the next size down); the
    overhead's pages count outside its own round only.
    ``first``: those of the first start that puts any there (enough to tell whether one does)."""
    out: set = set()
    for k, got in enumerate(striped_builds(overhead, pages, dtype, free, affinity, overhead_round, zone, video)):
        inside = set(affinity if k or overhead_round is None else overhead_round)
        out.update(n for n, p in got.items() if p and n not in inside)
        if out and first:
            break
    return sorted(out)


def build_layout(node_pages: Sequence[int], dtype: str, video: int = 0) -> List[Tuple[int, int, int]]:
    """The gfn runs [(first gfn, pages, node)] of RAM that lies ``node_pages`` per node, as a
    build of it striped it (:func:`build`: its extents round the nodes that hold it, from a new
    domain's start), at the gfns libxc gives them: an HVM/PVH guest's RAM below its type's
    :data:`LOWMEM_END`, the rest from :data:`HIGHMEM_START` (meminit_hvm's ranges without vNUMA:
    [0, lowmem_end) and [4 GiB, highmem_end)); a PV guest's from 0 on, no hole.  A build that
    spilled, or memory moved since, may have had another order: this one holds the same pages per node;
    ``video`` of them, an HVM guest's video RAM, laid last (:func:`build_extents`) from the RAM's end."""
    pools = (list(node_pages), [0] * len(node_pages))
    holding = [n for n, p in enumerate(node_pages) if p]
    runs: List[Tuple[int, int, int]] = []
    gfn = 0
    for takes, size, _last in _rounds(build_extents(sum(node_pages), dtype, video), pools, holding,
                                      NEW_DOMAIN_LAST_NODE, None, False):
        gfn = _lay(runs, gfn, takes, size)
    ram = sum(node_pages) - video  # (the video's runs follow the RAM's, wherever the hole puts its end)
    laid = _round_the_hole(_lay_upto(runs, ram), LOWMEM_END.get(dtype))
    end = laid[-1][0] + laid[-1][1] if laid else 0
    return laid + [(first - ram + end, count, node) for first, count, node in _lay_upto(runs, ram, after=True)]


def _lay_upto(runs: List[Tuple[int, int, int]], gfn: int, after: bool = False) -> List[Tuple[int, int, int]]:
    """Of ``runs``, the parts below ``gfn`` (``after``: from it on)."""
    cut = [(max(f, gfn), f + c - max(f, gfn), n) if after else (f, min(c, gfn - f), n) for f, c, n in runs]
    return [(f, c, n) for f, c, n in cut if c > 0]


def _round_the_hole(runs: List[Tuple[int, int, int]], low: Optional[int]) -> List[Tuple[int, int, int]]:
    """``runs`` numbered from 0 with no MMIO hole, put at their gfns: from ``low`` on at
    :data:`HIGHMEM_START` (a run across ``low`` split); unchanged with no hole (None)."""
    if low is None:
        return runs
    out = []
    for first, count, node in runs:
        below = max(0, min(count, low - first))
        out += [(first, below, node)] if below else []
        if count > below:
            out.append((max(first, low) - low + HIGHMEM_START, count - below, node))
    return out


def _lay(runs: List[Tuple[int, int, int]], gfn: int, takes: Sequence[Tuple[int, int]], size: int) -> int:
    """The gfn runs [(first gfn, pages, node)] one search's ``takes`` back from ``gfn`` on, added to
    ``runs``: a round robin gives each node one extent a cycle; any other take is one run on one
    node.  The gfn after them."""
    cycles = takes[0][1] // size if len(takes) > 1 else 1
    for _ in range(cycles):
        for n, taken in takes:
            count = taken // cycles
            if runs and runs[-1][2] == n and runs[-1][0] + runs[-1][1] == gfn:
                runs[-1] = (runs[-1][0], runs[-1][1] + count, n)
            else:
                runs.append((gfn, count, n))
            gfn += count
    return gfn


def build_vnuma(ranges: Sequence[Tuple[int, int, int]], dtype: str, free: List[int], affinity: Sequence[int],
                last_alloc_node: int, zone: Optional[List[int]] = None,
                unplaced: int = 0) -> Tuple[Dict[int, int], int, List[Tuple[int, int, int]]]:
    """A vNUMA guest's RAM as libxc builds it from its vmemranges (meminit_hvm, meminit_pv):
    ``ranges`` [(first gfn, end gfn, pnode)] one by one in their order, each populated with
    XENMEMF_exact_node(pnode): its extents (:func:`range_extents`; PV's 2 MiB ones) from that node
    alone, the next size down where it has none, never another node.  First, for HVM, the pages
    below the VGA hole with no node (round the affinity page by page), the hole left out; last ``unplaced`` pages with
    no node, page by page, their gfns after the ranges' (QEMU's video RAM).  (Pages per node, the
    new last_alloc_node, the gfn runs [(first gfn, pages, node)].)  NoCapacity, ``free`` and
    ``zone`` unchanged, where a node lacks a page: a short pnode fails the build, nothing spills."""
    steps: List[Tuple[int, List[Tuple[int, int]], Optional[int]]] = []
    for first, end, pnode in ranges:
        if dtype == "hvm" and first == 0 < end:
            steps.append((0, [(min(end, VGA_HOLE_START), 1)], None))
            first = min(end, VGA_HOLE_END)
        steps.append((first, range_extents(first, end) if dtype in LOWMEM_END else [(end - first, SUPERPAGE)], pnode))
    steps.append((max((end for _, end, _ in ranges), default=0), [(unplaced, 1)], None))
    low = list(zone) if zone is not None else [0] * len(free)
    pools = ([f - z for f, z in zip(free, low)], low)  # above the width, then below it
    got: Dict[int, int] = {}
    runs: List[Tuple[int, int, int]] = []
    last = last_alloc_node
    for gfn, segments, node in steps:
        short = sum(count for count, _ in segments)
        for takes, size, last in _rounds(segments, pools, affinity, last, node, node is not None):
            gfn = _lay(runs, gfn, takes, size)
            for n, taken in takes:
                got[n] = got.get(n, 0) + taken
                short -= taken
        if short:
            raise NoCapacity("not enough free memory on {} for a vNUMA build: {} pages short".format(
                "the host" if node is None else f"node {node}", short), ("memory", str(short)))
    free[:] = [a + b for a, b in zip(*pools)]
    if zone is not None:
        zone[:] = pools[1]
    return got, last, runs


def _rounds(segments: Sequence[Tuple[int, int]], pools: Tuple[List[int], List[int]], affinity: Sequence[int],
            last: int, node: Optional[int], exact: bool) -> Iterator[Tuple[List[Tuple[int, int]], int, int]]:
    """get_free_buddy's searches for a build's ``segments``, in gfn order, taking from ``pools``
    (above Xen's DMA width, then below it) as they go: (takes [(node, pages)], extent size, the new
    ``last_alloc_node``) each; they stop where nothing more fits."""
    missing = set()  # extent sizes no node had (an exact node: that node)
    for count, largest in segments:
        remaining = count
        while remaining > 0:
            size = next(s for s in (GIGAPAGE, SUPERPAGE, 1) if s <= min(largest, remaining) and s not in missing)
            pool, takes = pools[0], _next_takes(pools[0], size, remaining, affinity, last, node, exact)
            if not takes:  # no node has the extent above the width: the second pass, zones included
                pool, takes = pools[1], _next_takes(pools[1], size, remaining, affinity, last, node, exact)
            if not takes:
                if size > 1:
                    # no node has a whole extent of that size (an exact node: that node, either pass):
                    # libxc asks the next size down, with the same flags (an exact node's zone then too)
                    missing.add(size)
                    continue
                return
            for n, taken in takes:
                pool[n] -= taken
                remaining -= taken
            last = takes[-1][0]
            yield takes, size, last


def _next_takes(pool: List[int], size: int, remaining: int, affinity: Sequence[int], last: int,
                node: Optional[int], exact: bool) -> List[Tuple[int, int]]:
    """The next extents get_free_buddy finds in ``pool`` (one zone range on every node):
    [(node, pages)], the last of them the new ``last_alloc_node``; none where no node
    there has an extent of ``size``."""
    def whole(n: int) -> int:  # as much of the rest as the node has in whole extents
        return min(pool[n] - pool[n] % size, remaining - remaining % size) or size

    if node is not None:
        # An explicit node: all from there when possible.
        if pool[node] >= size:
            return [(node, whole(node))]
        if exact:
            return []
        # get_free_buddy: every extent starts at the named node again, then goes on with
        # next_node() through the affinity (from its first node if the named one is not in
        # it), then the other nodes: the overflow fills node after node, no round robin
        order = _rotate_after(affinity, node) if node in affinity else sorted(affinity)
        order += [n for n in range(len(pool)) if n not in affinity]
        spill = next((n for n in order if pool[n] >= size), None)
        return [] if spill is None else [(spill, whole(spill))]
    alive = [n for n in _rotate_after(affinity, last) if pool[n] >= size]
    if alive:
        # Round robin over the nodes with room: a whole cycle gives each one
        # extent and ends at the last of them.  Take whole cycles at once.
        cycles = min(min(pool[n] // size for n in alive), (remaining // size) // len(alive))
        if cycles > 0:
            return [(n, cycles * size) for n in alive]
        return [(alive[0], size)]  # the first node with room after the last one that gave
    # the next extent starts after it again (cycle_node within the affinity)
    others = [n for n in range(len(pool)) if n not in affinity and pool[n] >= size]
    return [(others[0], whole(others[0]))] if others else []
