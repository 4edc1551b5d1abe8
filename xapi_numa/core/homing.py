"""vCPU homing: bring displaced vCPUs back (pure: snapshot and pin records in, actions out).

A vCPU is *displaced* when it runs on a pCPU outside its soft affinity.  The
schedulers may never bring it back: credit1 only steals queued vCPUs and a
vCPU running alone only moves to an idle pCPU; credit2 does not rebalance run
queues of equal load.  A displaced vCPU is *fixable* when a pCPU of its soft
affinity (an online pCPU of its cpupool: its hard affinity says which) is idle
or runs a vCPU that is itself displaced (a swap).

The fix is a temporary hard pin to the soft mask (:class:`PinTemporarily`),
undone (:class:`RestorePin`) once the vCPU is home or after a timeout.  Which
vCPUs to pin depends on the scheduler, as measured on real Xen 4.17:

* credit1: pinning only the displaced vCPUs is enough (the partner, now with
  an idle pCPU in its soft affinity, moves home on its next tick);
* credit2: pinning both displaced vCPUs of a swapped pair in the same cycle
  keeps the run queues' loads equal, so the balancer has no reason to move
  anyone; where it still pushes a VM out again soon after its pins are undone
  (:func:`bounced`), the next round pins every vCPU of both VMs of the pair,
  which holds (measured on real Xen 4.17).

VMs the caller excludes (policy ``any`` or ``strict``, a memory move in
flight) and vCPUs the admin hard-pinned (hard affinity narrower than the host
and not a pin of ours) are left alone.  A pin is undone only while the vCPU's
hard affinity is still our pin: if the admin set another one meanwhile, the
record is dropped and the admin's choice stays.
"""
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import attrs

from xapi_numa.core.actions import PinTemporarily, RestorePin
from xapi_numa.core.host import VcpuInfo
from xapi_numa.core.locality import soft_is_narrow
from xapi_numa.core.snapshot import HostSnapshot

VcpuKey = Tuple[int, int]  # (domid, vcpu)


@attrs.frozen
class PinRecord:
    """A temporary pin of ours, as journalled before it was made."""

    uuid: str
    vcpu: int
    domid: int
    pinned_to: FrozenSet[int]
    original_hard: FrozenSet[int]
    pinned_at: float


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


def fixable(v: VcpuInfo, running: Mapping[int, VcpuInfo], displaced_keys: Set[VcpuKey],
            usable: FrozenSet[int]) -> bool:
    """Is a pCPU of its home free, or held by another displaced vCPU?  Only pCPUs it
    may run on count: in its hard affinity, online, and in its CPU pool (``usable``)."""
    for cpu in v.soft & v.hard & usable:
        other = running.get(cpu)
        if other is None or (other.domid, other.vcpu) in displaced_keys:
            return True
    return False


def displaced_since(snap: HostSnapshot, previous: Mapping[VcpuKey, float]) -> Dict[VcpuKey, float]:
    """When each currently displaced vCPU was first seen displaced."""
    return {(v.domid, v.vcpu): previous.get((v.domid, v.vcpu), snap.time) for v in displaced(snap)}


def plan(snap: HostSnapshot, since: Mapping[VcpuKey, float], threshold: float,
         excluded: Iterable[int] = (), pinned: Iterable[VcpuKey] = (),
         escalate: Iterable[int] = ()) -> List[PinTemporarily]:
    """Pins that bring home the vCPUs displaced for at least ``threshold`` seconds.

    ``excluded``: domids to leave alone; ``pinned``: vCPUs already under a pin of
    ours; ``escalate``: under credit2, domids that were pushed out again soon after
    their last pins were undone (see :func:`bounced`): this time every vCPU of
    theirs and of their partners is pinned.
    """
    excluded = set(excluded)
    pinned = set(pinned)
    all_cpus = snap.topology.all_cpus
    uuids = {d.domid: d.uuid for d in snap.domains}
    running = snap.running_on()
    out = displaced(snap)
    keys = {(v.domid, v.vcpu) for v in out}
    due = [v for v in out
           if v.domid not in excluded and (v.domid, v.vcpu) not in pinned
           and v.hard >= all_cpus  # an admin pin is the admin's business
           and snap.time - since.get((v.domid, v.vcpu), snap.time) >= threshold
           and fixable(v, running, keys, snap.pool_cpus(v.domid) & snap.topology.all_cpus)]
    if not due:
        return []
    targets: Dict[VcpuKey, VcpuInfo] = {(v.domid, v.vcpu): v for v in due}
    escalate = set(escalate)
    if snap.scheduler == "credit2" and escalate & {v.domid for v in due}:
        for domid in _credit2_partners([v for v in due if v.domid in escalate], running, keys, excluded):
            for v in snap.vcpus.get(domid, ()):
                if soft_is_narrow(v, snap.topology) and v.hard >= all_cpus and (domid, v.vcpu) not in pinned:
                    targets.setdefault((domid, v.vcpu), v)
    return [PinTemporarily(v.domid, uuids.get(v.domid, ""), v.vcpu, v.soft & v.hard & snap.pool_cpus(v.domid),
                           v.hard, "displaced" if key in keys else "partner of a displaced vCPU")
            for key, v in sorted(targets.items()) if v.soft & v.hard & snap.pool_cpus(v.domid)]


