"""CPU pools as the runtime planners see them: the pCPUs per node that guests may run
on, and the nodes a VM's own pool reaches (its vCPUs can run nowhere else).  Both stay
inside the host's guest mask (xapi's ``guest_VCPUs_params:mask``, which it intersects
with every VM's hard affinity at a start: :attr:`HostSnapshot.unpinned`)."""
from typing import Dict, FrozenSet, Optional

from xapi_numa.core.snapshot import HostSnapshot


def guest_capacity(snap: HostSnapshot) -> Dict[int, float]:
    """pCPUs per node that guests may run on: those of their CPU pools (dom0's own pool,
    on a host split that way, is no home for a guest)."""
    pools = {d.cpupool for d in snap.domains if d.domid != 0}
    cpus = frozenset().union(*(snap.pools.get(p, snap.topology.all_cpus) for p in pools)) if pools \
        else snap.topology.all_cpus
    cpus &= snap.unpinned
    return {n.id: float(len(n.cpus & cpus)) for n in snap.topology.nodes}


def within_pool(allowed: Optional[FrozenSet[int]], snap: HostSnapshot, domid: int) -> Optional[FrozenSet[int]]:
    """The nodes a VM's home may move to: those whose pCPUs are all in its CPU pool (its
    vCPUs can run nowhere else, and a home is all of a node's pCPUs) with some that the
    host's guest mask lets guests use (a node outside it would get the VM's memory while
    its vCPUs stayed away), within its ``preferred`` list if it has one."""
    if not snap.pools and snap.guest_cpus is None:
        return allowed
    cpus, usable = snap.pool_cpus(domid), snap.unpinned
    pool = frozenset(n.id for n in snap.topology.nodes if n.cpus and n.cpus <= cpus and n.cpus & usable)
    return pool if allowed is None else allowed & pool
