"""Which boot of the host a row of the state database was made in, and what becomes of a
row of an earlier one (pure).

Xen's domains, their claims and domids end with a boot; the state database does not.  A
host that loses power keeps the rows of what was under way: a temporary pin (its journal
row), a start's reservation (perhaps with a claim), a home move noted before its writes.
After the boot, domids start again at 1 and xapi starts the VMs in much the same order:
the same VM may run as the same domid, perhaps boot-pinned by ``place`` to the CPUs the
old pin named, so neither the UUID, the domid nor the affinity tells the new domain from
the one the row was about.  The boot id the row was made in does
(:meth:`~xapi_numa.ports.hypervisor.Hypervisor.boot_id`): a row of another boot is
forgotten, never acted on.  A row that does not say (made before rows did, or on a host
that cannot say) is judged by the rest, as before.
"""
from typing import List, Optional, Sequence, Tuple, TypeVar

from xapi_numa.core.actions import RestorePin

Pin = TypeVar("Pin")  # a homing.PinRecord (homing imports this module): its uuid, vcpu and boot are read
EARLIER_BOOT = "pinned in an earlier boot of the host: its domain went with it"


def of_another_boot(made_in: str, boot: str) -> bool:
    """Was a row made in boot ``made_in`` made in another boot than ``boot`` (both known)?"""
    return bool(made_in and boot and made_in != boot)


def age(wall_at: float, host_at: Optional[float], made_in: str, wall_now: float, host_now: Optional[float],
        boot: str) -> float:
    """How old a row stamped ``wall_at`` on the wall clock and ``host_at`` on the host's (None: not
    known) in boot ``made_in`` is: by the host's clock (which no step of the wall clock moves) where
    both stamps are known and the row is of boot ``boot``, else by the wall clock (all there is for
    a row of another boot, or one stamped later than now: an earlier boot's clock had run further)."""
    if host_now is not None and host_at is not None and not of_another_boot(made_in, boot) and host_at <= host_now:
        return host_now - host_at
    return wall_now - wall_at


def of_this_boot(pins: Sequence[Pin], boot: str) -> Tuple[List[Pin], List[RestorePin]]:
    """(the pins made in boot ``boot``, or not known to be of another; the others, forgotten)."""
    def earlier(p: Pin) -> bool:
        return of_another_boot(p.boot, boot)  # type: ignore[attr-defined]
    return [p for p in pins if not earlier(p)], [RestorePin(None, p.uuid, p.vcpu, None, EARLIER_BOOT)  # type: ignore
                                                 for p in pins if earlier(p)]
