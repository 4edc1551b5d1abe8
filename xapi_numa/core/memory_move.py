"""Moving a guest's memory between nodes: the pure part (no I/O).

Given a guest's memory map (one class per gfn, from the hypervisor port),
this module says which gfns may move, cuts them into batches -- each one
pause window, aligned so that whole 2 MiB runs stay together and can be
repopulated as superpages -- paces the batches, and adds up what happened.
The orchestration that talks to the hypervisor is :mod:`xapi_numa.migrate`.
"""

import bisect
import re
import statistics
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import attrs

from xapi_numa.core import numbers
from xapi_numa.core.host import BatchResult, MemoryMap
from xapi_numa.core.policy import MAX_NODES
from xapi_numa.core.units import MAX_SIZE, PAGE_SHIFT, SizeRange
from xapi_numa.errors import InvalidArgument

# The classes of libxenuma's xn_mig_scan, one byte per gfn (XN_GFN_* in libxenuma.h).
MOVABLE, NOT_RAM, MAGIC, GRANTED, VCPU_INFO, EVTCHN, CHANGED = range(7)
SKIP_REASONS = {NOT_RAM: "not-ram", MAGIC: "magic", GRANTED: "granted", VCPU_INFO: "vcpu-info",
                EVTCHN: "evtchn", CHANGED: "changed"}
SKIP_EXPLAINED = {
    "not-ram": "not ordinary RAM (holes, MMIO, shared_info, grant-table frames)",
    "magic": "toolstack pages named by HVM params (xenstore, console, ioreq, rings)",
    "granted": "granted to another domain (a backend may map it or copy into it)",
    "vcpu-info": "laid out like a vcpu_info or time area Xen keeps mapped",
    "evtchn": "laid out like a FIFO event-channel control block or event array",
    "changed": "changed while the guest was paused (probe): Xen or a backend writes it",
}
SUPERPAGE_PAGES = 512
DEFAULT_BATCH = 512
MAX_BATCH = 8192
DEFAULT_VERIFY_CHUNK = 16
PAGE = 1 << PAGE_SHIFT
MOVE_MAX = SizeRange(PAGE, MAX_SIZE)  # what a move's --max (the plugin's max) takes: a page at least


def _gfns_of(classes: bytes, code: int) -> List[int]:
    """Indexes of one class.  A guest's map is long runs of one class (RAM, then a hole, ...),
    so it is read run by run: a search per gfn took most of a long simulation's time."""
    out: List[int] = []
    for run in re.finditer(re.escape(bytes([code])) + b"+", classes):
        out.extend(range(run.start(), run.end()))
    return out


def movable_gfns(memory: MemoryMap) -> List[int]:
    return _gfns_of(memory.classes, MOVABLE)


def gfns_within(gfns: Sequence[int], spans_: Sequence[Tuple[int, int]]) -> List[int]:
    """The ascending ``gfns`` that fall in one of the [start, end) gfn spans (a vnode's ranges)."""
    out: List[int] = []
    for start, end in sorted(spans_):
        lo, hi = bisect.bisect_left(gfns, start), bisect.bisect_left(gfns, end)
        out.extend(gfns[lo:hi])
    return sorted(out)


def skipped_counts(memory: MemoryMap) -> Dict[str, int]:
    """Gfns that stay, by reason (RAM reasons only: holes are not counted)."""
    return {name: memory.classes.count(bytes([code])) for code, name in SKIP_REASONS.items()
            if name != "not-ram" and memory.classes.count(bytes([code]))}


def skipped_gfns(memory: MemoryMap) -> Dict[str, List[int]]:
    out = {name: _gfns_of(memory.classes, code) for code, name in SKIP_REASONS.items() if name != "not-ram"}
    return {name: gfns for name, gfns in out.items() if gfns}


def spans(gfns: Iterable[int]) -> List[Tuple[int, int]]:
    """Ascending gfns as [start, end) spans of consecutive ones."""
    out: List[Tuple[int, int]] = []
    for g in gfns:
        if out and out[-1][1] == g:
            out[-1] = (out[-1][0], g + 1)
        else:
            out.append((g, g + 1))
    return out


def ranges(gfns: Iterable[int]) -> str:
    """'0x10-0x1f,0x40' for a sorted gfn list."""
    return ",".join(f"{a:#x}" if b == a + 1 else f"{a:#x}-{b - 1:#x}" for a, b in spans(gfns))


