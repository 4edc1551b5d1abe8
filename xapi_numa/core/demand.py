"""Guests' demand for CPU, as credit2's load averages see it (pure).

Credit2's balancer evens out its run queues' load averages (2^30 ns windows),
which lag the real load for a few windows after a guest's demand changes (a
pause, an unpause, a start, a stop): :func:`demand_changed` says when that
happened, :func:`is_settling` whether the averages may still lag it.  A guest
whose demand rose (:func:`demand_rose`, an unpause or a start) is the one
whose averages catch up: an unpaused vCPU's starts again from 0 in Xen 4.17
(``update_svc_load`` restarts it once a window has passed since its last
update).  ``core/homing.py`` says what homing does with them.
"""
from typing import Dict, Mapping, Optional, Set

from xapi_numa.core.snapshot import HostSnapshot

# seconds: credit2's load averages span 2^30 ns, and a pause's trace in them fades below the
# balancer's tolerance (1/8 of a vCPU) after about 5 windows
CREDIT2_SETTLE = 5.0


def demand(snap: HostSnapshot, before: Optional[Mapping[int, int]] = None) -> Dict[int, int]:
    """Per guest: how many of its vCPUs run or want to run (a guest not read this time:
    what it was, from ``before``; not a guest that stopped)."""
    out = {domid: sum(1 for v in vs if v.state in ("running", "runnable"))
           for domid, vs in snap.vcpus.items() if domid != 0}
    out.update({domid: before[domid] for domid in snap.unread.values() if before and domid in before})
    return out


def demand_changed(before: Optional[Mapping[int, int]], after: Mapping[int, int], snap: HostSnapshot) -> bool:
    """Did a guest start, stop, or change its demand by a quarter of its vCPUs (at
    least 2): a pause, an unpause, a workload starting?  Credit2's run queue loads
    then lag behind for a few load windows.  ``before`` None: nothing seen yet."""
    if before is None:
        return False
    if set(before) != set(after):
        return True
    sizes = {d.domid: d.vcpus for d in snap.domains}
    return any(abs(after[d] - before[d]) * 4 >= max(sizes.get(d, 1), 8) for d in after)


def demand_rose(before: Optional[Mapping[int, int]], after: Mapping[int, int], snap: HostSnapshot) -> Set[int]:
    """The guests whose demand rose by a quarter of their vCPUs (at least 2), or that
    started: an unpause, a start.  Under credit2 their load averages lag for a few
    load windows (an unpaused vCPU's starts again from 0).  ``before`` None: none."""
    if before is None:
        return set()
    sizes = {d.domid: d.vcpus for d in snap.domains}
    return {d for d in after if (after[d] - before.get(d, 0)) * 4 >= max(sizes.get(d, 1), 8)}


def is_settling(snap: HostSnapshot, demand_changed_at: Optional[float], settle: float = CREDIT2_SETTLE) -> bool:
    """Is credit2 still balancing on load averages that lag a change of demand?"""
    return (snap.scheduler == "credit2" and demand_changed_at is not None
            and snap.time - demand_changed_at < settle)
