"""One consistent read of a host, as a value: what the runtime planners look at.

Taken through the Hypervisor port in one go by :func:`xapi_numa.ops.observe.take`
(topology, domains, vCPUs, pages per node when asked), so that every planner is
a pure function of a :class:`HostSnapshot`.
"""
from typing import Dict, FrozenSet, Mapping, Optional, Tuple

import attrs

from xapi_numa.core.cpuset import within
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.topology import Topology


@attrs.frozen
class HostSnapshot:
    topology: Topology
    time: float
    domains: Tuple[DomainInfo, ...]
    vcpus: Mapping[int, Tuple[VcpuInfo, ...]]
    pages: Mapping[int, Mapping[int, int]] = attrs.field(factory=dict)
    scheduler: str = "credit2"
    pools: Mapping[int, FrozenSet[int]] = attrs.field(factory=dict)  # CPU pool -> its pCPUs (empty: unknown)
    # uuid -> domid of domains that are there but whose vCPUs could not be read this time: left
    # out of ``domains``, yet not gone (what is remembered of them, their pins first, is kept)
    unread: Mapping[str, int] = attrs.field(factory=dict)
    # the host's guest mask (guest_VCPUs_params:mask, from xapi), None where it has none or
    # xapi is not asked: every guest's hard affinity stays inside it, settled ones included
    guest_cpus: Optional[FrozenSet[int]] = None
    # why that mask cannot be read now (None: it can): every VM is then left alone, never
    # placed as if the host had no mask (ops.left_alone); guest_cpus is then None
    guest_mask_error: Optional[str] = None

    @property
    def unpinned(self) -> FrozenSet[int]:
        """The hard affinity that pins nothing: every CPU a guest may use here.  A hard
        affinity that covers it is nobody's pin; a narrower one is an admin's (or ours)."""
        return within(self.topology.all_cpus, self.guest_cpus)

    def pool_cpus(self, domid: int) -> FrozenSet[int]:
        """The pCPUs the domain's vCPUs may run on at all (its CPU pool's)."""
        d = self.domain(domid)
        if d is None or d.cpupool not in self.pools:
            return self.topology.all_cpus
        return self.pools[d.cpupool]

    def domain(self, domid: int) -> Optional[DomainInfo]:
        for d in self.domains:
            if d.domid == domid:
                return d
        return None

    def by_uuid(self) -> Dict[str, DomainInfo]:
        return {d.uuid: d for d in self.domains}

    def running_on(self) -> Dict[int, VcpuInfo]:
        """pCPU -> the vCPU running there."""
        out = {}
        for vs in self.vcpus.values():
            for v in vs:
                if v.state == "running":
                    out[v.cpu] = v
        return out
