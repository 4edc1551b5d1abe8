"""vNUMA plans: the NUMA topology a guest is shown, and where each of its nodes lives.

Owns the pure decision of a guest's virtual nodes (vnodes): which physical node
(pnode) backs each, how much of the guest's memory each holds, which vCPUs belong
to it, and the distances between vnodes (taken from the host's SLIT, so the guest
sees the real cost of remote memory).  Two modes:

* ``follow``: the vnodes follow a placement; a guest placed on k nodes gets k vnodes.
* ``split``: the seed's split host; the host's nodes are cut into two halves
  (one cpupool each) and a guest gets one vnode per node of its half.

Every configuration Xen 4.17 cannot honour is refused before anything starts, each
with its own error (the guest asked for and those refusals: :mod:`xapi_numa.core.vnuma_guest`).
Rendering for xl.cfg lives here too, since it is a pure function of the plan, and
so does :class:`VnumaLayout`: the layout a domain has (what the hypervisor port reads
back), with its guest-physical ranges.
"""
import itertools
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import attrs

from xapi_numa.core.topology import Topology
from xapi_numa.core.vnuma_guest import ALIGN, PAGE, MiB, GuestSpec, check_fits, check_guest, check_nodes
from xapi_numa.errors import InvalidArgument

MODES = ("follow", "split")
# Halves are found by trying every equal cut up to this many nodes; above it
# (no such x86 host today) the cut is by node id.
MAX_EXHAUSTIVE_SPLIT = 16


@attrs.frozen
class VNode:
    """One virtual node as the guest sees it, and the physical node behind it."""

    index: int
    pnode: Optional[int]          # None only in a layout whose hypervisor cannot say
    memory: int                   # bytes
    vcpus: Tuple[int, ...]        # contiguous, ascending (xl takes one range per vnode)
    distances: Tuple[int, ...]    # to every vnode, in vnode order


@attrs.frozen
class VnumaPlan:
    """A guest's vNUMA layout."""

    mode: str
    vnodes: Tuple[VNode, ...]
    cpus: Mapping[int, FrozenSet[int]] = attrs.field(converter=lambda m: dict(m))  # pnode -> its pCPUs

    @property
    def pnodes(self) -> Tuple[int, ...]:
        return tuple(v.pnode for v in self.vnodes)

    def vnode_of_vcpu(self, vcpu: int) -> int:
        for v in self.vnodes:
            if vcpu in v.vcpus:
                return v.index
        raise InvalidArgument("vcpu", f"vCPU {vcpu} is in no vnode of this plan",
                              f"0..{sum(len(v.vcpus) for v in self.vnodes) - 1}")

    def memory_by_pnode(self) -> Dict[int, int]:
        out: Dict[int, int] = {}
        for v in self.vnodes:
            out[v.pnode] = out.get(v.pnode, 0) + v.memory
        return out

    def to_dict(self) -> dict:
        return {"mode": self.mode,
                "vnodes": [{"vnode": v.index, "pnode": v.pnode, "memory": v.memory, "vcpus": list(v.vcpus),
                            "vdistances": list(v.distances)} for v in self.vnodes]}


# --- the arithmetic -------------------------------------------------------------------------------
def split_vcpus(vcpus: int, k: int) -> List[Tuple[int, ...]]:
    """Contiguous blocks, sizes differing by at most one (the first blocks take the extra)."""
    base, extra = divmod(vcpus, k)
    out, start = [], 0
    for i in range(k):
        n = base + (1 if i < extra else 0)
        out.append(tuple(range(start, start + n)))
        start += n
    return out


