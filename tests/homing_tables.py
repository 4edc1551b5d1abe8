"""Shared pieces of the homing table tests: a 2-node host with 4 pCPUs per node
(node 0: CPUs 0-3, node 1: CPUs 4-7), vCPUs and snapshots built from a few fields."""
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology

TOPO = Topology.uniform(2, 4, 4 << 30)
ALL = TOPO.all_cpus
N0, N1 = TOPO.cpus_of_nodes([0]), TOPO.cpus_of_nodes([1])


def vcpu(domid, n, cpu, soft, hard=ALL, state="running"):
    return VcpuInfo(domid, n, cpu, state, frozenset(hard), frozenset(soft))


def snap(vcpus, time=10.0, scheduler="credit2", paused=()):
    """A snapshot of these vCPUs' domains (each 1 GiB, UUID ``uuid-<domid>``)."""
    by_dom = {}
    for v in vcpus:
        by_dom.setdefault(v.domid, []).append(v)
    doms = tuple(DomainInfo(d, "vm{}".format(d), "uuid-{}".format(d), len(vs), 1 << 30, 1 << 30, d in paused)
                 for d, vs in sorted(by_dom.items()))
    return HostSnapshot(TOPO, time, doms, {d: tuple(vs) for d, vs in by_dom.items()}, {}, scheduler)
