"""A place's answer (:func:`describe`), and a what-if's (:func:`place_what_if`): where a VM of a
size and policy would go on this host, bounded as a VM's place is (:mod:`.start_placement`)."""
from typing import FrozenSet, Optional

import attrs

from xapi_numa.core.placement import Planner, Request
from xapi_numa.core.vcpu_cpus import vcpu_cpus
from xapi_numa.core.vcpu_mask import VcpuMask
from xapi_numa.ops.place_request import host_mask, sized_request
from xapi_numa.ops.reserve import place_and_reserve
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.ledger import Ledger


def describe(planner: Planner, placement, reservation, loads, *, host_cpus: Optional[FrozenSet[int]],
             mask: Optional[VcpuMask], dtype: str, target: int, vm: Optional[str] = None) -> dict:
    """A place's answer.  Its ``soft`` (or, for a strict policy, ``hard``) CPUs are those the
    VM's vCPUs get on the chosen nodes, as the boot pin written for them
    (:func:`~xapi_numa.core.vcpu_cpus.vcpu_cpus`): inside the host's guest mask
    (``host_cpus``, None for none) and the VM's own mask (``mask``, None for none or no
    VM), never a whole node's CPUs that guests there cannot use.  Where the vCPUs' own
    masks differ, the answer names their union (every CPU some vCPU may use, as settling
    reports its hard affinity); the VM's ``VCPUs_params:mask`` has each vCPU's.  Its
    ``domain_type`` is the guest type whose build the placement predicted (``dtype``: pv, pvh or
    hvm; a pv_in_pvh VM builds as pvh; a VM's own type, :func:`.place_request.domain_type_of`, also where its
    populate-on-demand build is predicted as PV's RAM); its ``memory_target`` the bytes the start
    was planned with (``target``, the request's memory: for a VM its start target as xenopsd
    builds it, :func:`.place_request.start_target`), video RAM included, the overhead not."""
    topo = planner.topology
    available = loads.available()
    cpus = vcpu_cpus(topo, placement.nodes, host_cpus, mask).cpus
    result = attrs.evolve(placement, soft=cpus if placement.soft is not None else None,
                          hard=cpus if placement.hard is not None else None).to_dict(topo)
    # the reservation as `reservations` lists it, but for the owner token (the placing call's own)
    shown = {k: v for k, v in reservation.to_dict().items() if k != "owner"} if reservation else None
    result.update(vm=vm, domain_type=dtype, memory_target=target, reserved=reservation is not None, reservation=shown,
                  max_distance=max(topo.distance(a, b) for a in placement.nodes for b in placement.nodes),
                  # what the chosen nodes still have after other starts' reservations and this VM
                  headroom=sum(max(0, available[n] - placement.bytes_per_node.get(n, 0)) for n in placement.nodes))
    return result


def place_what_if(hv: Hypervisor, ledger: Ledger, request: Request, session=None,
                  host_uuid: Optional[str] = None) -> dict:
    """Where a VM of ``request``'s size and policy would go on this host, reserving nothing:
    inside this host's (``host_uuid``'s) guest mask, read and applied as
    :func:`.start_placement.place_vm` does, so that a what-if answers (or is refused) as a VM's dry run would."""
    planner = Planner(hv.topology())
    host_cpus = host_mask(session, host_uuid)
    request = sized_request(request, planner.topology, host_cpus)
    return describe(planner, *place_and_reserve(hv, ledger, request, None, dry_run=True, planner=planner),
                    host_cpus=host_cpus, mask=None, dtype=request.dtype, target=request.memory)


