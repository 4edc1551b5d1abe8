"""The domains whose memory a page move refuses, before anything is read or changed:
dom0, PV guests, guests with a device model or passthrough, and a domain its toolstack
is still building or restoring (:func:`xapi_numa.ops.move_memory.check` asks)."""
from xapi_numa.core.host import DomainInfo
from xapi_numa.errors import NotMovable
from xapi_numa.ports.hypervisor import DEVICE_MODEL_BLOCKER, Hypervisor


def refuse_unmovable(hv: Hypervisor, d: DomainInfo) -> None:
    """Raise NotMovable for a domain whose memory a page move must not touch."""
    if d.domid == 0:
        raise NotMovable(d.uuid, "dom0's memory is not moved by this tool", d.name)
    if d.type == "pv":
        raise NotMovable(d.uuid, "it is a PV guest (its page tables hold machine frame numbers); "
                                 "only PVH guests can have their memory moved (HVM guests with a device "
                                 "model are refused too, see the README's \"HVM guests\")", d.name)
    _check_built(hv, d)
    blockers = hv.move_blockers(d.domid)
    if DEVICE_MODEL_BLOCKER in blockers:
        # Xen 4.17 flags the map cache for invalidation only when a vCPU next runs, and
        # QEMU 7.2 keeps its locked (DMA, virtio ring) mappings through an invalidate:
        # device writes to released frames would be lost, and dom0 cannot prevent it.
        raise NotMovable(d.uuid, "it is an HVM guest with a device model (QEMU) whose map cache keeps "
                                 "guest frames mapped; Xen invalidates that cache only after the guest "
                                 "resumes and QEMU keeps in-flight DMA mappings through it, so device "
                                 "writes to released frames could be lost (PVH guests can be moved)", d.name)
    if blockers:
        raise NotMovable(d.uuid, f"it has {', '.join(blockers)}: device DMA mappings would go stale", d.name)


def _check_built(hv: Hypervisor, d: DomainInfo) -> None:
    """A domain its toolstack is still building, restoring or receiving (xenguest writes its
    pages through mappings of its own: a batch would release frames it is writing, and
    repopulating would eat the build's claim) is not ours to move, as xapi-numad leaves it."""
    if d.claimed:
        raise NotMovable(d.uuid, "its toolstack is still building it (its memory claim is outstanding)", d.name)
    # (a pause a dead mover left under its batch record is ours, not a build's: recovery's turn)
    if d.paused and not any(v.cpu_time > 0 for v in hv.vcpus(d.domid)) and d.domid not in hv.batch_records():
        raise NotMovable(d.uuid, "it has not run yet: its toolstack may still be building or restoring it "
                                 "(start it first)", d.name)