def _credit2_partners(due: Sequence[VcpuInfo], running: Mapping[int, VcpuInfo], keys: Set[VcpuKey],
                      excluded: Set[int]) -> Set[int]:
    """Every VM involved: those with due vCPUs, and those whose displaced vCPUs sit on
    the due vCPUs' homes."""
    involved = {v.domid for v in due}
    for v in due:
        for cpu in v.soft:
            other = running.get(cpu)
            if other is not None and (other.domid, other.vcpu) in keys and other.domid not in excluded:
                involved.add(other.domid)
    return involved


def plan_restores(snap: HostSnapshot, pins: Sequence[PinRecord], timeout: float) -> List[RestorePin]:
    """Undo the pins of VMs that are home (all their pinned vCPUs) or waited too long;
    forget the pins of VMs that are gone or whose hard affinity the admin changed."""
    by_vm: Dict[str, List[PinRecord]] = {}
    for p in pins:
        by_vm.setdefault(p.uuid, []).append(p)
    domains = snap.by_uuid()
    out: List[RestorePin] = []
    for uuid, records in sorted(by_vm.items()):
        d = domains.get(uuid)
        if d is None:
            out += [RestorePin(None, uuid, p.vcpu, None, "the VM is gone") for p in records]
            continue
        current = {v.vcpu: v for v in snap.vcpus.get(d.domid, ())}
        ours = [p for p in records if p.vcpu in current and current[p.vcpu].hard == p.pinned_to]
        out += [RestorePin(None, uuid, p.vcpu, None, "its hard affinity was changed by someone else: left as is")
                for p in records if p not in ours]
        if not ours:
            continue
        home = all(current[p.vcpu].cpu in current[p.vcpu].hard for p in ours)
        timed_out = snap.time - min(p.pinned_at for p in ours) >= timeout
        if home or timed_out:
            reason = "home" if home else "not home after {:g}s: given up".format(timeout)
            out += [RestorePin(d.domid, uuid, p.vcpu, p.original_hard, reason) for p in ours]
    return out


def bounced(snap: HostSnapshot, restored_at: Mapping[str, float], window: float) -> Set[int]:
    """Domids displaced again within ``window`` seconds of their last restore (by UUID)."""
    uuids = {d.domid: d.uuid for d in snap.domains}
    return {v.domid for v in displaced(snap)
            if snap.time - restored_at.get(uuids.get(v.domid, ""), float("-inf")) <= window}


def pinned_keys(snap: HostSnapshot, pins: Sequence[PinRecord]) -> Set[VcpuKey]:
    """The (domid, vcpu) of the running domains' pinned vCPUs."""
    domains = snap.by_uuid()
    return {(domains[p.uuid].domid, p.vcpu) for p in pins if p.uuid in domains}


def restore_all(snap: HostSnapshot, pins: Sequence[PinRecord]) -> List[RestorePin]:
    """At stop or start: undo every pin of ours still in place (forget the others)."""
    domains = snap.by_uuid()
    out = []
    for p in pins:
        d = domains.get(p.uuid)
        current = {v.vcpu: v for v in snap.vcpus.get(d.domid, ())} if d else {}
        v: Optional[VcpuInfo] = current.get(p.vcpu)
        if d is None or v is None:
            out.append(RestorePin(None, p.uuid, p.vcpu, None, "the VM is gone"))
        elif v.hard != p.pinned_to:
            out.append(RestorePin(None, p.uuid, p.vcpu, None, "its hard affinity was changed by someone else"))
        else:
            out.append(RestorePin(d.domid, p.uuid, p.vcpu, p.original_hard, "daemon start or stop"))
    return out
