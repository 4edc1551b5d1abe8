"""vNUMA on real Xen: setting a domain's layout and reading back the one Xen holds.

Part of the Xen adapter (:mod:`xapi_numa.backends.xen` calls these with its
libxenuma binding and handle).  Setting is ``xn_domain_setvnuma``.  Reading
is ``xn_domain_getvnuma`` (XENMEM_get_vnumainfo): its first call, with no room,
is answered ENOBUFS with the sizes -- the expected answer, which libxl 4.17
treats as fatal (docs/vnuma.md) -- and the second fills the arrays; EAGAIN or
another ENOBUFS means the layout was replaced in between, so we size again.
Xen does not say which pnode backs a vnode through that call; debug key 'u'
prints it ("  1: pnode   0, vcpus 1" and the vnode's ranges), so the pnodes come
from the adapter's rate-limited dump (:mod:`xapi_numa.backends.xen_udump`), taken
only from a dump that shows the very vCPUs and ranges just read: one that shows
another layout (the domain rebuilt on the same domid, its layout replaced since
the capture) is taken again, and pnodes no dump agrees on stay None, never a guess.
"""
import errno
import re
from typing import Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

from xapi_numa.core.vnuma import MemRange, VnumaLayout, VnumaPlan, layout_from_arrays
from xapi_numa.errors import HypervisorError, InvalidArgument, NumaError

SIZING_TRIES = 4
_HEADER = b"Memory location of each domain:"
_DOMAIN = re.compile(rb"(?:Domain |d)(\d+) \(total: \d+\):")
_VNODE = re.compile(rb"^\s*(\d+): pnode\s+(\d+|\?\?\?), vcpus([-\d ]*)$")
_RANGE = re.compile(rb"^\s*([0-9a-f]{16}) - ([0-9a-f]{16})$")
# a vnode as the dump and the layout both describe it: its vCPUs and its [start, end) ranges
Shape = Tuple[FrozenSet[int], Tuple[Tuple[int, int], ...]]


def write(ffi, lib, handle, domid: int, plan: VnumaPlan, ranges: Sequence[MemRange]) -> None:
    """Set ``plan`` with ``ranges``; a plan the C library would misread is refused first."""
    check_plan_shape(plan)
    cranges = ffi.new("struct xn_vmemrange[]", [(r.start, r.end, r.vnode) for r in ranges] or 1)
    dist = ffi.new("uint32_t[]", [d for v in plan.vnodes for d in v.distances])
    vcpus = sorted((c, v.index) for v in plan.vnodes for c in v.vcpus)
    v2n = ffi.new("uint32_t[]", [n for _, n in vcpus] or 1)
    n2p = ffi.new("uint32_t[]", list(plan.pnodes))
    rc = lib.xn_domain_setvnuma(handle, domid, len(plan.vnodes), len(ranges), cranges, len(vcpus), dist, v2n, n2p)
    if rc < 0:
        raise HypervisorError(-rc, f"setting the vNUMA layout of domain {domid}")


def check_plan_shape(plan: VnumaPlan) -> None:
    """The C library takes bare arrays: nr_vnodes squared distances (a short row would be
    read past its end), one vnode per vCPU 0..n-1 (a vCPU listed twice, or none, would
    shift every later vCPU onto another vnode), a pnode per vnode."""
    k = len(plan.vnodes)
    vcpus = sorted(c for v in plan.vnodes for c in v.vcpus)
    problems = [f"vnode {v.index} has {len(v.distances)} distances" for v in plan.vnodes if len(v.distances) != k]
    problems += [f"vnode at position {i} is numbered {v.index}" for i, v in enumerate(plan.vnodes) if v.index != i]
    problems += [f"vnode {v.index} has no pnode" for v in plan.vnodes if not isinstance(v.pnode, int)]
    if vcpus != list(range(len(vcpus))):
        problems.append(f"its vCPUs are {vcpus}")
    if problems:
        raise InvalidArgument("vnuma plan", "; ".join(problems),
                              f"vnodes 0..{k - 1} in order, {k} distances each, a pnode each, "
                              "vCPUs 0..n-1 each in one vnode")


