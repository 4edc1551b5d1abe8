"""The boot pin: how ``place`` makes xenopsd build a VM's memory on the chosen nodes.

xenopsd builds a domain with the hard affinity in ``VCPUs_params["mask"]``, so
Xen allocates its memory on the nodes of those CPUs.  ``place`` sets that mask
to the chosen nodes' CPUs and keeps any mask the admin had set aside in
``other_config:numa_saved_mask``, and records the placing host's UUID in
``other_config:numa_placed_host``; settling the running VM, or releasing a
start that did not happen on the host that placed it, puts the admin's mask
back.
"""
from typing import FrozenSet, Iterable, Optional, Union

from xapi_numa.backends import xapi
from xapi_numa.core.vcpu_mask import VcpuMask
from xapi_numa.errors import InvalidArgument


def pin_boot(session, vm: str, record: dict, nodes: Iterable[int], cpus: Union[VcpuMask, Iterable[int]],
             host_uuid: Optional[str] = None) -> None:
    """Boot-time hard pin in VCPUs_params["mask"], keeping the admin's own mask aside;
    ``host_uuid`` (this host) is recorded so that only this host's release undoes it."""
    other = record["other_config"]
    if xapi.SAVED_MASK_KEY not in other:  # a second place keeps the first saved mask
        saved = record["VCPUs_params"].get("mask", xapi.NO_SAVED_MASK)
        xapi.set_other_config(session, vm, xapi.SAVED_MASK_KEY, saved)
    xapi.set_other_config(session, vm, xapi.PLACED_KEY, ",".join(map(str, nodes)))
    xapi.set_other_config(session, vm, xapi.PLACED_HOST_KEY, host_uuid)  # None removes an older place's
    xapi.set_vcpus_param(session, vm, "mask", xapi.format_mask(cpus))


def placed_nodes(other_config: dict) -> FrozenSet[int]:
    """The nodes ``place`` chose for this VM (empty if it was not placed)."""
    return frozenset(int(n) for n in other_config.get(xapi.PLACED_KEY, "").split(",") if n.strip().isdigit())


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


def restore_boot(session, vm: str) -> Optional[VcpuMask]:
    """Undo :func:`pin_boot` (the admin's mask goes back exactly as it was, whatever
    it says); returns that mask as a value (None if there was none)."""
    other = xapi.call(session.xenapi.VM.get_other_config, vm)
    saved = other.get(xapi.SAVED_MASK_KEY)
    if saved is None:
        if xapi.PLACED_HOST_KEY in other and xapi.PLACED_KEY not in other:  # left by an older version's settle
            xapi.set_other_config(session, vm, xapi.PLACED_HOST_KEY, None)
        mask = xapi.call(session.xenapi.VM.get_VCPUs_params, vm).get("mask")
        return _readable(mask) if xapi.PLACED_KEY not in other else None
    admin = _readable(saved)  # read first: nothing may fail after the restore
    xapi.set_vcpus_param(session, vm, "mask", None if saved == xapi.NO_SAVED_MASK else saved)
    xapi.set_other_config(session, vm, xapi.SAVED_MASK_KEY, None)
    xapi.set_other_config(session, vm, xapi.PLACED_KEY, None)
    xapi.set_other_config(session, vm, xapi.PLACED_HOST_KEY, None)
    return admin
