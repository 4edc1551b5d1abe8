"""Xen's DMA zone: the free memory its allocator gives a domain last.  Pure.

On an x86 host with more than one node, Xen 4.17 keeps the memory below a
"DMA width" for allocations that need low addresses (dom0's bounce buffers,
devices that cannot reach high memory).  ``alloc_domheap_pages`` first looks
in every zone above that width, on the domain's nodes and then on the others,
and takes memory below it only when that finds nothing: a build with node
affinity spills to other nodes before it gets the DMA zone of its own.  So
memory below the width is free but is no room for a VM placed on its node.

The width (``end_boot_allocator``) is ``dma_bits=`` from Xen's command line,
else, on more than one node, ``arch_get_dma_bitsize``'s: a quarter of the
first node with memory below 4 GiB, rounded up to a power of two, at most
32 bits.  What this module owns: that rule, read from the command line and
the nodes' spanned sizes (``xc_numainfo``'s ``memsize``), and how placement
counts the zones (:func:`place`: a last resort, reserved where Xen fills it).
"""
import re
from typing import List, Optional, Sequence, Tuple

import attrs

from xapi_numa.core import xenalloc
from xapi_numa.core.placement import NodeLoads, Placement, Planner, Request
from xapi_numa.errors import NoCapacity, RoomReserved

