"""An in-memory host behind the Hypervisor port, for timing xapi-numa's own work.

Each read builds its answer afresh as the Xen adapter (``backends/xen.py``)
does from libxenuma's buffers: the topology, free memory and the live
domains through the adapter's own code (``xen_topology``, ``xen_domains``)
over a fake libxenuma that copies tables laid out as Xen's into its buffers,
a record per domain, a record per vCPU with its hard and soft affinity
decoded from bit maps (bytes, as Xen returns them) and cut to the online
CPUs.  What it does not model is the hypercalls themselves: it counts those
the Xen adapter's reads make (:attr:`MemHost.hypercalls`): the libxenuma calls
the adapter makes for each read (:attr:`MemHost.calls`: those of the adapter's
code run here are made on the fake library, the others are named by each read
as the adapter makes them; tests/test_bench_memhost.py runs the adapter itself
to check them), each costing the hypercalls libxenuma makes for it
(:data:`XN_HYPERCALLS`), so that a figure measured here can be read as
"xapi-numa's Python work, plus that many hypercalls".  Not modelled: the DMA
zone's free memory (0; its reads are counted).  It counts the reads of each
port method too (:attr:`MemHost.reads`: what a decision reads once is read
once).  Only the reads a placement needs are implemented; anything else raises.
"""
import bisect
import collections
import errno
import os
import time
import uuid as uuidlib
from typing import Dict, FrozenSet, List, Optional, Sequence

import cffi

from xapi_numa.backends import xen_domains, xen_topology
from xapi_numa.backends.libxenuma_abi import declarations
from xapi_numa.core import dma_zone
from xapi_numa.core.live_domains import LiveDomains, uuid_text
from xapi_numa.core.cpuset import BitmapReader
from xapi_numa.core.host import DomainInfo, NodeMemory, VcpuInfo
from xapi_numa.core.topology import Topology
from xapi_numa.errors import HypervisorError
from xapi_numa.ports.hypervisor import Capabilities, Hypervisor


FFI = cffi.FFI()  # libxenuma's declarations, read from its header as the dom0 loader reads them
with open(os.path.join(os.path.dirname(__file__), "..", "libxenuma", "src", "libxenuma.h")) as _header:
    FFI.cdef(declarations(_header.read()))


# Hypercalls each libxenuma call makes (libxenuma/src/libxenuma.c, with XenServer 9's node-page
# query built in; tests/test_bench_memhost.py reads them from there): a table's size is asked first
# (numainfo, cputopo), physinfo asks the scheduler too, the features probe the node-page query once.
# xn_node_free_below makes one more, the first time on a handle (the online nodes, read once).
XN_HYPERCALLS = {"xn_numainfo": 2, "xn_cputopo": 2, "xn_physinfo": 2, "xn_domains": 1, "xn_features": 1,
                 "xn_node_pages_native": 1, "xn_node_free_below": 1, "xn_xen_commandline": 1, "xn_vcpu_info": 1,
                 "xn_vcpu_get_affinity": 1}


