"""The boot pin: how ``place`` makes xenopsd build a VM's memory on the chosen nodes.

xenopsd builds a domain with the hard affinity in ``VCPUs_params["mask"]``, so
Xen allocates its memory on the nodes of those CPUs.  ``place`` sets that mask
to the chosen nodes' CPUs and keeps any mask the admin had set aside in
``other_config:numa_saved_mask``, and records the placing host's UUID in
``other_config:numa_placed_host``; settling the running VM, or releasing a
start that did not happen on the host that placed it, puts the admin's mask
back.
"""
from typing import Callable, FrozenSet, Iterable, Optional, Union

import attr

from xapi_numa.backends import xapi
from xapi_numa.core.numbers import is_decimal
from xapi_numa.core.vcpu_mask import VcpuMask
from xapi_numa.errors import InvalidArgument


PIN_KEYS = (xapi.SAVED_MASK_KEY, xapi.PLACED_KEY, xapi.PLACED_HOST_KEY)
Guard = Callable[[], None]  # called before each write: raises if the caller may no longer write


def _unguarded() -> None:
    pass


def pin_boot(session, vm: str, record: dict, nodes: Iterable[int], cpus: Union[VcpuMask, Iterable[int]],
             host_uuid: Optional[str] = None, guard: Guard = _unguarded) -> None:
    """Boot-time hard pin in VCPUs_params["mask"], keeping the admin's own mask aside;
    ``host_uuid`` (this host) is recorded so that only this host's release undoes it;
    ``guard`` is called before each write."""
    other = record["other_config"]
    # A second place keeps the first one's saved mask; one saved beside no pin key is
    # what a pin or a restore cut short left, while the current mask is the admin's.
    saved = other.get(xapi.SAVED_MASK_KEY) if xapi.PLACED_KEY in other else None
    if saved is None:
        saved = record["VCPUs_params"].get("mask", xapi.NO_SAVED_MASK)
    write_pin_keys(session, vm, {xapi.SAVED_MASK_KEY: saved, xapi.PLACED_KEY: ",".join(map(str, nodes)),
                                 xapi.PLACED_HOST_KEY: host_uuid}, guard)  # None removes an older place's
    guard()
    xapi.set_vcpus_param(session, vm, "mask", xapi.format_mask(cpus))


def write_pin_keys(session, vm: str, values: dict, guard: Guard = _unguarded) -> None:
    """Give the pin's other_config keys ``values`` (a key absent or None is removed).

    The order keeps one rule whenever a write is cut short: while the pin key is
    there, so is the admin's saved mask (written first, removed last), so the pin
    can always be undone exactly."""
    for key in PIN_KEYS:
        if values.get(key) is not None:
            guard()
            xapi.set_other_config(session, vm, key, values[key])
    for key in reversed(PIN_KEYS):
        if values.get(key) is None:
            guard()
            xapi.set_other_config(session, vm, key, None)


def placed_nodes(other_config: dict) -> FrozenSet[int]:
    """The nodes ``place`` chose for this VM (empty if it was not placed)."""
    # ASCII digits only: str.isdigit() takes '²', which int() then refuses
    return frozenset(int(n) for n in other_config.get(xapi.PLACED_KEY, "").split(",") if is_decimal(n.strip()))


def placing_host(other_config: dict) -> Optional[str]:
    """The UUID of the host whose ``place`` set the boot pin (None: unknown or unpinned).
    Only with the pin's own key: a host key left beside no pin (an older version's
    settle clears the other keys only) names nothing."""
    if xapi.PLACED_KEY not in other_config:
        return None
    return other_config.get(xapi.PLACED_HOST_KEY) or None


def _readable(mask: Optional[str]) -> Optional[VcpuMask]:
    """The admin's mask as a value; one xapi itself would ignore counts as none."""
    if not mask or mask == xapi.NO_SAVED_MASK:
        return None
    try:
        return xapi.parse_mask(mask)
    except InvalidArgument:
        return None


@attr.s(frozen=True)
class Restored:
    """What :func:`restore_boot` found: the admin's mask (None: none), and whether a
    boot pin was there to undo."""
    admin: Optional[VcpuMask] = attr.ib()
    pinned: bool = attr.ib()


def admin_mask_text(record: dict) -> Optional[str]:
    """The admin's own mask as the VM's record holds it (the one ``place`` set aside
    while its pin is there, else the current one), read without writing anything."""
    other = record.get("other_config", {})
    if xapi.PLACED_KEY in other and other.get(xapi.SAVED_MASK_KEY) is not None:
        return other[xapi.SAVED_MASK_KEY]  # beside no pin key it is left over: the current one is the admin's
    return record.get("VCPUs_params", {}).get("mask")


def admin_mask(record: dict) -> Optional[VcpuMask]:
    """The admin's mask as :func:`restore_boot` puts it back (None: none, or one xapi
    itself would ignore)."""
    return _readable(admin_mask_text(record))


def restore_boot(session, vm: str, record: Optional[dict] = None, guard: Guard = _unguarded) -> Restored:
    """Undo :func:`pin_boot`: the admin's mask goes back exactly as it was, whatever it
    says, then the pin keys go (the saved mask last).  ``record``: the VM's record, if
    the caller has just read it; ``guard`` is called before each write.

    A saved mask beside no pin key is what a pin or a restore cut short left: the
    mask is already the admin's.  A pin key beside no saved mask (an older
    version's, or edited by hand) cannot tell the admin's mask from the pin: the
    current mask is kept as the admin's, which stays inside whatever the admin set."""
    record = xapi.vm_record(session, vm) if record is None else record
    other = record["other_config"]
    saved = other.get(xapi.SAVED_MASK_KEY)
    pinned = xapi.PLACED_KEY in other
    admin = admin_mask(record)  # read first: nothing may fail after the restore
    if pinned and saved is not None:
        guard()
        xapi.set_vcpus_param(session, vm, "mask", None if saved == xapi.NO_SAVED_MASK else saved)
    if any(key in other for key in PIN_KEYS):
        write_pin_keys(session, vm, {}, guard)
    return Restored(admin, pinned)
