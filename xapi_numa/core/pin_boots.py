"""Which boot of the host a temporary pin of xapi-numad's was made in (pure).

A pin is journalled before it is made and removed once undone; a host that loses power
keeps the row.  After the boot, domids start again at 1 and xapi starts the VMs in much
the same order: the same VM may run as the same domid, perhaps boot-pinned by ``place``
to the CPUs the old pin named, so neither the UUID, the domid nor the affinity tells the
new domain from the one pinned.  The boot id the row was made in does
(:meth:`~xapi_numa.ports.hypervisor.Hypervisor.boot_id`): a pin of another boot is
forgotten, never put back.  A row that does not say (made before rows did, or on a host
that cannot say) is judged by the rest, as before.
"""
from typing import List, Sequence, Tuple, TypeVar

from xapi_numa.core.actions import RestorePin

Pin = TypeVar("Pin")  # a homing.PinRecord (homing imports this module): its uuid, vcpu and boot are read
EARLIER_BOOT = "pinned in an earlier boot of the host: its domain went with it"


def of_this_boot(pins: Sequence[Pin], boot: str) -> Tuple[List[Pin], List[RestorePin]]:
    """(the pins made in boot ``boot``, or not known to be of another; the others, forgotten)."""
    def earlier(p: Pin) -> bool:
        return bool(p.boot and boot and p.boot != boot)  # type: ignore[attr-defined]
    return [p for p in pins if not earlier(p)], [RestorePin(None, p.uuid, p.vcpu, None, EARLIER_BOOT)  # type: ignore
                                                 for p in pins if earlier(p)]
