"""``VCPUs_params["mask"]``: a VM's boot-time hard affinity, in xapi's syntax.

xapi splits the mask on ``;`` (one entry per vCPU) and each entry on ``,``
(CPU numbers), reading each number with OCaml's ``int_of_string``; if any
piece fails it silently ignores the whole mask and the VM boots unpinned.
xenopsd then gives vCPU n entry n, and every vCPU past the last entry the
first one (``ocaml/xapi/xapi_xenops.ml``, ``ocaml/xenopsd/xc/domain.ml``).
This module owns that syntax as a value: parsing, printing, per-vCPU lookup.
Pure: no I/O.
"""

import re
from typing import AbstractSet, FrozenSet, Iterable, Iterator, Tuple, Union

import attrs

from xapi_numa.core.numbers import is_decimal, parse_decimal, shown
from xapi_numa.core.ocaml_int import OCAML_INT
from xapi_numa.errors import InvalidArgument

MASK_FIELD = "VCPUs_params:mask"
MASK_SYNTAX = ("comma-separated CPU numbers for every vCPU (0,1,2), or one such list per vCPU separated by "
               "';' (0,1;2,3; vCPUs past the last list take the first); no ranges, spaces or empty entries")
MAX_CPU_ID = 65535  # beyond any Xen build's NR_CPUS


@attrs.frozen
class VcpuMask:
    """A hard-affinity mask as xenopsd applies it at domain build.

    ``masks[n]`` is vCPU n's CPUs; vCPUs past the end take ``masks[0]``.  One
    entry means the same mask for every vCPU.  Trailing entries equal to the
    first are dropped (they change nothing), so equal masks compare equal.
    CPU ids are not checked against a host: xenopsd drops those beyond it.
    """

    masks: Tuple[FrozenSet[int], ...] = attrs.field(converter=lambda ms: _canonical_masks(ms))

    @property
    def per_vcpu(self) -> bool:
        return len(self.masks) > 1

    @property
    def cpus(self) -> FrozenSet[int]:
        """Every CPU some vCPU may run on."""
        return frozenset().union(*self.masks)

    def for_vcpu(self, vcpu: int) -> FrozenSet[int]:
        return self.masks[vcpu] if vcpu < len(self.masks) else self.masks[0]

    def __iter__(self) -> Iterator[int]:
        """The CPUs of :attr:`cpus`, in order (so ``frozenset(mask)`` is the union)."""
        return iter(sorted(self.cpus))


def _canonical_masks(masks: Iterable[Iterable[int]]) -> Tuple[FrozenSet[int], ...]:
    out = [frozenset(m) for m in masks]
    if not out or not all(out):
        raise InvalidArgument(MASK_FIELD, "a mask names at least one CPU for each vCPU", MASK_SYNTAX)
    while len(out) > 1 and out[-1] == out[0]:
        out.pop()
    return tuple(out)


def parse_mask(text: str, field: str = MASK_FIELD) -> VcpuMask:
    """Read ``VCPUs_params["mask"]`` exactly as xapi splits it: ';' between vCPUs, ',' between CPUs.

    xapi reads each number with OCaml's ``int_of_string`` and silently ignores
    the whole mask (the VM boots unpinned) if any piece fails, e.g. with a
    space or an empty entry; such a mask is refused here, clearly.  OCaml's
    other integer forms (``0x3``, ``+3``, ``1_0``) are refused too: decimal
    CPU numbers only.
    """
    if not isinstance(text, str) or not text:
        raise InvalidArgument(field, "{} is not a mask".format(shown(text)), MASK_SYNTAX)
    masks = []
    for entry in text.split(";"):
        cpus = entry.split(",")
        bad = next((c for c in cpus if not is_decimal(c)), None)
        if bad is not None:
            why = ("xapi-numa reads decimal CPU numbers only" if OCAML_INT.fullmatch(bad)
                   else "xapi ignores a mask with such an entry and boots the VM unpinned")
            raise InvalidArgument(field, "{}: {} is not a CPU number ({})".format(shown(text), shown(bad), why),
                                  MASK_SYNTAX)
        masks.append(frozenset(parse_decimal(c, field, MASK_SYNTAX, maximum=MAX_CPU_ID, what="CPU") for c in cpus))
    return VcpuMask(masks)


def format_mask(mask: Union[VcpuMask, AbstractSet[int], Iterable[int]]) -> str:
    """VCPUs_params["mask"] text for a VcpuMask, or for one CPU set given to every vCPU."""
    value = mask if isinstance(mask, VcpuMask) else VcpuMask([frozenset(mask)])
    return ";".join(",".join(str(c) for c in sorted(m)) for m in value.masks)
