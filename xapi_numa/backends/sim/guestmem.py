"""A simulated guest's memory, gfn by gfn, and moving it between nodes.

Real Xen decides which node backs each gfn; stock Xen does not tell dom0,
so the real mover works gfn by gfn without knowing.  The simulator keeps the
layout as runs ``[first_gfn, count, node]`` (derived on first use the way
Xen's allocator lays out the guest's build: an HVM/PVH guest's whole GiBs
round-robin over the nodes holding its memory a GiB at a time, the rest in 2 MiB
extents; at the gfns Xen's build gives them, an HVM/PVH guest's MMIO hole left out: RAM
below the hole's start, the rest from 4 GiB; a vNUMA guest's, built vnode by vnode,
kept as its build laid them: each range on its pnode, at its own gfns) so a move here
does what it does on Xen: released frames go back to their node, new ones come from the target.

It models the frames that matter to the mover's safety: toolstack magic
pages, granted pages, and the frames Xen keeps mapped (each vCPU's vcpu_info
and FIFO control block, one event-array page).  Xen-mapped frames cannot be
freed.  Simulated guests lay them out as Linux does, so the scan recognises
them all (a control block shows its timer's port once the guest has booted)
and the probe finds nothing more here.  Frames a "backend" holds
(``SimHypervisor.hold``) cannot be freed either: that is how the simulator
shows the mover's safety check stopping a run.
"""

import bisect
import errno
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from xapi_numa.backends.sim.heap import below_max, give_back_max, raise_max
from xapi_numa.core import xenalloc as allocator
from xapi_numa.errors import HypervisorError
from xapi_numa.core.host import BatchResult, MemoryMap
from xapi_numa.core import memory_move as pagemove
from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.core.vnuma import layout_from_dict
from xapi_numa.core.memory_move import EVTCHN, GRANTED, MAGIC, VCPU_INFO

GRANT_BASE, GRANT_PAGES = 0x1000, 32
VCPU_INFO_BASE, CONTROL_BASE, EVENT_ARRAY = 0x2000, 0x3000, 0x3800
MAGIC_PAGES = 4
UNBACKED = -1  # node of a gfn released by a mover that died before backing it again


def derive_runs(node_pages: Sequence[int], dtype: str, video: int = 0) -> List[List[int]]:
    """The layout Xen's allocator gives a guest of ``dtype`` built on the nodes that hold its
    memory (:func:`xapi_numa.core.xenalloc.build_layout`: an HVM/PVH guest's whole GiBs dealt
    round them a GiB at a time, the rest in 2 MiB extents; ``video`` pages of it last)."""
    return [[first, count, node] for first, count, node in allocator.build_layout(node_pages, dtype, video)]


def build_vnuma(host, d) -> Dict[int, int]:
    """A shell given a vNUMA layout (``set_vnuma``) built as libxc builds one from its vmemranges:
    range by range from its vnode's pnode alone (:func:`xapi_numa.core.xenalloc.build_vnuma`), its
    gfns where the ranges put them; what of the domain's maximum the ranges leave is an HVM guest's
    video RAM, which QEMU populates afterwards with no node.  Pages per node.  EINVAL (libxc's
    "vNUMA memory pages mismatch") where the ranges hold more, or a PVH or PV guest's less."""
    layout = layout_from_dict(d.vnuma)
    ranges = [(r.start >> PAGE_SHIFT, r.end >> PAGE_SHIFT, layout.vnodes[r.vnode].pnode) for r in layout.ranges]
    ram = sum(end - first for first, end, _ in ranges)
    rest = d.max_pages - d.tot_pages - ram
    if rest < 0 or (rest and d.type != "hvm"):
        raise HypervisorError(errno.EINVAL, f"vNUMA memory pages mismatch: the ranges hold {ram} pages, domain "
                                            f"{d.domid} is built with {d.max_pages - d.tot_pages}")
    got, runs = host.build_vnuma(d, ranges, rest)
    d.gfn_runs = [list(run) for run in runs]
    return got


def _append(runs: List[List[int]], start: int, count: int, node: int) -> None:
    if runs and runs[-1][2] == node and runs[-1][0] + runs[-1][1] == start:
        runs[-1][1] += count
    else:
        runs.append([start, count, node])


def node_lookup(runs: List[List[int]]) -> Callable[[int], int]:
    """The node of a gfn in ``runs`` as they are now (their starts indexed once: a batch asks
    for every gfn it releases)."""
    starts = [r[0] for r in runs]

    def node_of_gfn(gfn: int) -> int:
        i = bisect.bisect_right(starts, gfn) - 1
        if i < 0 or gfn >= runs[i][0] + runs[i][1]:
            raise HypervisorError(errno.EINVAL, f"gfn {gfn:#x} is not populated")
        return runs[i][2]
    return node_of_gfn


