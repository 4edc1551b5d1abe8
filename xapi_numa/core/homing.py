"""vCPU homing: a pure planner that brings displaced vCPUs back (snapshot in, actions out).

A vCPU is *displaced* when it runs on a pCPU outside its soft affinity.  The
schedulers may never bring it back: credit1 only steals queued vCPUs and a
vCPU running alone only moves to an idle pCPU; credit2 does not rebalance run
queues of equal load.  A displaced vCPU is *fixable* when a pCPU of its soft
affinity is idle or runs a vCPU that is itself displaced (a swap).

The fix is a temporary hard pin to the soft mask, undone once the vCPU is
home (or after a timeout).  Which vCPUs to pin depends on the scheduler,
as measured on real Xen 4.17:
* credit1: pinning only the displaced vCPUs is enough (the partner, now with
  an idle pCPU in its soft affinity, moves home on its next tick);
* credit2: the load balancer pushes an already-home partner out again, so
  every vCPU of both VMs of a swapped pair is pinned.
VMs whose policy is ``any``, and vCPUs the admin hard-pinned (hard affinity
narrower than the host and not a pin of ours), are left alone.
"""

from typing import Dict, FrozenSet, Iterable, List, Mapping, Set, Tuple

import attrs

from xapi_numa.core.host import VcpuInfo
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.locality import soft_is_narrow


@attrs.frozen
class Pin:
    """Temporarily restrict a vCPU's hard affinity to ``cpus`` (its soft mask)."""

    domid: int
    uuid: str
    vcpu: int
    cpus: FrozenSet[int]
    original_hard: FrozenSet[int]
    reason: str


def displaced(snap: HostSnapshot) -> List[VcpuInfo]:
    """Running vCPUs outside a meaningful soft affinity."""
    topo = snap.topology
    out = []
    for domid, vs in snap.vcpus.items():
        if domid == 0:
            continue
        for v in vs:
            if v.state == "running" and soft_is_narrow(v, topo) and v.cpu not in v.soft:
                out.append(v)
    return out


def fixable(v: VcpuInfo, snap: HostSnapshot, displaced_keys: Set[Tuple[int, int]]) -> bool:
    running = snap.running_on()
    for cpu in v.soft & v.hard:
        other = running.get(cpu)
        if other is None or (other.domid, other.vcpu) in displaced_keys:
            return True
    return False


def plan(snap: HostSnapshot, displaced_since: Mapping[Tuple[int, int], float], threshold: float,
         scheduler: str, excluded: Iterable[int] = (), pinned: Iterable[Tuple[int, int]] = ()) -> List[Pin]:
    """Pins that bring home the vCPUs displaced for at least ``threshold`` seconds.

    ``excluded``: domids to leave alone (policy ``any``, strict, admin pins);
    ``pinned``: vCPUs already under a temporary pin of ours.
    """
    excluded = set(excluded)
    pinned = set(pinned)
    all_cpus = snap.topology.all_cpus
    uuids = {d.domid: d.uuid for d in snap.domains}
    out = displaced(snap)
    keys = {(v.domid, v.vcpu) for v in out}
    due = [v for v in out
           if v.domid not in excluded and (v.domid, v.vcpu) not in pinned
           and v.hard >= all_cpus  # an admin pin is the admin's business
           and snap.time - displaced_since.get((v.domid, v.vcpu), snap.time) >= threshold
           and fixable(v, snap, keys)]
    if not due:
        return []
    targets: Dict[Tuple[int, int], VcpuInfo] = {(v.domid, v.vcpu): v for v in due}
    if scheduler == "credit2":
        # every vCPU of each VM involved, and of the VMs whose displaced vCPUs sit on their homes
        running = snap.running_on()
        involved: Set[int] = {v.domid for v in due}
        for v in due:
            for cpu in v.soft:
                other = running.get(cpu)
                if other is not None and (other.domid, other.vcpu) in keys and other.domid not in excluded:
                    involved.add(other.domid)
        for domid in involved:
            for v in snap.vcpus.get(domid, ()):
                if soft_is_narrow(v, snap.topology) and v.hard >= all_cpus and (domid, v.vcpu) not in pinned:
                    targets.setdefault((domid, v.vcpu), v)
    return [Pin(v.domid, uuids.get(v.domid, ""), v.vcpu, v.soft & v.hard, v.hard,
                "displaced" if (v.domid, v.vcpu) in keys else "partner of a displaced vCPU")
            for _, v in sorted(targets.items())]
