"""What xenopsd asks its builder for: the memory a VM's domain is built with, and how.  Pure.

xenopsd hands XenServer's xenguest two figures in MiB (xapi-idl memory.ml, ``full_config``):
``build_max_mib``, the static maximum less the video RAM (an HVM guest's emulated VGA, which
QEMU populates after the build), and ``build_start_mib``, the start target less the video RAM.
Both come from bytes rounded as xenopsd rounds them (``Memory.mib_of_kib_used`` of KiB, the
target first written to xenstore in whole KiB).  xenguest builds HVM and PVH alike as a
translated guest (stub_xc_hvm_build sets ``dom->target_pages`` from the start figure) and
libxc 4.17's meminit_hvm asks populate-on-demand exactly when the start is below the maximum:
the memory is then the PoD cache (p2m_pod_set_cache_target: 2 MiB extents, then pages), which
Xen 4.17 allows for PVH as for HVM (XENMEM_set_pod_target asks is_hvm_domain; libxl's
pod_enabled is every type but PV).  A PV guest is never PoD: meminit_pv populates its start.

The start target is xenopsd's ``initial_target``: the dynamic maximum, or less where squeezed
reserves less (down to the dynamic minimum) on a host short of free memory
(:func:`squeezed_target`, the one rule a placement plans the start by).
"""
from typing import Optional, Tuple

from xapi_numa.core.ocaml_int import ocaml_int

KiB, MiB = 1 << 10, 1 << 20
# xapi's video RAM for an HVM guest (Xapi_xenops.builder_of_vm): platform:videoram in MiB,
# read with int_of_string, this when the key is missing or not a number; at least
# VGPU_VIDEO_MIB with a vGPU
DEFAULT_VIDEO_MIB = 4
VGPU_VIDEO_MIB = 16
# squeezed's target_host_free_mem: the free memory it keeps above what it reserves for a start
# (low_mem_emergency_pool + extra_mem_to_keep): 1 + 8 MiB, 64 + 8 MiB since xen-api's CA-423173 (2026)
SQUEEZED_SLACK = (9 * MiB, 72 * MiB)


def build_mib(memory: int) -> int:
    """``memory`` bytes as the MiB xenopsd builds: whole KiB (xenstore's target, the static
    maximum's KiB), rounded up to whole MiB (``mib_of_kib_used``)."""
    return -(-(memory // KiB) // KiB)


def start_memory(static_max: int, target: int) -> Tuple[int, bool]:
    """(bytes the domain is built with, whether populate-on-demand) for a VM started at
    ``target`` (:func:`squeezed_target`; at most its static maximum): the start target's MiB,
    PoD where they are fewer than the static maximum's (for an HVM/PVH guest: :func:`build_type`)."""
    start, top = build_mib(min(static_max, target)), build_mib(static_max)
    return start * MiB, start < top


def squeezed_target(free: int, dynamic_min: int, dynamic_max: int, overhead: int, balloons: bool) -> Optional[int]:
    """The start target (bytes) a placement plans a VM's start for, or None where squeezed would
    refuse the start: ``free``, the host's free memory in bytes (what other starts reserved left
    out); the VM's dynamic range; ``overhead``, xenopsd's build overhead in bytes; ``balloons``,
    whether a domain running on the host may balloon (else each holds what it has).

    xenopsd asks squeezed to reserve between the dynamic minimum and maximum, each plus the
    overhead, in KiB rounded up (``reserve_memory_range``), and starts the VM at the lesser of
    its dynamic maximum and the reservation less the overhead (``initial_target``).  squeezed
    (``free_memory_range``) first moves every ballooning domain's target towards its share of
    the host, the new VM counted in, then reserves what is free above its slack
    (:data:`SQUEEZED_SLACK`), at most the maximum; below the minimum it refuses the start.

    With no domain that can balloon, the host's free memory is what squeezed gives: the target
    is the most it reserves (above the lesser slack: never more built than planned), and the
    start is refused where the greater slack leaves less than the minimum (squeezed may keep
    that one: never a start planned that squeezed refuses).  With ballooning domains, what
    they give up or take back first, and so what squeezed reserves, depends on every domain's
    range and state during the start: the dynamic maximum is planned, the most the build ever
    takes, so the build never exceeds what is held (a host short of it is refused, though xapi
    may start the VM there with less)."""
    if balloons:
        return dynamic_max
    least, most = (slack // KiB for slack in SQUEEZED_SLACK)
    low = -(-(min(dynamic_min, dynamic_max) + overhead) // KiB)  # (xenopsd's kib_of_bytes_used)
    high = -(-(dynamic_max + overhead) // KiB)
    if free // KiB - most < low:
        return None
    return min(dynamic_max, min(free // KiB - least, high) * KiB - overhead)


def video_ram(guest_type: str, videoram: str, vgpu: bool) -> int:
    """Bytes of the VM's memory that xenopsd gives an HVM guest's emulated VGA (``video_mib``), as
    xapi works them out from ``platform:videoram`` (``videoram``) and whether it builds the VM
    with a vGPU: no RAM of the build, which QEMU populates after it (0 for PVH and PV)."""
    if guest_type != "hvm":
        return 0
    mib = ocaml_int(videoram)
    mib = DEFAULT_VIDEO_MIB if mib is None else mib
    if vgpu:
        mib = max(mib, VGPU_VIDEO_MIB)
    return max(mib, 0) * MiB  # a negative value is no video RAM to leave out


def resolved_domain_type(domain_type: Optional[str], hvm_boot_policy: Optional[str]) -> Optional[str]:
    """xapi's ``domain_type`` of a VM, its "unspecified" (a record from before the field) read as
    xapi reads it: HVM where the VM has an ``HVM_boot_policy``, else PV."""
    if domain_type == "unspecified":
        return "hvm" if hvm_boot_policy else "pv"
    return domain_type


def build_type(domain_type: Optional[str], pod: bool = False) -> str:
    """How libxc lays out the RAM of a VM of xapi's ``domain_type`` (:func:`.xenalloc.build_extents`):
    pv_in_pvh's shim is a PVH domain; unspecified is built as HVM.  ``pod``: started below its
    static maximum (:func:`start_memory`), an HVM/PVH guest is built with populate-on-demand
    (meminit_hvm marks the RAM above the target), its memory the PoD cache that
    p2m_pod_set_cache_target fills first in 2 MiB extents, then pages, with the domain's node
    affinity: laid out as PV's RAM."""
    dtype = {"pv": "pv", "pvh": "pvh", "pv_in_pvh": "pvh"}.get(domain_type or "hvm", "hvm")
    return "pv" if pod else dtype
