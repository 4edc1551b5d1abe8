"""The boot pin: how ``place`` makes xenopsd build a VM's memory on the chosen nodes.

xenopsd builds a domain with the hard affinity in ``VCPUs_params["mask"]``, so
Xen allocates its memory on the nodes of those CPUs.  ``place`` sets that mask
to the chosen nodes' CPUs and keeps any mask the admin had set aside in
``other_config:numa_saved_mask``; settling the running VM, or releasing a
start that did not happen, puts the admin's mask back.
"""
from typing import FrozenSet, Iterable, List, Optional

from xapi_numa.backends import xapi


def pin_boot(session, vm: str, record: dict, nodes: Iterable[int], cpus: Iterable[int]) -> None:
    """Boot-time hard pin in VCPUs_params["mask"], keeping the admin's own mask aside."""
    other = record["other_config"]
    if xapi.SAVED_MASK_KEY not in other:  # a second place keeps the first saved mask
        saved = record["VCPUs_params"].get("mask", xapi.NO_SAVED_MASK)
        xapi.set_other_config(session, vm, xapi.SAVED_MASK_KEY, saved)
    xapi.set_other_config(session, vm, xapi.PLACED_KEY, ",".join(map(str, nodes)))
    xapi.set_vcpus_param(session, vm, "mask", xapi.format_mask(cpus))


def placed_nodes(other_config: dict) -> FrozenSet[int]:
    """The nodes ``place`` chose for this VM (empty if it was not placed)."""
    return frozenset(int(n) for n in other_config.get(xapi.PLACED_KEY, "").split(",") if n.strip().isdigit())


def restore_boot(session, vm: str) -> Optional[List[int]]:
    """Undo :func:`pin_boot`; returns the admin's mask (None if there was none)."""
    other = xapi.call(session.xenapi.VM.get_other_config, vm)
    saved = other.get(xapi.SAVED_MASK_KEY)
    if saved is None:
        mask = xapi.call(session.xenapi.VM.get_VCPUs_params, vm).get("mask")
        return xapi.parse_mask(mask) if mask and xapi.PLACED_KEY not in other else None
    xapi.set_vcpus_param(session, vm, "mask", None if saved == xapi.NO_SAVED_MASK else saved)
    xapi.set_other_config(session, vm, xapi.SAVED_MASK_KEY, None)
    xapi.set_other_config(session, vm, xapi.PLACED_KEY, None)
    return None if saved == xapi.NO_SAVED_MASK else xapi.parse_mask(saved)
