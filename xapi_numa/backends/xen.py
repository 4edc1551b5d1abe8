"""The Hypervisor port on real Xen, over libxenuma (our libxc extension, via cffi).

Layering as in pyca/cryptography: C declarations (``libxenuma/src/libxenuma.h``) -> the
cffi binding (``_libxenuma``) -> this adapter, which turns -errno returns into
:class:`~xapi_numa.errors.HypervisorError` and bitmaps into frozensets.

Pages per node: XenServer's patched hypercall where built in; otherwise debug key 'u'
read back from the console ring.  That dump walks every page of every domain under a
lock, so captures are rate-limited: one per ``dump_interval`` seconds serves all
(:mod:`xapi_numa.backends.xen_udump`).
"""

import errno
import os
import time
from types import SimpleNamespace
from typing import Dict, FrozenSet, List, Optional, Sequence

from xapi_numa.backends import boot, xen_domains as domain_records, xen_records as records, xen_topology, xen_vnuma
from xapi_numa.backends.xen_udump import DumpCache
from xapi_numa.backends.xen_topology import INVALID_U32
from xapi_numa.backends.xenstore import XenstoreReader
from xapi_numa.errors import BackendUnavailable, HypervisorError
from xapi_numa.ports.hypervisor import DEVICE_MODEL_BLOCKER, Capabilities, Hypervisor
from xapi_numa.core import dma_zone
from xapi_numa.core.cpuset import BitmapReader
from xapi_numa.core.host import BatchResult, DomainInfo, MemoryMap, NodeMemory, VcpuInfo
from xapi_numa.core.live_domains import LiveDomains
from xapi_numa.core.topology import Topology
from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.core.vnuma import MemRange, VnumaLayout, VnumaPlan

try:
    from xapi_numa._libxenuma import ffi, lib
except ModuleNotFoundError:  # no compiler was there (a dom0): the prebuilt library in cffi's ABI mode
    # (a module that is there but cannot load, say a missing libxenctrl, keeps its own ImportError)
    from xapi_numa.backends.libxenuma_abi import load as _load_abi

    ffi, lib = _load_abi()  # ImportError naming where it looked, as before

SCHEDULERS = {5: "credit", 6: "credit2", 7: "arinc653", 8: "rtds", 9: "null"}
FEATURE_NAMES = {2: "native", 1: "fallback", 0: "unavailable"}
STAGES = {0: "none", 1: "copy-out", 2: "release", 3: "verify", 4: "populate", 5: "copy-back", 6: "unpause", 7: "done"}
NOT_MOVABLE = {errno.EPROTOTYPE: "is a PV guest", errno.EOPNOTSUPP: "booted with populate-on-demand (below max)"}
FAULTS = {"after-release": 0x100, "die-after-release": 0x200, "copy-back": 0x800}  # test hooks
DUMP_BUFFER = 4 << 20
_UNREAD = object()  # the DMA width, before the first read of node memory


def _check(rc: int, what: str) -> int:
    if rc < 0:
        raise HypervisorError(-rc, what)
    return rc


def _raw(buf, nbytes: int) -> bytes:
    """The bytes of a cffi buffer (a bit map as Xen filled it)."""
    return bytes(ffi.buffer(buf, nbytes))


def domain_type(flags: int) -> str:
    """pv, pvh or hvm from a domain's XN_DOM_* flags (Xen's say HVM for PVH too: libxenuma
    tells them apart by what is emulated)."""
    if not flags & lib.XN_DOM_HVM:
        return "pv"
    return "pvh" if flags & lib.XN_DOM_PVH else "hvm"


