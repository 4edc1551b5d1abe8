"""An in-memory host behind the Hypervisor port, for timing xapi-numa's own work.

Each read builds its answer afresh as the Xen adapter (``backends/xen.py``)
does from libxenuma's buffers: the topology from its arrays, a record per
domain, a record per vCPU with its hard and soft affinity decoded from bit
maps (bytes, as Xen returns them) and cut to the online CPUs.  What it does
not model is the hypercalls themselves: it counts, per read, those the Xen
adapter makes (:attr:`MemHost.hypercalls`), so that a figure measured here can
be read as "xapi-numa's Python work, plus that many hypercalls".  Only the
reads a placement needs are implemented; anything else raises.
"""
import errno
import time
import uuid as uuidlib
from typing import Dict, FrozenSet, List, Optional, Sequence

from xapi_numa.core.live_domains import LiveDomains, uuid_text
from xapi_numa.core.cpuset import BitmapReader
from xapi_numa.core.host import DomainInfo, NodeMemory, VcpuInfo
from xapi_numa.core.topology import Topology
from xapi_numa.errors import HypervisorError
from xapi_numa.ports.hypervisor import Capabilities, Hypervisor


def _bitmap(cpus: FrozenSet[int], nbytes: int) -> bytes:
    out = bytearray(nbytes)
    for c in cpus:
        out[c // 8] |= 1 << (c % 8)
    return bytes(out)




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
        self.maps = BitmapReader()  # the Xen adapter's decoding of Xen's bit maps

    def add_domain(self, domid: int, uuid: str, memory: int, hard: List[FrozenSet[int]],
                   soft: List[FrozenSet[int]]) -> None:
        vcpus = tuple((min(h & s or h), _bitmap(h, self.nbytes), _bitmap(s, self.nbytes)) for h, s in zip(hard, soft))
        self.records[domid] = (uuidlib.UUID(uuid).bytes, vcpus, memory)  # Xen keeps the handle's bytes

    # --- the reads a placement makes ----------------------------------------------------
    def capabilities(self) -> Capabilities:
        return Capabilities("credit2", False, {"claims": "native", "node_claims": "unavailable"})

    def topology(self) -> Topology:
        self.hypercalls += 2  # xc_numainfo, xc_cputopoinfo
        return Topology.from_arrays(self.cpu_to_node, self.distances, self.sizes, self.free,
                                    cpu_to_core=self.cpu_to_core, cpu_to_socket=self.cpu_to_socket)

    def node_memory(self) -> List[NodeMemory]:
        self.hypercalls += 1  # xc_numainfo
        return [NodeMemory(i, s, f, 0) for i, (s, f) in enumerate(zip(self.sizes, self.free))]

    def domains(self) -> List[DomainInfo]:
        self.hypercalls += len(self.records) // 256 + 1  # xc_domain_getinfolist, 256 at a time
        return [self._info(domid) for domid in self.records]  # (and a xenstore read per name, once per process)

    def domain_uuids(self) -> LiveDomains:
        self.hypercalls += len(self.records) // 256 + 1
        return LiveDomains(list(self.records), b"".join(handle for handle, _, _ in self.records.values()))

    def domain(self, domid: int, named: bool = True) -> Optional[DomainInfo]:
        self.hypercalls += 1
        return self._info(domid) if domid in self.records else None

    def _info(self, domid: int) -> DomainInfo:
        handle, vcpus, memory = self.records[domid]
        return DomainInfo(domid, "vm-{}".format(domid), uuid_text(handle), len(vcpus), memory, memory, False, "hvm",
                          0, 0)

    def claims_outstanding(self) -> int:
        self.hypercalls += 1  # xc_physinfo's outstanding_pages
        return 0  # nothing claimed: the reservations are not built yet

    def vcpus(self, domid: int) -> List[VcpuInfo]:
        if domid not in self.records:
            raise HypervisorError(errno.ESRCH, "no such domain {}".format(domid))
        _, vcpus, _ = self.records[domid]
        self.hypercalls += 1 + 2 * len(vcpus)  # the domain's record; per vCPU its info and affinity
        return [VcpuInfo(domid, v, cpu, "running", self.maps.read(hard, self.online),
                          self.maps.read(soft, self.online))
                for v, (cpu, hard, soft) in enumerate(vcpus)]

    def node_pages(self, domid: int) -> Dict[int, int]:
        raise HypervisorError(errno.ESRCH, "no such domain {}".format(domid))  # reserved VMs are not built yet

    def clock(self) -> float:
        return time.monotonic()

    def cpupools(self) -> Dict[int, FrozenSet[int]]:
        return {0: self.online}

    # --- not needed for a placement --------------------------------------------------------
    def _unused(self, *args, **kwargs):
        raise NotImplementedError("MemHost models a placement's reads only")

    sleep = set_vcpu_affinity = node_affinity = set_node_affinity = pause = unpause = claim = _unused
    memory_map = move_pages = move_blockers = recover_move = set_vnuma = vnuma = _unused