def _bitmap(cpus: FrozenSet[int], nbytes: int) -> bytes:
    out = bytearray(nbytes)
    for c in cpus:
        out[c // 8] |= 1 << (c % 8)
    return bytes(out)




def _check(rc: int, what: str) -> int:
    return rc


class FakeLibxenuma:
    """libxenuma's reads over the host's tables, each a copy of memory already laid out
    as Xen's (what the hypercall's copy-out costs is not what this host measures)."""
    XN_DOM_DYING = 1

    def __init__(self, host: "MemHost") -> None:
        self.made = host.made  # (each call counted as the host's)
        domids = sorted(host.records)
        self.domids = domids
        self.records = FFI.new("struct xn_domain[]", max(1, len(domids)))
        for i, domid in enumerate(domids):
            handle, vcpus, memory = host.records[domid]
            r = self.records[i]
            r.domid, r.tot_pages, r.max_pages, r.nr_online_vcpus = domid, memory >> 12, memory >> 12, len(vcpus)
            r.max_vcpu_id, r.handle = len(vcpus) - 1, list(handle)
        nodes, count = len(host.sizes), len(host.cpu_to_node)
        self.size, self.free = FFI.new("uint64_t[]", host.sizes), FFI.new("uint64_t[]", host.free)
        self.dist = FFI.new("uint32_t[]", [d for row in host.distances for d in row])
        self.core, self.socket = FFI.new("uint32_t[]", host.cpu_to_core), FFI.new("uint32_t[]", host.cpu_to_socket)
        self.node = FFI.new("uint32_t[]", host.cpu_to_node)
        self.nodes, self.cpus = nodes, count

    def xn_numainfo(self, handle, n, size, free, dist) -> int:
        self.made("xn_numainfo")
        n[0] = self.nodes
        FFI.memmove(size, self.size, 8 * self.nodes)
        FFI.memmove(free, self.free, 8 * self.nodes)
        FFI.memmove(dist, self.dist, 4 * self.nodes * self.nodes)
        return 0

    def xn_cputopo(self, handle, n, core, socket, node) -> int:
        self.made("xn_cputopo")
        n[0] = self.cpus
        for out, table in ((core, self.core), (socket, self.socket), (node, self.node)):
            FFI.memmove(out, table, 4 * self.cpus)
        return 0

    def xn_physinfo(self, handle, info) -> int:
        self.made("xn_physinfo")
        info.nr_cpus, info.max_cpu_id, info.nr_nodes = self.cpus, self.cpus - 1, self.nodes
        return 0

    def xn_domains(self, handle, first, count, out) -> int:
        self.made("xn_domains")
        start = bisect.bisect_left(self.domids, first)
        got = max(0, min(count, len(self.domids) - start))
        FFI.memmove(out, self.records + start, got * FFI.sizeof("struct xn_domain"))
        return got


class MemHost(Hypervisor):
    """A host of ``topology`` whose free memory per node is ``free`` (bytes)."""

    def __init__(self, topology: Topology, free: Sequence[int]) -> None:
        self.cpu_to_node = [c.node for c in topology.cpus]
        self.cpu_to_core = [c.core for c in topology.cpus]
        self.cpu_to_socket = [c.socket for c in topology.cpus]
        self.distances = [list(row) for row in topology.distances]
        self.sizes = [n.memory_size for n in topology.nodes]
        self.free = list(free)
        self.nbytes = (len(self.cpu_to_node) + 7) // 8
        self.online = frozenset(range(len(self.cpu_to_node)))
        self.records: Dict[int, tuple] = {}  # domid -> (handle, vcpus as (cpu, hard map, soft map), bytes)
        self.hypercalls = 0
        self.calls: List[str] = []  # the libxenuma calls the Xen adapter would have made, in order
        self._nodes_known = False  # (libxenuma reads the online nodes once per handle)
        self._dma_width: Optional[int] = None  # (Xen's, read once by the adapter from Xen's command line)
        self._dma_read = False
        self.reads: Dict[str, int] = collections.Counter()  # port method -> calls made of it
        self.maps = BitmapReader()  # the Xen adapter's decoding of Xen's bit maps
        self._lib: Optional[FakeLibxenuma] = None
        self.building: Dict[int, Dict[int, int]] = {}  # domid -> pages landed per node, of builds under way

    def add_domain(self, domid: int, uuid: str, memory: int, hard: List[FrozenSet[int]],
                   soft: List[FrozenSet[int]], building: Optional[Dict[int, int]] = None) -> None:
        """``building``: a domain still being built (paused), with the pages per node landed so far."""
        vcpus = tuple((min(h & s or h), _bitmap(h, self.nbytes), _bitmap(s, self.nbytes)) for h, s in zip(hard, soft))
        self.records[domid] = (uuidlib.UUID(uuid).bytes, vcpus, memory)  # Xen keeps the handle's bytes
        if building is not None:
            self.building[domid] = dict(building)
        self._lib = None  # (laid out again at the next read)

    def made(self, *calls: str) -> None:
        """The adapter made these libxenuma calls: counted, with their hypercalls."""
        for call in calls:
            self.calls.append(call)
            self.hypercalls += XN_HYPERCALLS[call]
            if call == "xn_node_free_below" and not self._nodes_known:
                self.hypercalls, self._nodes_known = self.hypercalls + 1, True

    # --- the reads a placement makes ----------------------------------------------------
    def capabilities(self) -> Capabilities:
        self.reads["capabilities"] += 1
        self.made("xn_features", "xn_physinfo")  # (the node-page probe; physinfo for the scheduler)
        return Capabilities("credit2", False, {"claims": "native", "node_claims": "unavailable"})

    def topology(self) -> Topology:
        self.reads["topology"] += 1
        return xen_topology.topology(FFI, self.lib(), None, _check, self._no_parked_cpus)[0]

    @staticmethod
    def _no_parked_cpus() -> FrozenSet[int]:
        raise AssertionError("every CPU of the bench's host is online: the pools are never read")

    def node_memory(self) -> List[NodeMemory]:
        self.reads["node_memory"] += 1
        sizes, frees, _ = xen_topology.numainfo(FFI, self.lib(), None, _check)
        if not self._dma_read:  # Xen's DMA width, from its command line (none given here: its default)
            self.made("xn_xen_commandline")
            self._dma_width, self._dma_read = dma_zone.dma_width("", sizes), True
        if self._dma_width:  # each node's free memory in the DMA zone
            self.made(*["xn_node_free_below"] * len(sizes))
        return [NodeMemory(i, s, f, 0) for i, (s, f) in enumerate(zip(sizes, frees))]

    def lib(self) -> FakeLibxenuma:
        if self._lib is None:
            self._lib = FakeLibxenuma(self)
        return self._lib

    def domains(self) -> List[DomainInfo]:
        self.reads["domains"] += 1
        self.made(*["xn_domains"] * (len(self.records) // xen_domains.BATCH + 1))  # a batch at a time
        return [self._info(domid) for domid in self.records]  # (and a xenstore read per name, once per process)

    def domain_uuids(self) -> LiveDomains:
        self.reads["domain_uuids"] += 1
        return xen_domains.uuids(FFI, self.lib(), None, _check)

    def domain(self, domid: int, named: bool = True) -> Optional[DomainInfo]:
        self.reads["domain"] += 1
        self.made("xn_domains")  # (one record)
        return self._info(domid) if domid in self.records else None

    def _info(self, domid: int) -> DomainInfo:
        handle, vcpus, memory = self.records[domid]
        landed = sum(self.building.get(domid, {}).values()) << 12
        return DomainInfo(domid, "vm-{}".format(domid), uuid_text(handle), len(vcpus), landed or memory, memory,
                          domid in self.building, "hvm", 0, 0)

    def claims_outstanding(self) -> int:
        self.reads["claims_outstanding"] += 1
        self.made("xn_physinfo")  # (its outstanding pages)
        return 0  # nothing claimed: the reservations are not built yet

    def vcpus(self, domid: int) -> List[VcpuInfo]:
        self.reads["vcpus"] += 1
        if domid not in self.records:
            raise HypervisorError(errno.ESRCH, "no such domain {}".format(domid))
        _, vcpus, _ = self.records[domid]
        self.made("xn_domains", *["xn_vcpu_info", "xn_vcpu_get_affinity"] * len(vcpus))  # its record; per vCPU
        return [VcpuInfo(domid, v, cpu, "running", self.maps.read(hard, self.online),
                          self.maps.read(soft, self.online))
                for v, (cpu, hard, soft) in enumerate(vcpus)]

    def node_pages(self, domid: int) -> Dict[int, int]:
        """Asked of the domains still being built only (a start reconciles their reservations):
        the node count (numainfo), then XenServer 9's node-page query (stock Xen's debug-key dump
        costs far more)."""
        self.reads["node_pages"] += 1
        if domid not in self.building:
            raise HypervisorError(errno.ESRCH, "no such domain being built: {}".format(domid))
        self.made("xn_numainfo", "xn_node_pages_native")
        return dict(self.building[domid])

    def clock(self) -> float:
        return time.monotonic()

    def cpupools(self) -> Dict[int, FrozenSet[int]]:
        self.reads["cpupools"] += 1
        return {0: self.online}

    # --- not needed for a placement --------------------------------------------------------
    def _unused(self, *args, **kwargs):
        raise NotImplementedError("MemHost models a placement's reads only")

    sleep = set_vcpu_affinity = node_affinity = set_node_affinity = pause = unpause = claim = _unused
    memory_map = move_pages = move_blockers = recover_move = set_vnuma = vnuma = _unused