class XenHypervisor(Hypervisor):
    """Hypervisor port implementation for dom0 of a real Xen host."""

    def __init__(self, dump_interval: float = 1.0) -> None:
        handle = ffi.new("xn_handle **")
        rc = lib.xn_open(handle)
        if rc < 0:
            name = errno.errorcode.get(-rc, str(-rc))
            hint = ("not running in dom0 of a Xen host" if -rc in (errno.ENOENT, errno.ENXIO)
                    else "not privileged (run as root in dom0)" if -rc in (errno.EACCES, errno.EPERM)
                    else "hypervisor interface unavailable")
            raise BackendUnavailable(f"cannot open the Xen control interface: {hint} ({name})")
        self._h = ffi.gc(handle[0], lib.xn_close)
        self._cpumap_bytes = _check(lib.xn_cpumap_bytes(self._h), "reading the CPU map size")
        self._maps = BitmapReader()
        self._nodemap_bytes = _check(lib.xn_nodemap_bytes(self._h), "reading the node map size")
        self._online: Optional[FrozenSet[int]] = None  # the online CPUs, as the last topology() read them
        self._dumps = DumpCache(self._capture_dump, dump_interval)
        self._names: Dict[int, str] = {}  # domid -> name (xenstore), for domids still alive
        self._xenstore = XenstoreReader()
        self._dma_width: object = _UNREAD

    # --- host -------------------------------------------------------------------------
    def physinfo(self):
        info = ffi.new("struct xn_physinfo *")
        _check(lib.xn_physinfo(self._h, info), "xc_physinfo")
        return info

    def scheduler(self) -> str:
        return SCHEDULERS.get(self.physinfo().sched_id, "unknown")

    def claims_outstanding(self) -> int:
        return self.physinfo().outstanding_pages << PAGE_SHIFT  # Xen's outstanding_claims: every domain's

    def topology(self) -> Topology:
        topo, self._online = xen_topology.topology(ffi, lib, self._h, _check, self._online_cpus)
        return topo

    def _online_cpus(self) -> FrozenSet[int]:
        """Every pool's CPUs and the free ones: the online CPUs (a parked one is in neither)."""
        cpumap = ffi.new("uint8_t[]", self._cpumap_bytes)
        _check(lib.xn_cpupool_free_cpus(self._h, cpumap), "xc_cpupool_freeinfo")
        return frozenset().union(self._maps.read(_raw(cpumap, self._cpumap_bytes)), *self.cpupools().values())

    def node_memory(self) -> List[NodeMemory]:
        sizes, frees, _ = xen_topology.numainfo(ffi, lib, self._h, _check)
        width = self._dma_width_bits(sizes)
        low = xen_topology.dma_free(ffi, lib, self._h, _check, width, len(sizes)) if width else [0] * len(sizes)
        # Nothing here reads claims per node (stock Xen has none; XenServer's patched Xen takes them, but numainfo
        # has no field for them): a node claim counts as host-wide, callers add the ledger's (node_claims_read False).
        return [NodeMemory(i, sizes[i], frees[i], 0, min(low[i], frees[i])) for i in range(len(sizes))]

    def _dma_width_bits(self, sizes: Sequence[int]) -> Optional[int]:
        """Xen's DMA width: set once at boot (``end_boot_allocator``), so read once."""
        if self._dma_width is _UNREAD:
            try:
                commandline = xen_topology.xen_commandline(ffi, lib, self._h, _check)
            except HypervisorError:
                commandline = ""  # refused (an XSM policy): Xen's default, as without dma_bits=
            self._dma_width = dma_zone.dma_width(commandline, sizes)
        return self._dma_width

    # --- domains ------------------------------------------------------------------------
    def domains(self) -> List[DomainInfo]:
        listed = [d for d in domain_records.records(ffi, lib, self._h, _check) if not d.flags & lib.XN_DOM_DYING]
        alive = {d.domid for d in listed}
        self._names = {k: v for k, v in self._names.items() if k in alive}
        return [self._info(d) for d in listed]

    def domain_uuids(self) -> LiveDomains:
        return domain_records.uuids(ffi, lib, self._h, _check)  # no names: no xenstore read

    def domain(self, domid: int, named: bool = True) -> Optional[DomainInfo]:
        found = domain_records.one(ffi, lib, self._h, _check, domid)
        return None if found is None or found.flags & lib.XN_DOM_DYING else self._info(found, named)

    def _info(self, d, named: bool = True) -> DomainInfo:
        """A record with its name (xenstore, read once per domid while it lives; not read unless ``named``)."""
        if named and d.domid not in self._names:
            name = self._name(d.domid)
            if name is not None:
                self._names[d.domid] = name
        return DomainInfo(
            d.domid, self._names.get(d.domid, "domain-{}".format(d.domid)), d.uuid, d.nr_online_vcpus,
            d.tot_pages << PAGE_SHIFT, d.max_pages << PAGE_SHIFT, bool(d.flags & lib.XN_DOM_PAUSED),
            domain_type(d.flags), d.outstanding_pages << PAGE_SHIFT, d.cpupool, bool(d.flags & lib.XN_DOM_SHUTDOWN))

    def _name(self, domid: int) -> Optional[str]:
        """The domain's name from xenstore, or None if it cannot be read now (never
        cached then: a busy xenstore must not rename a domain for good)."""
        return self._xenstore.read("/local/domain/{}/name".format(domid))

    def _domain_record(self, domid: int) -> SimpleNamespace:
        """One domain's record (one hypercall, not a sweep of the domain list)."""
        found = domain_records.one(ffi, lib, self._h, _check, domid)
        if found is None:
            raise HypervisorError(errno.ESRCH, "domain {}".format(domid))
        return found

    def _max_vcpu(self, domid: int) -> int:
        return self._domain_record(domid).max_vcpu_id

    def vcpus(self, domid: int) -> List[VcpuInfo]:
        record = self._domain_record(domid)
        max_id = record.max_vcpu_id
        if max_id == INVALID_U32:
            return []
        # a shut-down domain's vCPUs are paused for the shutdown (neither running nor blocked, and no
        # controller's pause: XEN_DOMINF_paused unset) until it is destroyed: they want no CPU
        paused = bool(record.flags & (lib.XN_DOM_PAUSED | lib.XN_DOM_SHUTDOWN))
        # An affinity map is as wide as Xen's possible CPUs (hotplug ones included), and an
        # unpinned vCPU's has all of them set: only online CPUs are ones it runs on, and
        # the only ones the topology (and everything planned from it) knows.
        online = self._online if self._online is not None else self.topology().all_cpus
        info = ffi.new("struct xn_vcpu *")
        hard = ffi.new("uint8_t[]", self._cpumap_bytes)
        soft = ffi.new("uint8_t[]", self._cpumap_bytes)
        out = []
        for v in range(max_id + 1):
            _check(lib.xn_vcpu_info(self._h, domid, v, info), f"vCPU {v} of domain {domid}")
            _check(lib.xn_vcpu_get_affinity(self._h, domid, v, hard, soft), f"affinity of vCPU {v} of domain {domid}")
            state = ("offline" if not info.online else "paused" if paused else "running" if info.running
                     else "blocked" if info.blocked else "runnable")
            out.append(VcpuInfo(domid, v, info.cpu, state, self._maps.read(_raw(hard, self._cpumap_bytes), online),
                                self._maps.read(_raw(soft, self._cpumap_bytes), online), cpu_time=info.cpu_time_ns / 1e9))
        return out

    def _cpumap(self, cpus: FrozenSet[int]):
        buf = ffi.new("uint8_t[]", self._cpumap_bytes)
        for c in cpus:
            if not 0 <= c < self._cpumap_bytes * 8:
                raise HypervisorError(errno.EINVAL, f"CPU {c} is beyond this host's CPUs")
            buf[c // 8] |= 1 << (c % 8)
        if self._online is not None and cpus >= self._online:
            # every online CPU is no pin: written as Xen's own "all" (every bit, as xl writes it), so
            # that a CPU online later (xen-hptool cpu-online, a hotplug) is the vCPU's too
            ffi.buffer(buf)[:] = b"\xff" * self._cpumap_bytes
        return buf

    def set_vcpu_affinity(self, domid: int, vcpu: int, hard: Optional[FrozenSet[int]] = None,
                          soft: Optional[FrozenSet[int]] = None) -> None:
        if hard is not None and not hard:
            raise HypervisorError(errno.EINVAL, "empty hard affinity")
        h = self._cpumap(hard) if hard is not None else ffi.NULL
        s = self._cpumap(soft) if soft is not None else ffi.NULL
        _check(lib.xn_vcpu_set_affinity(self._h, domid, vcpu, h, s), f"setting affinity of vCPU {vcpu} of domain {domid}")

    def node_affinity(self, domid: int) -> FrozenSet[int]:
        buf = ffi.new("uint8_t[]", self._nodemap_bytes)
        _check(lib.xn_node_affinity_get(self._h, domid, buf), f"node affinity of domain {domid}")
        return self._maps.read(_raw(buf, self._nodemap_bytes))

    def set_node_affinity(self, domid: int, nodes: Optional[FrozenSet[int]]) -> None:
        buf = ffi.new("uint8_t[]", self._nodemap_bytes)
        # A full map is Xen's "automatic" node affinity.
        targets = range(self._nodemap_bytes * 8) if nodes is None else nodes
        for n in targets:
            if not 0 <= n < self._nodemap_bytes * 8:
                raise HypervisorError(errno.EINVAL, f"node {n} is beyond this host's nodes")
            buf[n // 8] |= 1 << (n % 8)
        _check(lib.xn_node_affinity_set(self._h, domid, buf), f"setting node affinity of domain {domid}")

    def pause(self, domid: int) -> None:
        _check(lib.xn_pause(self._h, domid), f"pausing domain {domid}")

    def unpause(self, domid: int) -> None:
        _check(lib.xn_unpause(self._h, domid), f"unpausing domain {domid}")

    def claim(self, domid: int, pages: int, node: Optional[int] = None) -> None:
        what = f"claiming {pages} pages for domain {domid}" + ("" if node is None else f" on node {node}")
        rc = lib.xn_claim(self._h, domid, INVALID_U32 if node is None else node, pages)
        if rc == -errno.EINVAL:
            # XENMEM_claim_pages answers EINVAL, not ESRCH, for a missing domain (Xen 4.17): tell them apart
            self._max_vcpu(domid)
            raise HypervisorError(errno.EINVAL, what + " (Xen takes one claim per domain, cancelled by a "
                                  "claim of 0, and the domain's total as its argument: more than its current "
                                  "pages, at most its maximum)")
        _check(rc, what)

    # --- pages per node ---------------------------------------------------------------
    def _capture_dump(self) -> bytes:
        buf = ffi.new("char[]", DUMP_BUFFER)
        length = ffi.new("size_t *", DUMP_BUFFER)
        _check(lib.xn_udump_capture(self._h, buf, length, 2000), "debug key 'u' dump")
        return ffi.buffer(buf, length[0])[:]

    def node_pages(self, domid: int) -> Dict[int, int]:
        nr = len(xen_topology.numainfo(ffi, lib, self._h, _check)[0])
        pages = ffi.new("uint64_t[]", nr)
        rc = lib.xn_node_pages_native(self._h, domid, nr, pages)
        if rc >= 0:
            return {i: pages[i] for i in range(nr)}
        if rc != -errno.ENOSYS:
            _check(rc, f"pages per node of domain {domid}")
        total = ffi.new("uint64_t *")
        for attempt in range(3):
            text = self._dumps.text(fresh=attempt > 0)
            rc = lib.xn_udump_parse(text, len(text), domid, nr, pages, total)
            if rc == 0:
                return {i: pages[i] for i in range(nr)}
            if rc == -errno.ENOENT:
                self._max_vcpu(domid)  # raises ESRCH for a domain that does not exist
            if rc not in (-errno.EAGAIN, -errno.ENOENT):
                break
        if rc == -errno.ENODATA:
            # no dump header: Xen prints the dump within the key's hypercall, and one larger than
            # its console ring has lost its head (the header, the first domains) before any read
            raise HypervisorError(errno.EAGAIN, f"pages per node of domain {domid}: debug key 'u''s dump is "
                                  "larger than Xen's console ring and lost its head (raise conring_size= "
                                  "on Xen's command line)")
        _check(rc, f"pages per node of domain {domid} (debug key 'u' dump)")
        return {}

    def _features(self) -> Dict[str, str]:
        f = ffi.new("struct xn_features *")
        lib.xn_features(self._h, f)
        return {"topology": "native", "vcpu_affinity": "native", "node_affinity": "native",
                "node_pages": FEATURE_NAMES[f.node_pages], "claims": FEATURE_NAMES[f.claims],
                "node_claims": FEATURE_NAMES[f.node_claims]}

    def capabilities(self) -> Capabilities:
        features = self._features()
        return Capabilities(self.scheduler(), features["node_claims"] == "native", features)

    def cpupools(self) -> Dict[int, FrozenSet[int]]:
        out: Dict[int, FrozenSet[int]] = {}
        pool_id = ffi.new("uint32_t *")
        cpumap = ffi.new("uint8_t[]", self._cpumap_bytes)
        first = 0
        while True:
            rc = lib.xn_cpupool_next(self._h, first, pool_id, cpumap)
            if rc == -errno.ENOENT:
                return out
            _check(rc, "xc_cpupool_getinfo")
            out[pool_id[0]] = self._maps.read(_raw(cpumap, self._cpumap_bytes))
            if pool_id[0] == 0xFFFFFFFF:  # no id after it (id + 1 does not fit the call's uint32_t)
                return out
            first = pool_id[0] + 1

    def clock(self) -> float:
        return time.monotonic()

    boot_id = staticmethod(boot.boot_id)  # clock() is dom0's monotonic clock: it starts again with dom0's boot

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    # --- moving memory between nodes ----------------------------------------------------
    def _check_movable(self, domid: int) -> None:
        rc = lib.xn_mig_check(self._h, domid)
        why = NOT_MOVABLE.get(-rc)
        if why:
            raise HypervisorError(-rc, f"domain {domid} {why}: its memory cannot be moved")
        _check(rc, f"domain {domid}")

    def memory_map(self, domid: int, probe_ms: int = 0) -> MemoryMap:
        self._check_movable(domid)
        # the probe pauses the domain: under a batch record, as a move's pause window
        probe = (records.writable_record_path if probe_ms else records.record_path)(domid, "probe")
        rc, classes, stats = domain_records.memory_scan(ffi, lib, self._h, domid, probe_ms,
                                                        probe.encode() if probe_ms else None)
        if rc < 0 and probe_ms and os.path.exists(probe):
            records.recover(ffi, lib, self._h, domid, probe)  # its unpause failed: the record gives it back
        _check(rc, f"scanning the memory of domain {domid}")
        phases = (("gfns typed", float(stats.typed)), ("types", stats.types_ns / 1e9),
                  ("grants", stats.grants_ns / 1e9), ("layouts", stats.layouts_ns / 1e9))
        return MemoryMap(classes, stats.busy_grants, phases)

    def move_pages(self, domid: int, gfns: Sequence[int], node: int, verify_chunk: int = 16,
                   allow_fallback: bool = False, fault: Optional[str] = None,
                   uuid: Optional[str] = None) -> BatchResult:
        flags = (lib.XN_MIG_ALLOW_FALLBACK if allow_fallback else 0) | (FAULTS[fault] if fault else 0)
        arr, res = ffi.new("uint64_t[]", list(gfns)), ffi.new("struct xn_mig_result *")
        record, handle = records.writable_record_path(domid).encode(), records.handle(ffi, uuid)
        rc = lib.xn_mig_move_as(self._h, domid, handle, arr, len(gfns), node, verify_chunk, flags, record, res)
        if rc < 0 and res.stage == 0:  # refused or failed before any pause: nothing moved
            records.refuse_another(rc, domid, uuid)  # its domid is another domain's now
            self._check_movable(domid)  # a PV or PoD guest's refusal, said as such
            if rc == -errno.EEXIST:
                raise HypervisorError(errno.EEXIST, f"moving memory of domain {domid}: a batch record a dead mover "
                                                    f"left awaits recovery at {record.decode()} "
                                                    f"(xapi-numa memory-moves --recover)")
            _check(rc, f"moving memory of domain {domid}")
        stuck = tuple(gfns[res.stuck_first:res.stuck_first + res.stuck_count]) if res.not_freed else ()
        return BatchResult(res.released, res.moved, res.fallback, res.lost, res.superpages, res.not_freed, stuck,
                           res.raised_max, res.pause_ns / 1e9, STAGES.get(res.stage, str(res.stage)), -res.error,
                           res.granted, res.recognised)

    batch_records = staticmethod(records.domids_with_records)  # a read: creates and removes nothing
    sweep_batch_records = staticmethod(records.sweep_unfinished_records)  # recovery's alone

    def recover_move(self, domid: int) -> Optional[str]:
        return records.recover_all(ffi, lib, self._h, domid)

    def move_blockers(self, domid: int) -> List[str]:
        """PCI passthrough, as the toolstacks record it in xenstore (Xen 4.17 does not
        report a domain's IOMMU use to dom0)."""
        found = []
        for path, what in (("/libxl/{}/device/pci".format(domid), "PCI passthrough (libxl)"),
                           ("/local/domain/0/backend/pci/{}".format(domid), "PCI passthrough (pciback)")):
            try:
                if self._xenstore.exists(path):
                    found.append(what)
            except OSError as err:  # cannot tell: refuse rather than guess
                found.append("unknown devices (xenstore unreadable: {})".format(err))
        # QEMU registers under device-model/<domid>; a PVH guest's QEMU (PV backends only) has no map cache
        try:
            if (self._xenstore.exists("/local/domain/0/device-model/{}".format(domid))
                    and self._xenstore.read("/libxl/{}/type".format(domid)) != "pvh"):
                found.append(DEVICE_MODEL_BLOCKER)
        except OSError as err:
            found.append("unknown devices (xenstore unreadable: {})".format(err))
        return found

    def static_max(self, domid: int) -> Optional[int]:
        # KiB, written by libxl__build_post and xenopsd's Domain.build_post alike (None: missing, unreadable)
        kib = self._xenstore.read("/local/domain/{}/memory/static-max".format(domid))
        return int(kib) << 10 if kib and not kib.strip("0123456789") else None  # ("": an empty node)

    def set_vnuma(self, domid: int, plan: VnumaPlan, ranges: Sequence[MemRange]) -> None:
        xen_vnuma.write(ffi, lib, self._h, domid, plan, ranges)
        self._dumps.layout_set(domid)

    def vnuma(self, domid: int) -> Optional[VnumaLayout]:
        return xen_vnuma.read(ffi, lib, self._h, domid, self._dumps.for_layout(domid))