def paint(runs: List[List[int]], start: int, end: int, node: int) -> List[List[int]]:
    """Runs with gfns [start, end) now on ``node``."""
    out: List[List[int]] = []
    for s, c, n in runs:
        e = s + c
        if e <= start or s >= end:
            _append(out, s, c, n)
            continue
        if s < start:
            _append(out, s, start - s, n)
        lo, hi = max(s, start), min(e, end)
        _append(out, lo, hi - lo, node)
        if e > end:
            _append(out, end, e - end, n)
    return out


def current_runs(d) -> List[List[int]]:
    """The domain's gfn layout: as a move or a give-back left it, else as Xen's allocator laid it out."""
    if d.gfn_runs is not None:
        return d.gfn_runs
    pages = [p - sum(c for n2, c in d.stale if n2 == n) for n, p in enumerate(d.node_pages)]
    return derive_runs(pages, d.type, min(d.video, sum(pages)))


def gfn_top(d) -> int:
    """One past the highest gfn of the guest's RAM: where its layout ends (a gfn given back, or
    released by a dead mover, leaves a hole below it, as on Xen; above 4 GiB for an HVM/PVH
    guest with RAM past its MMIO hole)."""
    runs = current_runs(d)
    return runs[-1][0] + runs[-1][1] if runs else 0


def _populated(runs: List[List[int]], gfns: Sequence[int]) -> List[int]:
    """Those of ``gfns`` (ascending) the layout holds: a gfn given back since has no run."""
    starts = [r[0] for r in runs]
    out = []
    for g in gfns:
        i = bisect.bisect_right(starts, g) - 1
        if i >= 0 and g < runs[i][0] + runs[i][1]:
            out.append(g)
    return out


def give_back(host, d, gfn: int) -> None:
    """The guest's balloon driver gives ``gfn`` back to Xen: its frame is freed and the gfn is
    no longer populated (Xen will not map it; its p2m type is a hole)."""
    runs = current_runs(d)
    node = node_lookup(runs)(gfn)
    if node == UNBACKED:
        raise HypervisorError(errno.EINVAL, f"gfn {gfn:#x} is not populated")
    out: List[List[int]] = []
    for s_, c, n in runs:
        if s_ <= gfn < s_ + c:
            if gfn > s_:
                out.append([s_, gfn - s_, n])
            if gfn + 1 < s_ + c:
                out.append([gfn + 1, s_ + c - gfn - 1, n])
        else:
            out.append([s_, c, n])
    d.gfn_runs = out
    host.release(d, node, 1)  # (the DMA zone's books too)


def granted_gfns(d) -> List[int]:
    """Frames the guest grants to another domain now: its rings, and any granted since."""
    return list(range(GRANT_BASE, GRANT_BASE + GRANT_PAGES)) + d.granted


def special_gfns(d) -> Dict[int, int]:
    """gfn -> class of the frames the mover must leave alone (those it can see)."""
    top = gfn_top(d)
    special: Dict[int, int] = {}
    for i in range(MAGIC_PAGES):
        special[top - 1 - i] = MAGIC
    for g in granted_gfns(d):
        special[g] = GRANTED
    for v in d.vcpus:
        special[VCPU_INFO_BASE + 8 * v.id] = VCPU_INFO
    special[EVENT_ARRAY] = EVTCHN
    return {g: c for g, c in special.items() if 0 <= g < top}


def xen_mapped(d) -> List[int]:
    """Frames Xen keeps mapped: they are never freed while the domain lives."""
    top = gfn_top(d)
    gfns = [VCPU_INFO_BASE + 8 * v.id for v in d.vcpus] + [CONTROL_BASE + v.id for v in d.vcpus] + [EVENT_ARRAY]
    return [g for g in gfns if g < top]


def memory_map(host, d, probe_ms: int = 0) -> MemoryMap:
    _refuse_pv(d)
    top = gfn_top(d)
    classes = bytearray([pagemove.NOT_RAM]) * top  # a gfn given back is a hole, as Xen types it
    for first, count, _node in current_runs(d):
        classes[first:first + count] = bytes(min(count, top - first))
    for gfn, cls in special_gfns(d).items():
        classes[gfn] = cls
    for v in d.vcpus:
        if CONTROL_BASE + v.id < top:
            classes[CONTROL_BASE + v.id] = EVTCHN
    return MemoryMap(bytes(classes), busy_grants=2)


def _refuse_pv(d) -> None:
    if d.type == "pv":
        raise HypervisorError(errno.EPROTOTYPE, f"domain {d.domid} is a PV guest: its memory cannot be moved")


def _take(host, d, node: int, count: int) -> Dict[int, int]:
    """Frames from ``node`` for ``d`` (an exact-node populate: as many as it has, its DMA
    zone last), charged to it."""
    got = host.take_exact(d, node, count)
    return {node: got} if got else {}


