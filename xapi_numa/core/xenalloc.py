"""Xen's domain heap allocator, as far as NUMA placement goes.

What it models (xen/common/page_alloc.c, get_free_buddy):
* an explicit node is tried first; with ``exact`` nothing else is tried;
  without, each extent it has no room for goes to the first node with room in
  ``next_node`` order from it through the affinity, then the other nodes;
* otherwise each allocation (one extent) starts at the node after the
  domain's ``last_alloc_node`` within its node affinity and goes to the first
  node there with room, which becomes ``last_alloc_node`` (alloc_heap_pages):
  memory is striped round-robin over the nodes of the affinity that have room;
* when no node of the affinity has room, the other nodes are tried in
  ascending order;
* outstanding claims: free memory promised to other domains' claims is not
  available; a domain's own claim is used up as it allocates.
Extents are 2 MiB for translated guests (HVM/PVH: superpages) and single
pages for PV guests (libxc populates PV memory with order-0 extents); once
no node has a whole extent left the rest goes page by page.
"""

from typing import Dict, List, Optional, Sequence

from xapi_numa.errors import NoCapacity

SUPERPAGE = 512  # pages in a 2 MiB extent


def _rotate_after(order: Sequence[int], last: int) -> List[int]:
    """``order`` starting at the first node after ``last`` (cycle_node)."""
    after = [n for n in order if n > last]
    return after + [n for n in order if n <= last]


def room_for_extents(free_bytes: Sequence[int], need: int) -> List[int]:
    """Free bytes per node as room for an HVM/PVH build of ``need`` bytes.

    Such a build takes 2 MiB extents, and an extent goes to a node outside the
    affinity when no node in it has a whole one left (:func:`distribute`).  A
    node that holds the build's whole extents (the rest goes in 4 KiB pages)
    counts all its free bytes; any other counts its whole extents only: exact
    for one node, and on the safe side for a set of them.
    """
    extent = SUPERPAGE * 4096  # bytes
    whole = need - need % extent
    return [f if f - f % extent >= whole else f - f % extent for f in free_bytes]


def distribute(
    pages: int,
    free: List[int],
    affinity: Sequence[int],
    last_alloc_node: int,
    extent: int,
    node: Optional[int] = None,
    exact: bool = False,
) -> (Dict[int, int], int):
    """Decide where ``pages`` go; mutate ``free``; return (per node, last node).

    Raises NoCapacity (changing nothing) when they do not fit.
    """
    budget = list(free)
    got: Dict[int, int] = {}
    remaining = pages
    last = last_alloc_node

    def take(n: int, count: int) -> None:
        nonlocal remaining
        budget[n] -= count
        got[n] = got.get(n, 0) + count
        remaining -= count

    while remaining > 0:
        size = extent if remaining >= extent else 1
        if node is not None:
            # An explicit node: all from there when possible.
            if budget[node] >= size:
                take(node, min(remaining - remaining % size, budget[node] - budget[node] % size) or size)
                last = node
                continue
            if exact:
                break
            # get_free_buddy: every extent starts at the named node again, then goes on with
            # next_node() through the affinity (from its first node if the named one is not in
            # it), then the other nodes: the overflow fills node after node, no round robin
            order = _rotate_after(affinity, node) if node in affinity else sorted(affinity)
            order += [n for n in range(len(budget)) if n not in affinity]
            spill = next((n for n in order if budget[n] >= size), None)
            if spill is not None:
                take(spill, min(budget[spill] - budget[spill] % size, remaining - remaining % size) or size)
                last = spill
                continue
            if size > 1:
                extent = 1
                continue
            break
        alive = [n for n in _rotate_after(affinity, last) if budget[n] >= size]
        if alive:
            # Round robin over the nodes with room: a whole cycle gives each one
            # extent and ends at the last of them.  Take whole cycles at once.
            cycles = min(min(budget[n] // size for n in alive), (remaining // size) // len(alive))
            if cycles > 0:
                for n in alive:
                    take(n, cycles * size)
                last = alive[-1]
                continue
            take(alive[0], size)  # the first node with room after the last one that gave
            last = alive[0]
            continue
        others = [n for n in range(len(budget)) if n not in affinity and budget[n] >= size]
        if others:
            n = others[0]
            count = min(budget[n] - budget[n] % size, remaining - remaining % size) or size
            take(n, count)
            last = n  # the next extent starts after it again (cycle_node within the affinity)
            continue
        if size > 1:
            extent = 1  # no node has a whole superpage: go page by page
            continue
        break
    if remaining > 0:
        where = f"node {node}" if node is not None and exact else "the host"
        raise NoCapacity(f"not enough free memory on {where} for {pages} pages "
                         f"({pages - remaining} would fit)", ("memory", str(pages)))
    free[:] = budget
    return got, last
