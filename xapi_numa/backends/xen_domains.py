"""Xen's domain records, read through libxenuma's ``xn_domains`` (getinfolist).

Part of the Xen adapter (:mod:`xapi_numa.backends.xen` calls these with its
libxenuma binding and handle).  What this module owns: reading the records in
batches from a domid on, and the fields xapi-numa keeps of one.  A domain's name
is not in its record but in xenstore (one read per domain), so the adapter adds
names only where a caller wants
whole :class:`~xapi_numa.core.host.DomainInfo` records; a start's count of
vCPU homes needs only which domains are alive, and their handles
(:func:`uuids`).
"""
import errno
from types import SimpleNamespace
from typing import Callable, List, Optional, Tuple

from xapi_numa.core.live_domains import HANDLE, LiveDomains, uuid_text
from xapi_numa.errors import HypervisorError

# records per getinfolist call, as libxl lists domains: a host of a thousand in one hypercall
# (and one pass of the Python that reads a batch: a start reads the list every time)
BATCH = 1024

Check = Callable[[int, str], int]  # a -errno return to HypervisorError, else the count


def records(ffi, lib, handle, check: Check, first: int = 0, limit: Optional[int] = None) -> List[SimpleNamespace]:
    """Plain copies of the records of domids ``first`` and up (dying ones included), at most
    ``limit`` of them.  Copies, because a cffi element does not keep its array alive."""
    out: List[SimpleNamespace] = []
    batch = ffi.new("struct xn_domain[]", BATCH if limit is None else max(1, min(BATCH, limit)))
    while True:
        size = len(batch) if limit is None else min(len(batch), limit - len(out))
        if size <= 0:
            return out
        got = check(lib.xn_domains(handle, first, size, batch), "xc_domain_getinfolist")
        for i in range(got):
            d = batch[i]
            out.append(SimpleNamespace(domid=d.domid, flags=d.flags, tot_pages=d.tot_pages,
                                       max_pages=d.max_pages, outstanding_pages=d.outstanding_pages,
                                       nr_online_vcpus=d.nr_online_vcpus, max_vcpu_id=d.max_vcpu_id,
                                       cpupool=d.cpupool, uuid=uuid_text(bytes(d.handle))))
        if got < size or (limit is not None and len(out) >= limit):
            return out
        first = out[-1].domid + 1


def one(ffi, lib, handle, check: Check, domid: int) -> Optional[SimpleNamespace]:
    """Domain ``domid``'s record (dying or not; one hypercall), or None if there is none."""
    found = records(ffi, lib, handle, check, first=domid, limit=1)
    return found[0] if found and found[0].domid == domid else None


def memory_scan(ffi, lib, handle, domid: int, probe_ms: int, probe: Optional[bytes]) -> Tuple[int, bytes, object]:
    """libxenuma's scan of the domain's gfns (xn_mig_scan_map): its -errno or 0, the class of
    each gfn as far as the scan classified (a byte each; every gfn past them is a hole), and
    its stats.  The library sizes the map by what it classifies, not by the highest gfn,
    which a high MMIO or foreign mapping may put far past the guest's RAM.  It refuses
    (E2BIG) a highest gfn past what Xen lets an HVM or PVH guest address (2^64 - 1 would
    wrap the count to 0): said here, as nothing was read or paused."""
    cls, nr, stats = ffi.new("uint8_t **"), ffi.new("uint64_t *"), ffi.new("struct xn_mig_scan_stats *")
    rc = lib.xn_mig_scan_map(handle, domid, probe_ms, probe if probe is not None else ffi.NULL, cls, nr, stats)
    try:
        classes = ffi.buffer(cls[0], nr[0])[:] if nr[0] else b""
    finally:
        lib.xn_mig_map_free(cls[0])
    if rc == -errno.E2BIG:
        raise HypervisorError(errno.E2BIG, "the highest gfn libxenctrl gives for domain {} is at or past {:#x}, more "
                              "than Xen lets an HVM or PVH guest address (48 bits): its memory map is not read; "
                              "check that libxenctrl is Xen's own".format(domid, lib.XN_MIG_GFN_LIMIT))
    return rc, classes, stats


def uuids(ffi, lib, handle, check: Check) -> LiveDomains:
    """domid -> UUID of every domain that is not dying; nothing else is copied, and no
    UUID is formatted (:class:`LiveDomains` does that when asked)."""
    domids: List[int] = []
    handles: List[bytes] = []
    first, dying = 0, lib.XN_DOM_DYING
    # not cleared first (64 KiB every start): xn_domains writes every field of the records it returns
    batch = ffi.new_allocator(should_clear_after_alloc=False)("struct xn_domain[]", BATCH)
    while True:
        got = check(lib.xn_domains(handle, first, BATCH, batch), "xc_domain_getinfolist")
        ids, flags, raw = _columns(ffi, batch, got)
        # (seldom: the few distinct flag words are looked at first)
        gone = [i for i, f in enumerate(flags) if f & dying] if any(f & dying for f in set(flags)) else []
        for i in reversed(gone):
            del ids[i]
            raw = raw[:HANDLE * i] + raw[HANDLE * (i + 1):]
        domids += ids
        handles.append(raw)
        if got < BATCH:
            return LiveDomains(domids, b"".join(handles))
        first = batch[got - 1].domid + 1


WORD = 4  # bytes of a uint32_t: every field _columns reads is made of them


def _columns(ffi, batch, got: int) -> Tuple[List[int], List[int], bytes]:
    """The domids, the flags and the handles end to end of the first ``got`` records, read
    as columns of the batch's memory in C-speed passes: a record at a time through cffi
    took about 0.4 ms for a thousand domains, most of a start's decision."""
    size = ffi.sizeof("struct xn_domain")
    at = {name: ffi.offsetof("struct xn_domain", name) for name in ("domid", "flags", "handle")}
    if size % WORD or any(offset % WORD for offset in at.values()):  # (not with libxenuma.h's layout)
        raise ValueError("struct xn_domain is not made of 4-byte words")
    memory = memoryview(ffi.buffer(batch, got * size))
    words = memory.cast("I")
    step = size // WORD
    return (words[at["domid"] // WORD::step].tolist(), words[at["flags"] // WORD::step].tolist(),
            _handles(memory, got, size, at["handle"]))


def _handles(memory: memoryview, got: int, size: int, offset: int) -> bytes:
    """The ``got`` handles at ``offset`` in records of ``size`` bytes, end to end: copied a
    column of 8-byte words at a time where the layout lets the records be read as such
    (half the passes), else of 4-byte words."""
    raw = bytearray(HANDLE * got)
    for width, kind in ((8, "Q"), (WORD, "I")):
        base = offset % width  # (the words read start there: the handle's first is one of them)
        length = (len(memory) - base) // width * width
        if size % width or (got and (got - 1) * size + offset + HANDLE > base + length):
            continue
        words, into, per = memory[base:base + length].cast(kind), memoryview(raw).cast(kind), HANDLE // width
        for k in range(per):  # the handle's k-th word of every record, into its place (no copy between)
            into[k::per] = words[(offset - base) // width + k::size // width]
        break
    return bytes(raw)