def _take_anywhere(host, d, count: int) -> Dict[int, int]:
    """Frames for ``d`` with no node named (libxenuma's fallback and recovery populate
    order-0 extents with no flags): Xen's get_free_buddy, round robin over the domain's
    node affinity after its last allocation's node, then the other nodes in ascending
    order, the other domains' claims left alone, the DMA zones last; as many as fit
    (and its max_pages allows), charged to ``d``.  (Not the nearest node: distance plays no part in it.)"""
    budget, usable = host.room_for(d)
    count = min(count, usable, below_max(d, count))
    if count <= 0:
        return {}
    affinity = [n for n in range(len(host.free)) if host.effective_node_affinity(d) >> n & 1]
    zone = host.zone_budget(budget)
    zone_before = list(zone)
    got, d.last_alloc_node = allocator.distribute(count, budget, affinity, d.last_alloc_node, 1, zone=zone)
    for n, pages in got.items():
        host.charge(d, n, pages, zone_before[n] - zone[n])
    return got


def move(host, d, gfns: Sequence[int], node: int, verify_chunk: int, allow_fallback: bool,
         fault: Optional[str]) -> BatchResult:
    """One batch, as libxenuma's xn_mig_move does it on Xen (see its contract)."""
    _refuse_pv(d)
    if list(gfns) != sorted(set(gfns)):
        raise HypervisorError(errno.EINVAL, "gfns must be ascending and unique")
    if not 0 <= node < len(host.free):
        raise HypervisorError(errno.EINVAL, f"no node {node}")
    if d.record is not None:  # xn_mig_move publishes its record first: EEXIST while a dead mover's awaits
        raise HypervisorError(errno.EEXIST, f"moving memory of domain {d.domid}: a batch record a dead mover "
                                            f"left awaits recovery (xapi-numa memory-moves --recover)")
    runs = current_runs(d)
    node_before = node_lookup(runs)  # the runs are repainted only after the release loop
    asked = list(gfns)
    # a gfn the guest gave back since the scan (a balloon driver) is not populated: Xen will
    # not map it, and libxenuma leaves it out, counted with the granted ones; the rest moves
    gfns = _populated(runs, gfns)
    given_back = len(asked) - len(gfns)
    if asked and not gfns:  # nothing left to move: no pause either
        return BatchResult(0, 0, 0, 0, 0, 0, (), 0, 0.0, "done", 0, given_back, 0)
    pinned = set(d.held)  # what Xen maps is left out below, before any release
    # inside the pause nothing new is granted: what is granted by then stays where it is
    # (a backend's grant copy into it during the pause would otherwise be lost)
    granted_now = set(granted_gfns(d))
    kept = [g for g in gfns if g not in granted_now]
    granted, gfns = len(gfns) - len(kept) + given_back, kept
    # and what looks like a page Xen maps at the pause (a vcpu_info, an event-channel page) stays too
    mapped_now = set(xen_mapped(d))
    kept = [g for g in gfns if g not in mapped_now]
    recognised, gfns = len(gfns) - len(kept), kept
    chunk = max(1, min(verify_chunk or len(gfns), len(gfns) or 1))
    released: List[int] = []
    stuck: Tuple[int, ...] = ()
    not_freed = 0
    stage, error = "done", 0
    # release, chunk by chunk, stopping at the first chunk with a frame that stays referenced
    for at in range(0, len(gfns), chunk):
        part = gfns[at:at + chunk]
        for g in part:
            old = node_before(g)
            if g in pinned:
                not_freed += 1
                d.stale.append([old, 1])  # the old frame stays the domain's until its user lets go
            else:
                host.release(d, old, 1)
        released.extend(part)
        if not_freed:
            # named in the caller's list, as the C names it: the span, any gfn left out within it included
            stuck, stage, error = tuple(g for g in asked if part[0] <= g <= part[-1]), "verify", errno.EBUSY
            break
    if fault == "after-release" and not error:
        stage, error = "populate", errno.EIO
    if fault == "die-after-release":
        return _died(host, d, runs, released, released, not_freed, stuck, granted, recognised)
    to_target = error == 0 or stage == "verify"

    def back(gs: List[int], on: Optional[int]) -> int:  # how many of gs (the first ones) got a frame
        nonlocal runs
        at = 0
        got = _take(host, d, on, len(gs)) if on is not None else _take_anywhere(host, d, len(gs))
        for n, count in got.items():
            for s, e in pagemove.spans(gs[at:at + count]):
                runs = paint(runs, s, e, n)
            at += count
        return at

    moved = back(released, node) if to_target else 0
    superpages = pagemove.whole_runs(released[:moved])
    fallback = back(released[moved:], None)
    at, raised = moved + fallback, 0
    if at < len(released):
        # at its maximum (frames not freed count against it, or the toolstack capped it
        # below its pages): raised once by what is missing, the target tried again first
        raised = raise_max(d, len(released) - at)
        if raised and fault == "die-after-raise":  # killed inside the raise: the record keeps it
            return _died(host, d, runs, released, released[at:], not_freed, stuck, granted, recognised, raised)
        more = back(released[at:], node) if raised and to_target else 0
        moved, at = moved + more, at + more
        more = back(released[at:], None)
        fallback, at = fallback + more, at + more
        give_back_max(d)  # the toolstack's value, not ours to keep raised
    if moved < len(released) and to_target and not error and not allow_fallback:
        stage, error = "populate", errno.ENOMEM
    lost = len(released) - at
    for s_, e_ in pagemove.spans(released[at:]):
        runs = paint(runs, s_, e_, UNBACKED)  # no frame anywhere for these
    d.gfn_runs = runs
    if fault == "copy-back" and released and not lost:
        stage, error, lost = "copy-back", errno.EFAULT, len(released)
    if lost:
        # the contents are not all back: the guest stays paused, the batch record keeps them
        host.pause(d.domid)
        d.record = list(released)
    elif fault == "unpause":
        # the unpause failed three times: the record is kept, saying only the unpause is left
        stage, error = ("unpause", errno.ENOMEM) if not error else (stage, error)
        host.pause(d.domid)
        d.record = []
    pause = pagemove.estimated_pause(len(gfns), superpages, chunk)
    return BatchResult(len(released), moved, fallback, lost, superpages, not_freed, stuck, raised, pause, stage,
                       error, granted, recognised)


