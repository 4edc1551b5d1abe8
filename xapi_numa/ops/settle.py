"""Settling a started VM: its boot pin gives way to its policy's affinity, and its
reservation goes.  The plugin's ``settle`` and xapi-numad's auto-settle (a VM
started with a plain ``xe vm-start`` after ``place``) both run this.

Settling holds the VM as ``place`` and ``release`` do (:func:`start_placement.owning`),
and reads the domain, the record and the reservation only once it holds it: a VM
that stops meanwhile and is placed again gets its new pin and reservation from a
place that waits for (or is refused with ``NUMA_VM_BUSY`` by) this settle, never
wiped by it.  Slow past its hold and taken over, it writes nothing more
(:func:`start_placement.still_owning`)."""
import functools
from typing import Optional

from xapi_numa.backends import xapi
from xapi_numa.core import reservation, settling
from xapi_numa.core.policy import stored_or_default
from xapi_numa.errors import InvalidArgument, NotRunning
from xapi_numa.ops.boot_pin import admin_mask, placed_nodes, restore_boot
from xapi_numa.ops.executor import DONE, Executor
from xapi_numa.ops.place_request import host_mask
from xapi_numa.ops.start_placement import owning, still_owning
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.ledger import Ledger


def control_domain_here(session, vm: str, host_uuid: Optional[str]) -> bool:
    """Is ``vm`` this host's control domain?  xapi gives dom0 a VM UUID of its own (the
    inventory's CONTROL_DOMAIN_UUID), not Xen's all-zero handle: no domain matches it."""
    return host_uuid is not None and bool(xapi.call(session.xenapi.VM.get_is_control_domain, vm)) and \
        _resident_here(session, vm, host_uuid)


def _resident_here(session, vm: str, host_uuid: Optional[str]) -> bool:
    """Does xapi say ``vm`` is resident on this host (``host_uuid``; None: not a dom0, no)?"""
    if host_uuid is None:
        return False
    resident = xapi.call(session.xenapi.VM.get_resident_on, vm)
    return resident != "OpaqueRef:NULL" and xapi.call(session.xenapi.host.get_uuid, resident).lower() == \
        host_uuid.lower()


def _domain(hv: Hypervisor, uuid: str):
    return next((d for d in hv.domains() if d.uuid == uuid), None)


def settleable(hv: Hypervisor, session, uuid: str, host_uuid: Optional[str] = None) -> str:
    """The xapi reference of VM ``uuid``, if it can be settled here (a guest with a domain on this
    host); its refusals read no state database (the plugin checks them before making one, and
    hands the reference to :func:`settle`, which then asks xapi none of it again)."""
    dom = _domain(hv, uuid)
    vm = xapi.vm_ref(session, uuid)  # UnknownVM if xapi does not know it
    if (dom is not None and dom.domid == 0) or xapi.call(session.xenapi.VM.get_is_control_domain, vm):
        # dom0's vCPU layout (dom0_vcpus_pin) is what backend alignment builds on
        whose = "this host's" if dom is not None or _resident_here(session, vm, host_uuid) else "a"
        raise InvalidArgument("vm", "{} is {} control domain (dom0)".format(uuid, whose), "a guest VM")
    if dom is None:
        raise NotRunning(uuid)
    return vm


def settle(hv: Hypervisor, session, ledger: Ledger, uuid: str, host_uuid: Optional[str] = None,
           lock_wait: Optional[float] = None, vm: Optional[str] = None) -> dict:
    """``host_uuid``: this host's, to tell its control domain from another host's;
    ``lock_wait``: how long to wait for a place, release or other settle of the VM on
    this host (:func:`owning`; by default its PLACE_LOCK_WAIT); ``vm``: its xapi reference
    as :func:`settleable` answered it just now (None: checked here)."""
    vm = settleable(hv, session, uuid, host_uuid) if vm is None else vm
    with owning(ledger, session, vm, uuid, lock_wait=lock_wait) as owner:
        return _settle_held(hv, session, ledger, uuid, vm, functools.partial(still_owning, session, vm, uuid, owner))


def _settle_held(hv: Hypervisor, session, ledger: Ledger, uuid: str, vm: str, held) -> dict:
    """:func:`settle` while holding the VM; ``held`` raises once another caller took it over."""
    dom = _domain(hv, uuid)  # read again: it may have stopped (and started anew) before we held it
    if dom is None:
        raise NotRunning(uuid)
    record = xapi.vm_record(session, vm)
    other = record["other_config"]
    policy, policy_error = stored_or_default(other)  # a bad one must not leave the VM boot-pinned
    topo = hv.topology()
    pages = hv.node_pages(dom.domid)
    # xapi narrowed the vCPUs to the host's guest mask at the start: settling keeps them in it
    resident = record.get("resident_on", "OpaqueRef:NULL")
    host_cpus = host_mask(session, xapi.call(session.xenapi.host.get_uuid, resident)) \
        if resident != "OpaqueRef:NULL" else None  # one that cannot be read is refused: the VM stays boot-pinned
    plan = settling.plan(dom, hv.vcpus(dom.domid), topo, policy, placed_nodes(other), pages, admin_mask(record),
                         host_cpus)
    release = reservation.plan_settled_release(ledger.reservation(uuid), dom, hv.capabilities().node_claims)
    held()
    outcomes = Executor(hv, ledger.db).apply(list(plan.actions) + release)
    refused = [o.detail for o in outcomes if o.status not in (DONE, "gone")]
    # Last: while the pin keys are there, a settle that failed (or was killed) before
    # this point is done again by xapi-numad's next look, from the start.
    restore_boot(session, vm, guard=held)
    return {"vm": uuid, "domid": dom.domid, "memory_nodes": sorted(plan.memory_nodes), "nodes": sorted(plan.nodes),
            "hard": topo.format_cpus(plan.hard), "soft": topo.format_cpus(plan.soft) if plan.soft is not None else None,
            "fixed_up": plan.fixed_up, "refused": refused, "policy_error": policy_error}