PAGE_SHIFT = 12
MAX_WIDTH = 32  # arch_get_dma_bitsize caps the default at 4 GiB
# x86's zones end at PADDR_BITS (52): a width at or above it leaves no zone above, so
# alloc_domheap_pages makes no first pass and nothing is kept back
NO_ZONE_ABOVE = 52
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def dma_width(commandline: str, node_sizes: Sequence[int]) -> Optional[int]:
    """Xen's DMA width in bits, or None where it keeps no DMA zone (one node and no
    ``dma_bits=``, or a width above every zone).  ``node_sizes``: each node's
    spanned bytes, node 0 first.

    The default assumes that the first node with memory starts at address 0, as
    on every x86 host (its low memory holds the BIOS and the boot loader)."""
    given = commandline_dma_bits(commandline)
    if given:
        return given if given < NO_ZONE_ABOVE else None
    if len(node_sizes) < 2:
        return None  # arch_want_default_dmazone: more than one online node
    spanned = next((size >> PAGE_SHIFT for size in node_sizes if size > 0), 0)
    if spanned == 0:
        return None
    return min(max(spanned // 4 - 1, 0).bit_length() + PAGE_SHIFT, MAX_WIDTH)


def commandline_dma_bits(commandline: str) -> int:
    """The last ``dma_bits=`` of Xen's own command line, parsed as Xen's
    ``parse_params`` does (options split at spaces only, the name compared
    exactly, a ``no-`` prefix dropped, the number's leading digits taken even
    where text follows, a bare ``dma_bits`` read as the empty value: 0); 0, which
    means the default, where there is none."""
    value = 0
    for word in commandline.split(" -- ")[0].split(" "):
        name, _, text = word.partition("=")
        if (name[3:] if name.startswith("no-") else name) == "dma_bits":
            value = _as_unsigned_int(_strtoll_prefix(text), value)
    return value


def _strtoll_prefix(text: str) -> int:
    """``simple_strtoll(text, &end, 0)``: an optional '-', then the leading decimal, 0x
    hex or 0 octal number (0 where there is none); what follows it is ignored, as Xen
    assigns the value before it complains about the rest."""
    sign = -1 if text.startswith("-") else 1
    found = _NUMBER.match(text[1:] if sign < 0 else text)
    if found is None:
        return 0
    digits = found.group(0)
    if digits[:2].lower() == "0x":
        return sign * int(digits[2:], 16)
    return sign * (int(digits, 8) if digits.startswith("0") else int(digits, 10))


def _as_unsigned_int(value: int, before: int) -> int:
    """``assign_integer_param`` into an ``unsigned int``: the value as 64 bits, refused
    (the parameter keeps ``before``) between 2^32 and -2^31, else its low 32 bits (so
    ``dma_bits=-1`` is a width above every zone: no DMA zone)."""
    wide = value % (1 << 64)
    if (1 << 32) - 1 < wide < (1 << 64) - (1 << 31):
        return before
    return wide & 0xFFFFFFFF


def place(planner: Planner, loads: NodeLoads, request: Request, builds_landed: bool = False) -> Placement:
    """The planner's choice on the nodes' room; where none has room enough, on their
    room and DMA zones, which Xen gives a build once every node is out of the rest --
    but not for a ``strict`` VM or one whose policy says ``on_exhaust=fail``: Xen
    would spill its memory off its nodes before it touched theirs.
    ``builds_landed``: plan as the host will be once the builds under way have landed
    (a dry run's answer, which ranks hosts and plans vNUMA layouts: the start itself
    waits for those builds, :class:`RoomReserved`), not refuse for them now."""
    try:
        return planner.place(loads, request)
    except NoCapacity:
        policy = request.policy
        if not any(loads.dma) or policy.binding:
            raise
        return _as_xen_fills(planner, request, loads, planner.place(loads.with_dma(), request), builds_landed)


def takes_zones(loads: NodeLoads, placement: Placement) -> bool:
    """Does the placement put more on some node than its room above the DMA zone (less what
    is reserved there)?  Only :func:`place`'s fallback does."""
    room = [max(0, f - r) for f, r in zip(loads.free, loads.reserved)]
    return any(b > room[n] for n, b in placement.memory)


def _as_xen_fills(planner: Planner, request: Request, loads: NodeLoads, placement: Placement,
                  builds_landed: bool = False) -> Placement:
    """The placement's memory where Xen puts it: its build (:mod:`xapi_numa.core.xenalloc`, as the
    planner's own prediction: the overhead round every node with CPUs, then the RAM striped over its
    nodes in 1 GiB, 2 MiB and 4 KiB extents) gets no extent from a DMA zone while any node has one of
    that size above it (its nodes first, then the others: ``get_free_buddy``), but a GiB none has
    above comes from a zone before libxc asks 2 MiB extents; held per node as the most any start of
    the round puts there.

    Xen's view of the room is free memory, reservations included, since Xen cannot see them.  Where
    the build takes memory reserved for another start whose build has not landed yet, it would take
    that start's memory (which then spills off its nodes): :class:`RoomReserved` instead, until
    those builds are done (seen as a spill in a boot storm on a host full above its DMA zones)."""
    room = [max(0, f - r) for f, r in zip(loads.free, loads.reserved)]  # what no start holds
    zone = [max(0, f + d - r) - a for f, d, r, a in zip(loads.free, loads.dma, loads.reserved, room)]
    # Xen's view: free memory, reservations included (or, the builds under way landed, what no start holds)
    above, below = (room, zone) if builds_landed else (list(loads.free), list(loads.dma))
    take, low = _xen_takes(planner, request, placement, [a >> PAGE_SHIFT for a in above],
                           [b >> PAGE_SHIFT for b in below])
    order = list(placement.nodes) + [n for n in range(len(room)) if n not in placement.nodes]
    held = [] if builds_landed else [n for n in order if (take[n] - low[n]) << PAGE_SHIFT > room[n]
                                     or low[n] << PAGE_SHIFT > zone[n]]
    if held:
        raise RoomReserved("the memory Xen would give this VM first (above the DMA zone on node {}) is reserved "
                           "for starts whose builds are under way, and Xen cannot see reservations: it would take "
                           "theirs; try again once they are built".format(",".join(map(str, held))),
                           ("memory", str(sum(take) << PAGE_SHIFT)))
    # a fallback: its memory goes beyond the nodes chosen for it (pool tools rank it so)
    return attrs.evolve(placement, memory=tuple((n, p << PAGE_SHIFT) for n, p in enumerate(take) if p), fallback=True,
                        reason=placement.reason + "; with DMA zones, which Xen gives it once every node's "
                                                  "room is taken: that room is reserved first")


def _xen_takes(planner: Planner, request: Request, placement: Placement, above: Sequence[int],
               below: Sequence[int]) -> Tuple[List[int], List[int]]:
    """Pages per node the placement's build takes from ``above`` (free above the DMA width) and
    ``below`` (the zones), the most any start of the round puts on each: (all, of them in a zone)."""
    free, zone, nodes = [a + b for a, b in zip(above, below)], list(below), list(placement.nodes)
    overhead_round = planner.overhead.round_of([n for n in range(len(free)) if planner.pcpus[n]])
    got, _ = xenalloc.take_overhead(-(-placement.overhead >> PAGE_SHIFT), free,
                                    nodes if overhead_round is None else overhead_round, zone)
    take, low = [got.get(n, 0) for n in range(len(free))], [b - z for b, z in zip(below, zone)]
    most, most_low = [0] * len(free), [0] * len(free)
    for last in nodes:  # (the node the round starts after is unknown: every one of the set)
        budget, left = list(free), list(zone)
        ram, _ = xenalloc.build(-(-request.memory >> PAGE_SHIFT), request.dtype, budget, nodes, last, zone=left,
                                video=request.video >> PAGE_SHIFT)
        most = [max(m, ram.get(n, 0)) for n, m in enumerate(most)]
        most_low = [max(m, z - y) for m, z, y in zip(most_low, zone, left)]
    return [t + m for t, m in zip(take, most)], [t + m for t, m in zip(low, most_low)]
