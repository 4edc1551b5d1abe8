"""One consistent read of a host, for the planners: world -> snapshot.

Everything the runtime planners look at, taken through the Hypervisor port
in one go (topology, domains, vCPUs, pages per node when asked), so that
planners are pure functions of a value.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

import attrs

from .errors import NumaError
from .hypervisor import DomainInfo, Hypervisor, VcpuInfo
from .topology import Topology


@attrs.frozen
class HostSnapshot:
    topology: Topology
    time: float
    domains: Tuple[DomainInfo, ...]
    vcpus: Mapping[int, Tuple[VcpuInfo, ...]]
    pages: Mapping[int, Mapping[int, int]] = attrs.field(factory=dict)

    def domain(self, domid: int) -> Optional[DomainInfo]:
        for d in self.domains:
            if d.domid == domid:
                return d
        return None

    def running_on(self) -> Dict[int, VcpuInfo]:
        """pCPU -> the vCPU running there."""
        out = {}
        for vs in self.vcpus.values():
            for v in vs:
                if v.state == "running":
                    out[v.cpu] = v
        return out


def take(hv: Hypervisor, now: float, with_pages: bool = False) -> HostSnapshot:
    domains = tuple(d for d in hv.domains())
    vcpus: Dict[int, Tuple[VcpuInfo, ...]] = {}
    pages: Dict[int, Dict[int, int]] = {}
    for d in domains:
        try:
            vcpus[d.domid] = tuple(hv.vcpus(d.domid))
            if with_pages and d.domid != 0:
                pages[d.domid] = dict(hv.node_pages(d.domid))
        except NumaError:
            continue  # the domain went away during the read
    return HostSnapshot(hv.topology(), now, tuple(d for d in domains if d.domid in vcpus), vcpus, pages)
