"""The domains whose memory a page move refuses, before anything is read or changed:
dom0, PV guests, guests with a device model or passthrough, and a domain its toolstack
is still building or restoring (:func:`xapi_numa.ops.move_memory.check` asks); and xapi's
operations on a VM during which its memory must not move, refused at the start (the
plugin) and watched for between batches (a background mover, :func:`xapi_watch`); and a
domid that names another VM's domain by the next batch (:func:`another_domain`)."""
import time
from typing import Callable, List, Optional, TypeVar

from xapi_numa.backends import xapi
from xapi_numa.core.host import DomainInfo
from xapi_numa.errors import NotMovable, UnknownVM
from xapi_numa.ports.hypervisor import DEVICE_MODEL_BLOCKER, Hypervisor

# xapi's operations (vm_operations) during which the VM's memory must not be moved: it
# is being copied away, or ballooned (frames the mover released could be taken), or the
# domain is going away
BUSY_OPERATIONS = {"migrate_send", "pool_migrate", "suspend", "checkpoint", "snapshot_with_quiesce",
                   "changing_memory_live", "awaiting_memory_live", "changing_dynamic_range",
                   "changing_memory_limits", "clean_shutdown", "hard_shutdown", "clean_reboot", "hard_reboot",
                   "shutdown", "destroy"}
T = TypeVar("T")
WATCH_EVERY_S = 1.0


def busy_with(current_operations: dict) -> List[str]:
    """Those of a VM's current operations (its record's ``current_operations``) that forbid a move."""
    return sorted(BUSY_OPERATIONS & set(current_operations.values()))


def busy_reason(busy: List[str]) -> str:
    return "xapi is running {} on it".format(", ".join(busy))


def xapi_watch(use: Callable[[Callable[[object], T]], Optional[T]], uuid: str, every: float = WATCH_EVERY_S,
               clock: Callable[[], float] = time.monotonic) -> Callable[[], Optional[str]]:
    """What a mover asks between batches: why it must stop now (xapi started one of those
    operations on the VM since the move began: a live migration or a suspend copies its
    memory away), or None.  xapi is asked at most once every ``every`` seconds (batches
    follow each other within milliseconds; a migration's copy takes far longer than that).
    ``use``: a XapiLink's (None while xapi cannot be reached: the batches go on, as a move
    started without xapi does).  A VM xapi no longer knows, or a call it refuses, is not a
    reason: a domain going away is the hypervisor's to report (its batch fails)."""
    asked = [None]  # type: List[Optional[float]]  # when xapi was last asked (one watch per move)

    def read(session) -> List[str]:
        return busy_with(xapi.call(session.xenapi.VM.get_current_operations, xapi.vm_ref(session, uuid)))

    def why() -> Optional[str]:
        now = clock()
        if asked[0] is not None and now - asked[0] < every:
            return None
        asked[0] = now
        try:
            busy = use(read)
        except (UnknownVM, xapi.XapiError):
            return None
        return busy_reason(busy) if busy else None
    return why


def refuse_unmovable(hv: Hypervisor, d: DomainInfo) -> None:
    """Raise NotMovable for a domain whose memory a page move must not touch."""
    if d.domid == 0:
        raise NotMovable(d.uuid, "dom0's memory is not moved by this tool", d.name)
    if d.type == "pv":
        raise NotMovable(d.uuid, "it is a PV guest (its page tables hold machine frame numbers); "
                                 "only PVH guests can have their memory moved (HVM guests with a device "
                                 "model are refused too, see hvm.md in /opt/xapi-numa/doc)", d.name)
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


def another_domain(hv: Hypervisor, d: DomainInfo) -> Optional[str]:
    """Why the next batch must not go, if the move's domid now names another VM's domain
    (the VM's went and its domid was given again: Xen's domids wrap, and a simulated host
    replaced by ``sim init --force`` numbers from 1 again).  Batches move pages by domid:
    without this, they would go on with the new domain's pages.  A domain simply gone is
    the batch's own error (no such domain), as before."""
    now = hv.domain(d.domid, named=False)
    if now is None or now.uuid == d.uuid:
        return None
    return "domain {} is no longer VM {}'s (it is VM {}'s now)".format(d.domid, d.uuid, now.uuid)
