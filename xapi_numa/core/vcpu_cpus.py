"""The CPUs each vCPU of a placed VM may use: the one order of the two masks (pure).

Two masks narrow a VM's vCPUs beside its nodes: the host's guest mask (xapi's host
``guest_VCPUs_params:mask``, one CPU list for every guest of the host) and the VM's
own ``VCPUs_params:mask`` (maybe one list per vCPU).  The boot pin ``place`` writes,
the CPUs its answer names, and the hard and soft affinity settling writes all come
from :func:`vcpu_cpus`, so that they never differ.
"""
from typing import FrozenSet, Iterable, Optional

from xapi_numa.core.cpuset import within
from xapi_numa.core.topology import Topology
from xapi_numa.core.vcpu_mask import VcpuMask


def vcpu_cpus(topo: Topology, nodes: Iterable[int], host_cpus: Optional[FrozenSet[int]],
              mask: Optional[VcpuMask]) -> VcpuMask:
    """Each vCPU's CPUs on ``nodes`` (:meth:`Topology.cpus_near`), the host's guest mask
    (``host_cpus``, None for none) applied first and the vCPU's own mask (``mask``, None
    for none) inside what it leaves:

    1. the nodes' CPUs inside the host's guest mask (all the nodes' CPUs only where the
       host mask has none of them: never an empty mask, which Xen refuses);
    2. the vCPU's own CPUs there; if its own list has none there, the CPUs the VM's mask
       as a whole has there; if neither, every CPU of step 1.

    Why the host mask first: xapi filters each vCPU's list by it at a start (a vCPU whose
    own list has no CPU in it is given an empty list, which nothing here relies on),
    and an admin sets it (``xe host-cpu-tune``) to keep every guest off some
    CPUs, dom0's say.  So a vCPU whose own mask and the host mask do not meet runs
    inside the host mask, near its memory, never on the CPUs kept from guests; the
    VM's own mask still decides wherever the two meet."""
    chosen = within(topo.cpus_near(nodes), host_cpus)
    if mask is None:
        return VcpuMask([chosen])
    return VcpuMask([own & chosen or mask.cpus & chosen or chosen for own in mask.masks])
