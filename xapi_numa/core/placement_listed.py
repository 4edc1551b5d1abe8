"""Placement on the nodes a policy lists, in its order.  Pure, no I/O.

Owns what the placement engine (:mod:`xapi_numa.core.placement`) does once a policy
lists nodes (or says ``nearest``) and their order is known: ``best_effort`` takes the
first node of the order that holds the VM alone; otherwise the shortest prefix of the
order that holds it (and that Xen's build keeps it on, ``BuildRoom``), then, unless
``on_exhaust=fail``, the order followed by the nodes nearest its first; when none does,
the refusal names the listed nodes, what they have and why they do not keep the VM.
"""

from typing import List

from xapi_numa.errors import NoCapacity
from xapi_numa.core.placement_values import Placement, Request
from xapi_numa.core.cpuset import format_ids
from xapi_numa.core.units import format_size
from xapi_numa.core.node_sets import smallest_prefix
from xapi_numa.core.set_room import BuildRoom
from xapi_numa.core.placement_result import PlacementAssembly


def place_listed(host: PlacementAssembly, order: List[int], avail: List[int], reach: List[int], request: Request,
                 need: int, room: BuildRoom) -> Placement:
    """The placement on ``order`` (the listed nodes the CPU mask allows, then the nearest
    ones if the policy says so); ``need``: the whole build; ``reach``: every node's room for its
    share of the overhead, outside the mask too (:meth:`PlacementAssembly.placement_on_one`)."""
    policy = request.policy
    first, (cap, set_need) = order[0], room.for_sets(avail, need)
    if policy.mode == "best_effort":
        # fewest nodes: the first listed node that holds it alone
        for k, node in enumerate(order):
            if cap[node] >= set_need:
                why = f"fits on node {node}"
                if k:
                    skipped = ",".join(map(str, order[:k]))
                    why += f"; listed node{'s' if k > 1 else ''} {skipped} {'are' if k > 1 else 'is'} full"
                return host.placement_on([node], reach, request, room, node != first, why)
    listed_free = sum(avail[n] for n in order)
    short = f"{format_size(listed_free)} available"  # (with why they do not keep it, where they do not)
    allowed = host.allowed(request)
    extended = order + [m for m in host.topology.nearest(first) if m not in order and m in allowed]
    for keep in room.passes:
        prefix = smallest_prefix(order, cap, set_need, room.keeps if keep else None)
        if prefix is not None:
            if prefix == [first]:
                why = f"fits on node {first}"
            elif len(prefix) == 1:
                why = f"node {first} is full; the next listed node {prefix[0]} holds it"
            else:
                why = f"node {first} is short; memory spreads over listed nodes {','.join(map(str, prefix))}"
            return host.placement_on(prefix, reach, request, room, prefix != [first], why + room.spill(prefix))
        if policy.on_exhaust == "fail":
            continue
        prefix = smallest_prefix(extended, cap, set_need, room.keeps if keep else None)
        if prefix is not None:
            extra = [n for n in prefix if n not in order]
            why = (f"listed nodes {','.join(map(str, order))} are short "
                   f"({short}{room.lacking(order, avail, need)}); "
                   f"fell back to nearest node{'s' if len(extra) > 1 else ''} {','.join(map(str, extra))}")
            return host.placement_on(prefix, reach, request, room, True, why + room.spill(prefix))
    which = f"nodes {','.join(map(str, order))} have" if len(order) > 1 else f"node {order[0]} has"
    # on_exhaust=fail, or a strict VM that no allowed nodes keep (those have the room: checked above)
    why = " and on_exhaust=fail" if policy.on_exhaust == "fail" else "" if extended == order else \
        f"; with the nearest nodes too (nodes {format_ids(extended)}){room.lacking(extended, avail, need)}"
    raise NoCapacity(f"{which} {short}{room.lacking(order, avail, need)}; the VM needs {format_size(need)}{why}",
                     ("nodes", ",".join(map(str, order)), str(need), str(listed_free)))
