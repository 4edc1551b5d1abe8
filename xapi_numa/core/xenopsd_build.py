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
reserved less (down to the dynamic minimum) on a host short of free memory, which nothing here
can know: placement plans for the dynamic maximum, as squeezed gives it where the room is.
"""
from typing import Optional, Tuple

from xapi_numa.core.ocaml_int import ocaml_int

KiB, MiB = 1 << 10, 1 << 20
# xapi's video RAM for an HVM guest (Xapi_xenops.builder_of_vm): platform:videoram in MiB,
# read with int_of_string, this when the key is missing or not a number; at least
# VGPU_VIDEO_MIB with a vGPU
DEFAULT_VIDEO_MIB = 4
VGPU_VIDEO_MIB = 16


def build_mib(memory: int) -> int:
    """``memory`` bytes as the MiB xenopsd builds: whole KiB (xenstore's target, the static
    maximum's KiB), rounded up to whole MiB (``mib_of_kib_used``)."""
    return -(-(memory // KiB) // KiB)


def start_memory(static_max: int, dynamic_max: int) -> Tuple[int, bool]:
    """(bytes the domain is built with, whether populate-on-demand) for a VM started at its
    dynamic maximum (at most its static maximum): the start target's MiB, PoD where they are
    fewer than the static maximum's (for an HVM/PVH guest: :func:`build_type`).

    Why the dynamic maximum: xenopsd asks squeezed to reserve between the dynamic minimum and
    maximum (each plus the overhead) and starts the VM at the lesser of its dynamic maximum and
    what squeezed reserved, less the overhead (``initial_target``).  squeezed first moves every
    ballooning domain's target towards its proportional share of the host (the new VM counted
    in), waits for them, then reserves what is free above its own slack (9 MiB), at most the
    maximum.  Where the host has room for every domain's dynamic maximum, the new VM's among
    them, that is what it gets, and the prediction and reservation here are right.  Otherwise
    it starts lower (PoD for HVM/PVH): on a host whose free memory is below its dynamic maximum
    but enough for its minimum, and also where ballooned domains are given memory back first;
    how much lower, and on which nodes the ballooned domains' memory is freed or taken, depend
    on every domain's balloon range and state during the start, which no placement can know
    before it.  So a host short of the dynamic maximum is refused for room (NUMA_NO_CAPACITY;
    a pool vm-start passes it over) though xapi would start the VM there with less, and a start
    squeezed gives less holds more than it builds until its reservation is released."""
    start, top = build_mib(min(static_max, dynamic_max)), build_mib(static_max)
    return start * MiB, start < top


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