def read(ffi, lib, handle, domid: int, dump: Callable[[bool], bytes]) -> Optional[VnumaLayout]:
    """The layout Xen holds for ``domid``, or None if it has none."""
    getvnuma = getattr(lib, "xn_domain_getvnuma", None)
    if getvnuma is None:  # a prebuilt library older than this package: say so, never guess "no layout"
        raise HypervisorError(errno.ENOSYS, "reading vNUMA layouts (this libxenuma has no xn_domain_getvnuma)")
    counts = [ffi.new("uint32_t *", 0) for _ in range(3)]
    for _ in range(SIZING_TRIES):
        nodes, nranges, vcpus = (c[0] for c in counts)
        ranges = ffi.new("struct xn_vmemrange[]", nranges) if nranges else ffi.NULL
        dist = ffi.new("uint32_t[]", nodes * nodes) if nodes else ffi.NULL
        v2n = ffi.new("uint32_t[]", vcpus) if vcpus else ffi.NULL
        rc = getvnuma(handle, domid, counts[0], counts[1], counts[2], ranges, dist, v2n)
        if rc == -errno.EOPNOTSUPP:
            return None
        if rc in (-errno.ENOBUFS, -errno.EAGAIN):
            continue  # sized now (or the layout was replaced meanwhile): ask again with room
        if rc < 0:
            raise HypervisorError(-rc, f"reading the vNUMA layout of domain {domid}")
        k = counts[0][0]
        spans = [(ranges[i].start, ranges[i].end, ranges[i].vnode) for i in range(counts[1][0])]
        vcpu_vnodes = [v2n[i] for i in range(counts[2][0])]
        return layout_from_arrays(spans, [dist[i] for i in range(k * k)], vcpu_vnodes,
                                  _pnodes(dump, domid, _shapes(k, spans, vcpu_vnodes)))
    raise HypervisorError(errno.EAGAIN, f"reading the vNUMA layout of domain {domid} (it kept changing)")


def _shapes(nr_vnodes: int, spans: Sequence[Tuple[int, int, int]], vcpu_vnodes: Sequence[int]) -> List[Shape]:
    """Each vnode's vCPUs and ranges as Xen returned them."""
    return [(frozenset(c for c, v in enumerate(vcpu_vnodes) if v == i),
             tuple((start, end) for start, end, v in spans if v == i)) for i in range(nr_vnodes)]


def _pnodes(dump: Callable[[bool], bytes], domid: int, shapes: List[Shape]) -> List[Optional[int]]:
    """The pnodes of the dump that shows this very layout: the adapter's last capture, else
    a new one (the last showed the domain's earlier layout, or none); None if none shows it."""
    for fresh in (False, True):
        try:
            found = vnodes_from_dump(dump(fresh), domid)
        except NumaError:  # no console access: the pnodes stay unknown
            break
        if [shape for _, shape in found] == shapes:
            return [pnode for pnode, _ in found]
    return [None] * len(shapes)


def _lines(text: bytes) -> List[bytes]:
    """Console lines without "(XEN) " and an optional "[timestamp] "."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(b"(XEN)"):
            line = line[5:].lstrip()
        if line.startswith(b"["):
            line = line.partition(b"]")[2].lstrip()
        out.append(line)
    return out


def pnodes_from_dump(text: bytes, domid: int) -> Dict[int, Optional[int]]:
    """vnode -> pnode of ``domid`` from the last debug key 'u' dump in ``text``
    (``???``, Xen's NUMA_NO_NODE, is None); empty if the dump does not show it."""
    return {i: pnode for i, (pnode, _) in enumerate(vnodes_from_dump(text, domid))}


def vnodes_from_dump(text: bytes, domid: int) -> List[Tuple[Optional[int], Shape]]:
    """(pnode, shape) of each vnode of ``domid``, in vnode order, as the last debug key 'u'
    dump in ``text`` prints them; empty if it shows none (or vnodes out of order)."""
    lines = _lines(text)
    starts = [i for i, line in enumerate(lines) if line.startswith(_HEADER)]
    found: List[Tuple[Optional[int], FrozenSet[int], List[Tuple[int, int]]]] = []
    inside = False
    for line in lines[starts[-1] + 1:] if starts else ():
        dom = _DOMAIN.match(line)
        if dom:
            if inside:
                break
            inside = int(dom.group(1)) == domid
            continue
        vnode = _VNODE.match(line) if inside else None
        span = _RANGE.match(line) if inside and found else None
        if vnode:
            if int(vnode.group(1)) != len(found):
                return []
            found.append((None if vnode.group(2) == b"???" else int(vnode.group(2)), _vcpus(vnode.group(3)), []))
        elif span:
            found[-1][2].append((int(span.group(1), 16), int(span.group(2), 16)))
    return [(pnode, (vcpus, tuple(spans))) for pnode, vcpus, spans in found]


def _vcpus(text: bytes) -> FrozenSet[int]:
    """Xen's vCPU list of a vnode: "0-3 6 8-9"."""
    out = set()
    for part in text.split():
        first, _, last = part.partition(b"-")
        out.update(range(int(first), int(last or first) + 1))
    return frozenset(out)
