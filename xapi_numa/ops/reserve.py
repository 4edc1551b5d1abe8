"""Placing a VM that is about to start: snapshot -> decision -> reservation.

Reads the world once (free memory and claims from the hypervisor, other
starts' reservations from the ledger, vCPU homes), asks the pure planner,
then reserves in the ledger, which re-checks against fresh free memory in its
own transaction.  If another start took the memory in between, it plans again
with fresh numbers (optimistic concurrency; nobody waits on a global lock).
"""

import uuid as uuidlib
from typing import Optional, Tuple

from xapi_numa.errors import NoCapacity, NumaError
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.ledger import DEFAULT_TTL, Ledger, Reservation
from xapi_numa.core.placement import NodeLoads, Placement, Planner, Request

ATTEMPTS = 8


def node_loads(hv: Hypervisor, ledger: Optional[Ledger], topology=None) -> NodeLoads:
    """Per-node free memory (less hypervisor claims), reservations and vCPU homes."""
    topology = topology or hv.topology()
    reserved = ledger.outstanding() if ledger is not None else {}
    vcpus = [0] * len(topology.nodes)
    for dom in hv.domains():
        if dom.domid == 0:
            continue
        try:
            infos = hv.vcpus(dom.domid)
        except NumaError:
            continue  # the domain went away meanwhile
        for v in infos:
            home = topology.nodes_of_cpus(v.soft & v.hard) if v.soft & v.hard else topology.nodes_of_cpus(v.hard)
            if len(home) == 1:
                vcpus[next(iter(home))] += 1
    memory = sorted(hv.node_memory(), key=lambda m: m.node)
    return NodeLoads([m.claimable for m in memory], [reserved.get(m.node, 0) for m in memory], vcpus)


def claimable_now(hv: Hypervisor):
    return lambda: {m.node: m.claimable for m in hv.node_memory()}


def place_and_reserve(hv: Hypervisor, ledger: Optional[Ledger], request: Request, vm: Optional[str] = None,
                      ttl: float = DEFAULT_TTL, dry_run: bool = False,
                      planner: Optional[Planner] = None) -> Tuple[Placement, Optional[Reservation], NodeLoads]:
    """Decide where the VM goes and, unless ``dry_run``, reserve it.

    Other starts' reservations count in both cases (a dry run reads them);
    the ledger is reconciled first, so memory of domains already built is
    not counted twice (once landed, once reserved).
    """
    planner = planner or Planner(hv.topology())
    if ledger is not None:
        ledger.reconcile(hv)
    last: Optional[NoCapacity] = None
    for _ in range(ATTEMPTS):
        loads = node_loads(hv, ledger, planner.topology)
        placement = planner.place(loads, request)
        if dry_run or ledger is None:
            return placement, None, loads
        try:
            reservation = ledger.reserve(vm or new_vm_key(), placement.bytes_per_node, ttl, claimable_now(hv))
            return placement, reservation, loads
        except NoCapacity as err:
            last = err  # another start got there first: plan again with fresh numbers
            ledger.reconcile(hv)
    raise NoCapacity(f"could not reserve after {ATTEMPTS} attempts; last refusal: {last.message}",
                     last.params if last else ())


def new_vm_key() -> str:
    return f"adhoc-{uuidlib.uuid4()}"