def window_for(batch: int) -> int:
    """Gfn window per batch: whole superpage runs when the batch can hold one."""
    return batch if batch < SUPERPAGE_PAGES else (batch // SUPERPAGE_PAGES) * SUPERPAGE_PAGES


def plan_batches(gfns: Sequence[int], batch: int, max_pages: Optional[int] = None) -> List[Tuple[int, ...]]:
    """Cut ascending gfns into batches of at most ``batch`` pages, each within one
    aligned window, stopping after ``max_pages``."""
    window = window_for(batch)
    chosen = gfns if max_pages is None else gfns[:max_pages]
    batches: List[Tuple[int, ...]] = []
    current: List[int] = []
    current_window = -1
    for g in chosen:
        w = g // window
        if current and (w != current_window or len(current) >= batch):
            batches.append(tuple(current))
            current = []
        current_window = w
        current.append(g)
    if current:
        batches.append(tuple(current))
    return batches


def whole_runs(batch: Sequence[int]) -> int:
    """Complete, aligned 2 MiB runs in a batch (what can stay a superpage)."""
    runs, i = 0, 0
    while i + SUPERPAGE_PAGES <= len(batch):
        if batch[i] % SUPERPAGE_PAGES == 0 and batch[i + SUPERPAGE_PAGES - 1] == batch[i] + SUPERPAGE_PAGES - 1:
            runs += 1
            i += SUPERPAGE_PAGES
        else:
            i += 1
    return runs


# Pause-time model for hardware (what planners and the simulator use).  The
# two copies are memcpy-bound: 4 GiB/s each on one core (a conservative
# figure for 4 KiB copies) gives the >= 1 GiB/s per stream the primitive is meant
# to reach; the rest is hypercall and
# allocator work, order-9 populate about 5x cheaper per page than order 0
# (as measured under emulation).  Not measured on hardware here.
COPY_BYTES_PER_S = 4 << 30
MAP_PAGE_S = 0.2e-6
RELEASE_PAGE_S = 0.1e-6
POPULATE_PAGE_S = 0.5e-6
POPULATE_SUPERPAGE_S = POPULATE_PAGE_S * SUPERPAGE_PAGES / 5
HYPERCALL_S = 2e-6


def estimated_pause(pages: int, superpages: int, verify_chunk: int = DEFAULT_VERIFY_CHUNK) -> float:
    """Seconds one batch keeps the guest paused on hardware (model)."""
    small = max(0, pages - superpages * SUPERPAGE_PAGES)
    chunks = -(-pages // max(1, verify_chunk))
    return (2 * pages * PAGE / COPY_BYTES_PER_S + 2 * pages * MAP_PAGE_S + pages * RELEASE_PAGE_S
            + small * POPULATE_PAGE_S + superpages * POPULATE_SUPERPAGE_S + (2 * chunks + 6) * HYPERCALL_S)


def pacing_gap(pause: float, pages: int, rate: Optional[float]) -> float:
    """Seconds to wait after a batch: the guest gets at least as long running as it
    spent paused, and the average stays under ``rate`` bytes/s."""
    gap = pause
    if rate:
        gap = max(gap, pages * PAGE / rate - pause)
    return max(0.0, gap)


@attrs.define
class MoveTally:
    """What a move has done so far (one per run; mutable, owned by the orchestrator)."""

    planned: int
    batches_planned: int
    moved: int = 0
    fallback: int = 0
    released: int = 0
    superpages: int = 0
    batches: int = 0
    pauses: List[float] = attrs.Factory(list)
    elapsed: float = 0.0
    raised_max: int = 0
    granted: int = 0  # planned gfns left in place: granted to another domain (or given back) by their batch's pause
    recognised: int = 0  # planned gfns left in place: a page Xen maps by their batch's pause (the scan missed it)

    def add(self, result: BatchResult) -> None:
        self.moved += result.moved
        self.fallback += result.fallback
        self.released += result.released
        self.superpages += result.superpages
        self.raised_max += result.raised_max
        self.granted += result.granted
        self.recognised += result.recognised
        self.batches += 1
        self.pauses.append(result.pause)

    def summary(self) -> Dict[str, object]:
        pauses = self.pauses or [0.0]
        # Throughput while the guest was paused for the move: the primitive's own speed.
        paused = sum(self.pauses)
        throughput = (self.released * PAGE / paused) if paused else 0.0
        return {"planned_pages": self.planned, "moved_pages": self.moved, "fallback_pages": self.fallback,
                "released_pages": self.released, "superpages": self.superpages, "batches": self.batches,
                "batches_planned": self.batches_planned,
                "pause_max_ms": round(max(pauses) * 1000, 3),
                "pause_median_ms": round(statistics.median(pauses) * 1000, 3),
                "throughput_mib_s": round(throughput / (1 << 20), 2),
                "elapsed_s": round(self.elapsed, 3), "raised_max_pages": self.raised_max,
                "granted_at_pause_pages": self.granted, "xen_mapped_at_pause_pages": self.recognised}


def found_running(domid: int, backed: int) -> str:
    """What recovery says of a guest someone unpaused before its batch was put back together."""
    return (f"domain {domid} was running again (someone unpaused it) before its page-move batch had put "
            f"every page's contents back: {backed} gfns without a frame were backed and given their saved "
            f"contents; the others keep what the guest wrote (the saved copy is older): check the guest")


def max_pages_note(domid: int, restored: int, unknown: int) -> Optional[str]:
    """What recovery did with a raise of max_pages the dead mover left (None: there was none)."""
    if restored:
        return f"domain {domid}: max_pages set back to the toolstack's {restored} pages (its mover died with it raised)"
    if unknown:
        # a record from before raises were recorded: if the mover died inside one, nothing says the old value
        return (f"domain {domid}: its batch record is from an older version, which did not record a raise of "
                f"max_pages: if its mover died with max_pages raised, it stays raised (xl list shows it) until "
                f"the toolstack next sets the VM's memory")
    return None


def parse_node(text: str, field: str = "to") -> int:
    """One node, in Xen's syntax: ``1``, ``node:1`` or ``nodes:1`` (ASCII digits only)."""
    allowed = "one node, 0..{0} as 1, node:1 or nodes:1".format(MAX_NODES - 1)
    value = numbers.trim(text) if isinstance(text, str) else text
    prefixed = isinstance(value, str) and value.startswith(("nodes:", "node:"))
    number = value.split(":", 1)[1] if prefixed else value
    if prefixed and not numbers.is_decimal(number):  # quote what was typed, prefix and all
        raise InvalidArgument(field, "{} is not one node number (ASCII digits 0-9 only)".format(
            numbers.shown(value)), allowed)
    return numbers.parse_decimal(number, field, allowed, maximum=MAX_NODES - 1, what="node number")


RATE_MIN, RATE_MAX = 0.1, float(1 << 20)  # MiB/s: a move at less would take days; more is no limit
RATE_ALLOWED = "MiB/s, from {} to {}, e.g. 200 or 12.5 (ASCII digits)".format(RATE_MIN, int(RATE_MAX))


def format_rate(bytes_per_s: float) -> str:
    """bytes/s as :func:`parse_rate` reads it back (MiB/s in plain decimals: ``{:g}``
    wrote 1e+06 from a million, which the background mover then refused)."""
    return "{:.6f}".format(bytes_per_s / (1 << 20)).rstrip("0").rstrip(".")


def parse_rate(text: Optional[str], field: str = "rate") -> Optional[float]:
    """MiB/s as typed (``200``, ``12.5``) -> bytes/s (None: unpaced beyond the duty cycle)."""
    if text is None:
        return None
    plain = numbers.trim(text)
    negative = plain.startswith("-")  # a number all the same: out of range, said as any other
    whole, dot, fraction = plain[negative:].partition(".")
    if not numbers.is_decimal(whole) or (dot and not numbers.is_decimal(fraction)) \
            or len(whole) > numbers.MAX_DIGITS or len(fraction) > numbers.MAX_DIGITS:
        raise InvalidArgument(field, "{} is not a number".format(numbers.shown(text)), RATE_ALLOWED)
    value = float(plain)  # what was checked
    if negative or not RATE_MIN <= value <= RATE_MAX:
        raise InvalidArgument(field, "{} MiB/s is out of range".format(numbers.shown_digits(plain)),
                              RATE_ALLOWED)
    return value * (1 << 20)
