"""vNUMA on real Xen: setting a domain's layout and reading back the one Xen holds.

Part of the Xen adapter (:mod:`xapi_numa.backends.xen` calls these with its
libxenuma binding and handle).  Setting is ``xn_domain_setvnuma``.  Reading
is ``xn_domain_getvnuma`` (XENMEM_get_vnumainfo): its first call, with no room,
is answered ENOBUFS with the sizes -- the expected answer, which libxl 4.17
treats as fatal (docs/vnuma.md) -- and the second fills the arrays; EAGAIN or
another ENOBUFS means the layout was replaced in between, so we size again.
Xen does not say which pnode backs a vnode through that call; debug key 'u'
prints it ("  1: pnode   0, vcpus 1"), so the pnodes come from the adapter's
rate-limited dump, None where the dump does not show them.
"""
import errno
import re
from typing import Callable, Dict, List, Optional, Sequence

from xapi_numa.core.vnuma import MemRange, VnumaLayout, VnumaPlan, layout_from_arrays
from xapi_numa.errors import HypervisorError, InvalidArgument, NumaError

SIZING_TRIES = 4
_HEADER = b"Memory location of each domain:"
_DOMAIN = re.compile(rb"(?:Domain |d)(\d+) \(total: \d+\):")
_VNODE = re.compile(rb"^\s*(\d+): pnode\s+(\d+|\?\?\?),")


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
        return layout_from_arrays([(ranges[i].start, ranges[i].end, ranges[i].vnode) for i in range(counts[1][0])],
                                  [dist[i] for i in range(k * k)], [v2n[i] for i in range(counts[2][0])],
                                  _pnodes(dump, domid, k))
    raise HypervisorError(errno.EAGAIN, f"reading the vNUMA layout of domain {domid} (it kept changing)")


def _pnodes(dump: Callable[[bool], bytes], domid: int, nr_vnodes: int) -> List[Optional[int]]:
    found: Dict[int, Optional[int]] = {}
    for fresh in (False, True):
        try:
            found = pnodes_from_dump(dump(fresh), domid)
        except NumaError:  # no console access: the pnodes stay unknown
            break
        if len(found) >= nr_vnodes:
            break
    return [found.get(i) for i in range(nr_vnodes)]


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
    lines = _lines(text)
    starts = [i for i, line in enumerate(lines) if line.startswith(_HEADER)]
    found: Dict[int, Optional[int]] = {}
    inside = False
    for line in lines[starts[-1] + 1:] if starts else ():
        dom = _DOMAIN.match(line)
        if dom:
            if inside:
                break
            inside = int(dom.group(1)) == domid
            continue
        vnode = _VNODE.match(line) if inside else None
        if vnode:
            found[int(vnode.group(1))] = None if vnode.group(2) == b"???" else int(vnode.group(2))
    return found
