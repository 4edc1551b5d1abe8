"""What a domain's build takes beyond the guest's RAM, counted in every placement.  Pure.

Without it a VM planned to fill a node spills its last pages to another node,
and a reservation under-counts what the build takes.
"""

import attrs

from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.errors import InvalidArgument

MIB = 1 << 20


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

    def __attrs_post_init__(self) -> None:
        for field in ("pages_per_vcpu", "pages_per_mib", "fixed_pages"):
            value = getattr(self, field)
            if not isinstance(value, int) or not 0 <= value <= 1 << 20:
                raise InvalidArgument(field, f"{value!r}", "0..1048576 pages")

    def bytes_for(self, vcpus: int, memory: int) -> int:
        pages = self.fixed_pages + self.pages_per_vcpu * vcpus + self.pages_per_mib * (memory // MIB)
        return pages << PAGE_SHIFT


NO_OVERHEAD = BuildOverhead(0, 0, 0)