def _died(host, d, runs: List[List[int]], released: List[int], unbacked: List[int], not_freed: int,
          stuck: Tuple[int, ...], granted: int, recognised: int, raised: int = 0) -> BatchResult:
    """The mover dies here: the guest stays paused with ``unbacked`` (of the released gfns)
    without a frame, their contents in the batch record (the real one is a file on tmpfs),
    with the raise of max_pages in force, if any."""
    host.pause(d.domid)  # (the pause the mover keeps: its vCPUs leave their pCPUs, as on Xen)
    d.record = list(released)
    for s_, e_ in pagemove.spans(unbacked):
        runs = paint(runs, s_, e_, UNBACKED)
    d.gfn_runs = runs
    return BatchResult(len(released), 0, 0, len(unbacked), 0, not_freed, stuck, raised, 0.0, "died", errno.EINTR,
                       granted, recognised)


def recover(host, d) -> Optional[str]:
    """What xn_mig_recover does: give back a raise of max_pages the mover died inside
    (the toolstack's value again, unless it has set its own since), back the released gfns
    that have no frame again (anywhere; raising max_pages for them if it is reached, and
    giving that back), put the saved contents back, unpause (the pause is given back
    once: a domain someone else unpaused is left running).  Short of frames,
    the record is kept and the guest stays paused (ENOMEM)."""
    if d.record is None:
        return None
    max_note = pagemove.max_pages_note(d.domid, give_back_max(d), 0)
    runs = d.gfn_runs
    node_now = node_lookup(runs or [])  # a record with no runs: nothing to look up
    missing = [g for g in d.record if node_now(g) == UNBACKED]
    backed = 0
    for attempt in range(2):
        if attempt and (backed == len(missing) or not raise_max(d, len(missing) - backed)):
            break
        for n, count in _take_anywhere(host, d, len(missing) - backed).items():
            for s_, e_ in pagemove.spans(missing[backed:backed + count]):
                runs = paint(runs, s_, e_, n)
            backed += count
    give_back_max(d)  # (the toolstack's value again, as the mover leaves it)
    d.gfn_runs = runs
    if backed < len(missing):
        raise HypervisorError(errno.ENOMEM, f"recovering the page-move batch of domain {d.domid}: "
                                            f"{len(missing) - backed} gfns still have no frame")
    restored = len(d.record)
    d.record = None
    if not d.pause_count:  # someone gave back our pause already: the saved copy is older than the guest
        return "; ".join(n for n in (pagemove.found_running(d.domid, backed), max_note) if n)
    host.unpause(d.domid)
    return "; ".join(n for n in (f"domain {d.domid}: finished a page-move batch its mover left paused ({backed} "
                                 f"released pages backed again, the contents of {restored} restored) and unpaused "
                                 f"it", max_note) if n)


def release_hold(host, d, gfn: int) -> None:
    """The holder of a frame lets go: a stale old frame is finally freed."""
    if gfn in d.held:
        d.held.remove(gfn)
    if d.stale:
        node, count = d.stale.pop(0)
        host.release(d, node, count)
