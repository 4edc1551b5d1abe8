"""The memory sizes of the VMs started on this host: what the single-node rule's
split-risk term weighs (:mod:`xapi_numa.core.single_node`).  Pure.

A size is counted in a bucket, so that a host's years of starts stay a few hundred
rows in the state database: whole MiB, rounded up to ``BUCKET_BITS`` significant bits
(16 buckets per doubling, each at most 1/16 above the sizes it holds; sizes under
32 MiB, and every size of the form k x 2^j MiB with k < 32, are exact).  A size is
rounded up: a start counts as at least as big as it was.
"""
import bisect
import itertools
from typing import Dict, Iterable, Tuple

import attrs

from xapi_numa.errors import InvalidArgument
from xapi_numa.core.units import MAX_VM_MEMORY

MIB = 1 << 20
BUCKET_BITS = 5


def bucket(memory: int) -> int:
    """The size (bytes) a start of ``memory`` bytes is counted at."""
    mib = (memory + MIB - 1) >> 20
    shift = mib.bit_length() - BUCKET_BITS
    return mib << 20 if shift <= 0 else (mib + (1 << shift) - 1) >> shift << shift << 20


def _rows(rows) -> Tuple[Tuple[int, int], ...]:
    """(size, count) rows, merged per bucket, ascending; every size and count checked."""
    merged: Dict[int, int] = {}
    for row in rows:
        if not valid(row):
            raise InvalidArgument("start sizes", f"{row!r}", "(size 1 .. 1P bytes, count >= 0) rows")
        size, count = row
        if count:
            size = bucket(size)
            merged[size] = merged.get(size, 0) + count
    return tuple(sorted(merged.items()))


def valid(row) -> bool:
    """Whether a (size, count) row is one :class:`StartSizes` takes (a stored row may not be)."""
    size, count = row
    return type(size) is int and type(count) is int and 0 < size <= MAX_VM_MEMORY and count >= 0


@attrs.frozen
class StartSizes:
    """How many starts were counted per size bucket (``rows``: (bytes, count), ascending)."""

    rows: Tuple[Tuple[int, int], ...] = attrs.field(default=(), converter=_rows)
    _sizes: Tuple[int, ...] = attrs.field(init=False, eq=False, repr=False)
    _below: Tuple[int, ...] = attrs.field(init=False, eq=False, repr=False)  # starts below each row, then all

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_sizes", tuple(size for size, _ in self.rows))
        object.__setattr__(self, "_below", tuple(itertools.accumulate(
            itertools.chain((0,), (count for _, count in self.rows)))))

    @property
    def total(self) -> int:
        return self._below[-1]

    def above(self, hole: int) -> int:
        """How many starts were bigger than ``hole`` bytes (a bisect: O(log rows))."""
        return self.total - self._below[bisect.bisect_right(self._sizes, hole)]

    def with_start(self, memory: int) -> "StartSizes":
        """These starts and one more of ``memory`` bytes (what the state database's record does)."""
        return StartSizes(self.rows + ((memory, 1),))

    @classmethod
    def of(cls, sizes: Iterable[int]) -> "StartSizes":
        """One start per size given."""
        return cls((size, 1) for size in sizes)


NO_STARTS = StartSizes()