def split_memory(memory: int, weights: Sequence[int]) -> List[int]:
    """Memory in proportion to ``weights`` (the vCPUs per vnode), counted in 2 MiB
    units so every boundary is aligned, at least one unit per vnode, summing exactly
    to ``memory`` (what is left below 2 MiB goes to the last vnode, where RAM ends).
    Raises if there are fewer units than vnodes."""
    k, units = len(weights), memory // ALIGN
    if units < k:
        raise InvalidArgument("memory", f"{memory} bytes over {k} vnodes leaves a vnode below 2 MiB",
                              f"{k * ALIGN} bytes or more")
    spare, total = units - k, sum(weights)
    shares = [spare * w // total for w in weights]
    # the units lost to rounding go to the largest remainders (earlier vnodes on ties)
    order = sorted(range(k), key=lambda i: (-(spare * weights[i] % total), i))
    for i in order[:spare - sum(shares)]:
        shares[i] += 1
    sizes = [(1 + n) * ALIGN for n in shares]
    sizes[-1] += memory - units * ALIGN
    return sizes


def _plan(mode: str, topology: Topology, guest: GuestSpec, pnodes: Sequence[int],
          free: Optional[Mapping[int, int]], memory: Optional[Mapping[int, int]] = None) -> VnumaPlan:
    """``memory``: bytes per node the vnodes' memory follows, if every pnode has some (else their vCPUs)."""
    check_guest(guest)
    check_nodes(mode, topology, guest, pnodes)
    blocks = split_vcpus(guest.vcpus, len(pnodes))
    weights = [memory.get(p, 0) for p in pnodes] if memory else []
    sizes = split_memory(guest.memory, weights if weights and all(weights) else [len(b) for b in blocks])
    available = free if free is not None else {n.id: n.memory_free for n in topology.nodes}
    check_fits(list(zip(pnodes, sizes)), available)
    vnodes = tuple(VNode(i, p, sizes[i], blocks[i], tuple(topology.distance(p, q) for q in pnodes))
                   for i, p in enumerate(pnodes))
    return VnumaPlan(mode, vnodes, {p: topology.cpus_near([p]) for p in pnodes})


def plan_follow(topology: Topology, guest: GuestSpec, pnodes: Sequence[int],
                free: Optional[Mapping[int, int]] = None, memory: Optional[Mapping[int, int]] = None) -> VnumaPlan:
    """One vnode per node of the placement, in the placement's order.  ``memory``: the
    placement's bytes per node; the vnodes' memory follows it (what placement found room
    for), else the vnodes' vCPUs."""
    return _plan("follow", topology, guest, list(pnodes), free, memory)


def split_halves(topology: Topology) -> Tuple[FrozenSet[int], FrozenSet[int]]:
    """Cut the host's nodes into two halves of equal size (the first one larger by one
    when odd) whose worst distance inside a half is smallest: on the usual two-socket
    or four-die layouts that keeps sockets together.  Node 0 is always in the first."""
    ids = sorted(topology.node_ids)
    if len(ids) < 2:
        raise InvalidArgument("half", f"a split plan needs a host with 2 or more NUMA nodes; this one has {len(ids)}",
                              "no split on this host (mode follow)")
    size = (len(ids) + 1) // 2
    if len(ids) > MAX_EXHAUSTIVE_SPLIT:
        return frozenset(ids[:size]), frozenset(ids[size:])

    def spread(half: Sequence[int]) -> int:
        return max((topology.distance(a, b) for a in half for b in half), default=0)

    best = None
    for rest in itertools.combinations(ids[1:], size - 1):
        first = (ids[0],) + rest
        second = tuple(n for n in ids if n not in first)
        key = (max(spread(first), spread(second)), spread(first) + spread(second), first)
        if best is None or key < best[0]:
            best = (key, first, second)
    return frozenset(best[1]), frozenset(best[2])


SPLIT_HALVES = "0 or 1"
SPLIT_HALF_REFUSED = "{} is no half of a split host"


def plan_split(topology: Topology, guest: GuestSpec, half: int,
               free: Optional[Mapping[int, int]] = None, memory: Optional[Mapping[int, int]] = None) -> VnumaPlan:
    """One vnode per node of the guest's half of a split host; ``memory`` as :func:`plan_follow`'s."""
    if half not in (0, 1):
        raise InvalidArgument("half", SPLIT_HALF_REFUSED.format(half), SPLIT_HALVES)
    nodes = sorted(split_halves(topology)[half])
    return _plan("split", topology, guest, nodes, free, memory)


# --- guest-physical ranges -------------------------------------------------------------------
FOUR_GiB = 4 << 30  # (where a builder ends RAM below it by default: xenalloc.LOWMEM_END)


@attrs.frozen
class MemRange:
    """Guest-physical bytes [start, end) of one vnode."""

    start: int
    end: int
    vnode: int


def memory_ranges(plan: VnumaPlan, hole_start: int = FOUR_GiB, hole_end: int = FOUR_GiB,
                  video: int = 0) -> Tuple[MemRange, ...]:
    """The vnodes laid out over the guest's RAM in vnode order, as a domain builder
    places it: from 0 up to the MMIO hole, then on from the hole's end; a vnode
    that straddles the hole gets two ranges.  ``hole_start`` is the builder's
    low-memory end (page-aligned); the default is a guest without a hole below 4 GiB
    (hole_start == hole_end: no hole, one range a vnode, as libxl lays out a PV guest's).
    ``video``: an HVM guest's video RAM, counted in its static max (the vnodes) but no
    RAM of the guest (QEMU maps it behind the VGA BAR); libxl takes it from vnode 0."""
    if hole_start % 4096 or hole_end % 4096 or not 0 < hole_start <= hole_end:
        raise InvalidArgument("hole", f"{hole_start:#x}-{hole_end:#x}",
                              "page-aligned, 0 < start <= end, e.g. 0xf0000000-0x100000000")
    if video % PAGE or not 0 <= video < plan.vnodes[0].memory:
        raise InvalidArgument("video", f"{video} bytes of video RAM with vnode 0 of {plan.vnodes[0].memory} bytes",
                              "whole 4 KiB pages, less than vnode 0's memory (libxl's rule)")
    out: List[MemRange] = []
    at = 0
    for v in plan.vnodes:
        left = v.memory - (video if v.index == 0 else 0)
        while left:
            if at == hole_start:
                at = hole_end
            room = hole_start - at if at < hole_start < hole_end else left
            take = min(left, room)
            out.append(MemRange(at, at + take, v.index))
            at += take
            left -= take
    return tuple(out)


# --- the layout a domain has -----------------------------------------------------------------
@attrs.frozen
class VnumaLayout:
    """A domain's vNUMA layout as the hypervisor holds it: its vnodes (memory is the
    sum of the vnode's ranges; ``pnode`` is None where the hypervisor cannot say
    which physical node backs it) and the guest-physical ranges of each."""

    vnodes: Tuple[VNode, ...]
    ranges: Tuple[MemRange, ...]

    @property
    def pnodes(self) -> Tuple[Optional[int], ...]:
        return tuple(v.pnode for v in self.vnodes)

    def vnode(self, index: int) -> VNode:
        if not 0 <= index < len(self.vnodes):
            raise InvalidArgument("vnode", f"no vnode {index} in this domain's layout",
                                  f"0..{len(self.vnodes) - 1}")
        return self.vnodes[index]

    def ranges_of(self, index: int) -> Tuple[MemRange, ...]:
        return tuple(r for r in self.ranges if r.vnode == self.vnode(index).index)

    def with_pnode(self, index: int, pnode: int) -> "VnumaLayout":
        """The layout once vnode ``index`` lives on ``pnode`` (the guest's view, its
        distances included, does not change: the guest read them at boot)."""
        self.vnode(index)
        return VnumaLayout(tuple(attrs.evolve(v, pnode=pnode) if v.index == index else v for v in self.vnodes),
                           self.ranges)

    def as_plan(self, mode: str = "follow") -> VnumaPlan:
        """The plan that sets this very layout again (``Hypervisor.set_vnuma``)."""
        unknown = [v.index for v in self.vnodes if v.pnode is None]
        if unknown:
            raise InvalidArgument("vnode", f"the pnode of vnode(s) {unknown} is unknown", "a layout with every pnode")
        return VnumaPlan(mode, self.vnodes, {})

    def to_dict(self) -> dict:
        return {"vnodes": [{"vnode": v.index, "pnode": v.pnode, "memory": v.memory, "vcpus": list(v.vcpus),
                            "vdistances": list(v.distances),
                            "ranges": [[r.start, r.end] for r in self.ranges if r.vnode == v.index]}
                           for v in self.vnodes]}


def layout_from_arrays(ranges: Sequence[Tuple[int, int, int]], distances: Sequence[int],
                       vcpu_to_vnode: Sequence[int], pnodes: Sequence[Optional[int]]) -> VnumaLayout:
    """A layout from the hypervisor's arrays: ranges as (start, end, vnode), the
    distances row-major, one vnode per vCPU, one pnode (or None) per vnode."""
    k = len(pnodes)
    if len(distances) != k * k or any(not 0 <= n < k for n in vcpu_to_vnode) or any(
            not 0 <= r[2] < k for r in ranges):
        raise InvalidArgument("vnuma", f"an inconsistent layout of {k} vnode(s)", "arrays sized by nr_vnodes")
    mem = [MemRange(s, e, n) for s, e, n in ranges]
    vnodes = tuple(VNode(i, pnodes[i], sum(r.end - r.start for r in mem if r.vnode == i),
                         tuple(c for c, n in enumerate(vcpu_to_vnode) if n == i),
                         tuple(distances[i * k:(i + 1) * k])) for i in range(k))
    return VnumaLayout(vnodes, tuple(mem))


def layout_of(plan: VnumaPlan, ranges: Sequence[MemRange]) -> VnumaLayout:
    """The layout a domain has once ``plan`` is set with ``ranges``."""
    v2n = {c: v.index for v in plan.vnodes for c in v.vcpus}
    return layout_from_arrays([(r.start, r.end, r.vnode) for r in ranges],
                              [d for v in plan.vnodes for d in v.distances],
                              [v2n[c] for c in sorted(v2n)], list(plan.pnodes))


def layout_from_dict(data: dict) -> VnumaLayout:
    """The inverse of :meth:`VnumaLayout.to_dict`."""
    vnodes = sorted(data["vnodes"], key=lambda v: v["vnode"])
    ranges = sorted((s, e, v["vnode"]) for v in vnodes for s, e in v["ranges"])
    v2n = sorted((c, v["vnode"]) for v in vnodes for c in v["vcpus"])
    return layout_from_arrays(ranges, [d for v in vnodes for d in v["vdistances"]], [n for _, n in v2n],
                              [v["pnode"] for v in vnodes])


# --- rendering --------------------------------------------------------------------------------------
def _range(vcpus: Sequence[int]) -> str:
    return str(vcpus[0]) if len(vcpus) == 1 else f"{vcpus[0]}-{vcpus[-1]}"


def xl_lines(plan: VnumaPlan, topology: Topology, hard: bool = False) -> str:
    """The xl.cfg lines for the plan: ``vnuma`` (xl.cfg(5): pnode, size in MiB, one vCPU
    range, distances to every vnode), the matching ``memory``/``maxmem``, and per-vCPU
    soft affinity so each vCPU runs where its vnode's memory is; with ``hard`` (a strict
    policy) the same per-vCPU list as hard affinity too (``cpus``)."""
    bad = [v.index for v in plan.vnodes if v.memory % MiB]
    if bad:
        raise InvalidArgument("memory", f"vnode(s) {bad} are not a whole number of MiB, which xl.cfg needs",
                              "memory in whole MiB")
    specs = ", ".join(
        '["pnode={}", "size={}", "vcpus={}", "vdistances={}"]'.format(
            v.pnode, v.memory // MiB, _range(v.vcpus), ",".join(str(d) for d in v.distances))
        for v in plan.vnodes)
    total = sum(v.memory for v in plan.vnodes) // MiB
    soft = ", ".join('"{}"'.format(topology.format_cpus(plan.cpus[v.pnode]))
                     for v in plan.vnodes for _ in v.vcpus)
    lines = [f"memory = {total}", f"maxmem = {total}", f"vnuma = [{specs}]", f"cpus_soft = [{soft}]"]
    return "\n".join(lines + ([f"cpus = [{soft}]"] if hard else []))
