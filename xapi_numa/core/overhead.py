"""What a domain's build takes beyond the guest's RAM, counted in every placement.  Pure.

Without it a VM planned to fill a node spills its last pages to another node,
and a reservation under-counts what the build takes.
"""

from typing import List, Optional, Sequence

import attrs

from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.errors import InvalidArgument

MIB = 1 << 20
XEN_PAGES_PER_VCPU = 38  # of a vCPU's overhead, the memory Xen itself allocates for it (CA-423172), not the pool's


@attrs.frozen
class BuildOverhead:
    """Memory a domain's build takes beyond the guest's RAM (pages).

    Defaults follow xapi's memory model for HVM/PVH guests: per vCPU 256
    pages of shadow/HAP pool plus 38 that Xen itself uses (CA-423172), per
    MiB of RAM one p2m page and one shadow page, and 1 MiB internal plus
    1 MiB external extra.
    """

    pages_per_vcpu: int = 294
    pages_per_mib: int = 2
    fixed_pages: int = 512
    # Where it lands.  xenopsd's build_pre sizes the shadow/HAP pool before it applies
    # the VM's hard vCPU affinity (and Xen makes its per-vCPU memory at
    # domain_max_vcpus, earlier still), so the overhead goes page by page round the
    # domain's first node affinity: every node with CPUs.  Only the guest's memory
    # follows the placement.  False: all of it with the VM (libxl sizes the pool after
    # it has placed the domain).
    before_affinity: bool = True

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.before_affinity, bool):
            raise InvalidArgument("before_affinity", f"{self.before_affinity!r}", "true, false")
        for field in ("pages_per_vcpu", "pages_per_mib", "fixed_pages"):
            value = getattr(self, field)
            if not isinstance(value, int) or not 0 <= value <= 1 << 20:
                raise InvalidArgument(field, f"{value!r}", "0..1048576 pages")

    def bytes_for(self, vcpus: int, memory: int, given: Optional[int] = None) -> int:
        """``given``: the VM's own figure (:func:`xapi_model`), which this model then stands aside for."""
        if given is not None:
            return given
        pages = self.fixed_pages + self.pages_per_vcpu * vcpus + self.pages_per_mib * (memory // MIB)
        return pages << PAGE_SHIFT

    def pages_without_pool(self, vcpus: int) -> int:
        """Pages of the overhead a domain given no paging pool still has Xen allocate: its per-vCPU
        memory (:data:`XEN_PAGES_PER_VCPU` of ``pages_per_vcpu``), as for a PV guest libxl builds (libxl
        sets a pool for HVM and PVH only; xenopsd sets one, a shadow pool, for PV too)."""
        return min(XEN_PAGES_PER_VCPU, self.pages_per_vcpu) * vcpus

    def round_of(self, cpu_nodes: Sequence[int]) -> Optional[List[int]]:
        """The nodes the overhead's pages go round (xenalloc.striped_builds' ``overhead_round``):
        ``cpu_nodes``, every node with CPUs, or None for the VM's own nodes (not before_affinity)."""
        return list(cpu_nodes) if self.before_affinity and cpu_nodes else None

    def on_nodes(self, vcpus: int, memory: int, chosen: int, nodes: int, given: Optional[int] = None) -> int:
        """Bytes of the overhead that land on ``chosen`` of the host's ``nodes`` nodes
        (with CPUs) that a placement chose: their share of the round, or all of it."""
        total = self.bytes_for(vcpus, memory, given)
        if not self.before_affinity or nodes <= 1:
            return total
        pages = total >> PAGE_SHIFT
        return -(-pages * min(chosen, nodes) // nodes) << PAGE_SHIFT  # rounded up: never short


def xapi_model(static_max: int, vcpus: int, shadow_multiplier: float = 1.0, domain_type: str = "hvm") -> int:
    """Bytes of a VM's build overhead as xenopsd sizes it (xapi's memory model,
    ``overhead_mib``): on the static maximum, whatever the VM balloons to; the shadow/HAP
    pool (per vCPU 256 pages, per MiB one p2m and one shadow page, in whole MiB) times
    the VM's ``HVM_shadow_multiplier`` for an HVM guest only (xenopsd sizes and builds
    PV, PVH and PV-in-PVH guests' pools at 1.0, whatever the VM says), Xen's 38 pages
    per vCPU, 1 MiB internal (not for PV) and 1 MiB external extra, and for PV-in-PVH
    the shim's memory."""
    static_mib = -(-static_max // MIB)
    multiplier = 1.0 if domain_type in ("pv", "pvh", "pv_in_pvh") else shadow_multiplier  # (unspecified: as HVM)
    shadow = max(1, int(-(-(256 * vcpus + 2 * static_mib) // 256) * multiplier))  # xapi truncates the product
    internal = 0 if domain_type == "pv" else 1
    shim = 23 + static_mib // 90 if domain_type == "pv_in_pvh" else 0
    return (internal + 1 + shadow + -(-XEN_PAGES_PER_VCPU * vcpus // 256) + shim) * MIB


NO_OVERHEAD = BuildOverhead(0, 0, 0)
WITH_THE_VM = BuildOverhead(before_affinity=False)  # libxl's order: the pool after the placement
