"""vCPU homing: bring displaced vCPUs back (pure: snapshot and pin records in, actions out).

A vCPU is *displaced* when it runs on a pCPU outside its soft affinity.  The
schedulers may never bring it back: credit1 only steals queued vCPUs and a
vCPU running alone only moves to an idle pCPU; credit2's balancer looks at
run queue loads only, never at soft affinity.  A displaced vCPU is *fixable*
when a pCPU of its home (:func:`pin_target`) is idle or runs a displaced vCPU
(a swap), and no more vCPUs want it than it has pCPUs (else the scheduler's
spreading is right).

The fix is a temporary hard pin to the soft mask (:class:`PinTemporarily`),
undone (:class:`RestorePin`) once the vCPU is home or after a timeout.  Under
both schedulers a swap is undone as a pair, in one cycle: with a due vCPU
(displaced for ``threshold`` seconds) go the displaced vCPUs running on its
home, whatever their age.  Credit1 needs nothing more: the pins are undone
as soon as the vCPUs are home, and nothing pushes them out again.

Credit2 does, and why was measured on the simulator's model of Xen 4.17's
credit2.c (run queues of at most 16 pCPUs, so a 28-pCPU socket has two):
its balancer evens out the run queues' *load averages* (2^30 ns windows)
and, after a change of demand (a VM paused, unpaused, started, stopped),
those averages lag the real load for a few seconds.  In that time it keeps
pushing and swapping vCPUs across nodes (4 s of churn after the seed
scenario's last pause, Xen alone).  Pinning a displaced pair then only
makes it push the next vCPU of the same VM out (the returned pair brings
its load average back with it): chasing it costs more writes than anything
and never converges within a few cycles.  What holds is to leave it no
vCPU to push but harmless ones (paused or idle vCPUs, whose averages are
the very lag it is evening out).  So under credit2:

* while demand changed in the last ``CREDIT2_SETTLE`` seconds
  (:func:`settling`), or for a VM that was pushed out again soon after its
  pins were undone (:func:`bounced`) or while pins of ours hold it, every
  vCPU of the VMs involved (the due vCPUs' VMs and their partners' VMs) is
  pinned home, if their homes have room;
* pins that are home are held until the run queues have settled: no change
  of demand and no new pin for ``CREDIT2_SETTLE`` seconds, and no held VM
  displaced meanwhile (at most ``HOLD_MAX`` seconds; a paused VM's pins are
  undone at once, they hold nothing).  Undone earlier, the balancer swaps
  vCPUs with near-equal averages out again; undone then, a restored vCPU
  stays (the re-pick honours soft affinity and nothing is uneven);
* unless the unevenness lasts: a node with 4 runnable vCPUs on 4 pCPUs
  next to one with 2 stays uneven to the balancer however long one waits.
  A VM pushed out again within ``bounce_window`` of its pins being undone,
  with no change of demand since (:func:`pushed_out_for_good`), has its
  next pins held while no more vCPUs want its home than it has pCPUs and
  it is not paused, up to ``BOUNCED_HOLD_MAX`` (:func:`holds_longer`).
  On bench_rebalance's bursty trace (seed 1, bench/trace_rebalance.py),
  letting go after ``HOLD_MAX``: 160 of 190 restores followed by a push
  within 10 s, 575 vCPU-s away from home; held so: 27 of 56, 199 vCPU-s;
* a pin to a home the rebalancer has moved since is undone at once.

* a VM whose demand rose in the last ``CREDIT2_SETTLE`` seconds (``demand.demand_rose``:
  unpaused, started) is *lagging*: its load averages are the ones catching up.  Its
  displaced vCPUs are not pinned but *re-picked* (:data:`REPICK`): their own hard
  affinity written again, which makes credit2 pick their run queue again within
  their soft affinity, one write with nothing to undo; and it is not held whole.
  Held whole is the other VM (the steady one): that leaves the balancer nothing
  of it to pull into the lagging VM's home, which stays the lighter node while
  the averages catch up, so it only moves load in (paused vCPUs, the lagging
  VM's own displaced ones).  A VM re-picked within ``bounce_window`` is not
  re-picked again: its stragglers are left to the balancer, which brings them
  home (pinning the lagging VM whole on a bounce cost 56 more writes on a seed).

The cost is writes: two per vCPU of the VMs held, one per re-pick.  Measured
(bench_daemon, seeds 1-5, on the model that moves a running vCPU once its pCPU
has chosen the next, as Xen 4.17 does): home 2.8, 0.5, 0.8, 1.8, 1.8 s after the
seed scenario's last pause, at 3.0, 2.5, 2.1, 2.5, 2.4 writes per displaced
vCPU; on seeds 6-13 0.5-1.9 s at 1.7-2.5 (holding both VMs whole: 0.5 s at
4.0-5.1).  Why 2 looks out of reach, and what else was tried:
``docs/credit2-homing.md``.

VMs the caller excludes (policy ``any``, ``strict`` or unreadable, a memory move
in flight: ``ops.left_alone``), domains shut down and not yet destroyed, and vCPUs
the admin hard-pinned (hard affinity narrower than the host and not a pin of ours)
are left alone.  A pin of ours on a domain that shuts down is still undone as any
other (our own write undone; a domain destroyed meanwhile makes it ``gone``, and
one no longer listed has its record forgotten).  A pin is undone only while the vCPU's
hard affinity is still our pin: if the admin set another one meanwhile, the
record is dropped and the admin's choice stays.
"""
from typing import Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import attrs

from xapi_numa.core.actions import PinTemporarily, RestorePin, SetAffinity
from xapi_numa.core.demand import CREDIT2_SETTLE, is_settling
from xapi_numa.core.host import VcpuInfo
from xapi_numa.core.locality import soft_is_narrow
from xapi_numa.core.boots import of_this_boot
from xapi_numa.core.snapshot import HostSnapshot

VcpuKey = Tuple[int, int]  # (domid, vcpu)
HOLD_MAX = 15.0  # seconds a credit2 pin that is home may be held for the run queues to settle
# seconds a credit2 VM pushed out again soon after its pins were undone may be held home: the
# unevenness is not lag but lasting (a node with more runnable vCPUs than another)
BOUNCED_HOLD_MAX = 60.0
HELD_WITH_ITS_VM = "held home with its VM while credit2's load averages settle"
REPICK = "re-picked: its VM's credit2 load averages lag a rise of its demand"
# a pin journalled for a domain that has since gone, the VM running again as a new domain (a
# reboot, or a migration back): its record says nothing of the new domain's affinity
REBOOTED = "the VM runs as another domain now: the pin was on the old one"


@attrs.frozen
class PinRecord:
    """A temporary pin of ours, as journalled before it was made."""

    uuid: str
    vcpu: int
    domid: int
    pinned_to: FrozenSet[int]
    original_hard: FrozenSet[int]
    pinned_at: float
    boot: str = ""  # the host's boot id when it was made (Hypervisor.boot_id; "": not known)


def displaced(snap: HostSnapshot) -> List[VcpuInfo]:
    """Running vCPUs outside a meaningful soft affinity."""
    topo = snap.topology
    out = []
    for domid, vs in snap.vcpus.items():
        if domid == 0:
            continue
        for v in vs:
            if v.state == "running" and soft_is_narrow(v, topo) and v.cpu not in v.soft:
                out.append(v)
    return out


def fixable(v: VcpuInfo, running: Mapping[int, VcpuInfo], displaced_keys: Set[VcpuKey],
            usable: FrozenSet[int]) -> bool:
    """Is a pCPU of its home free, or held by another displaced vCPU?  Only pCPUs it
    may run on count: in its hard affinity, online, and in its CPU pool (``usable``)."""
    for cpu in v.soft & v.hard & usable:
        other = running.get(cpu)
        if other is None or (other.domid, other.vcpu) in displaced_keys:
            return True
    return False


def displaced_since(snap: HostSnapshot, previous: Mapping[VcpuKey, float]) -> Dict[VcpuKey, float]:
    """When each currently displaced vCPU was first seen displaced (a VM not read this
    time keeps what was known of it)."""
    unread = set(snap.unread.values())
    out = {key: t for key, t in previous.items() if key[0] in unread}
    out.update({(v.domid, v.vcpu): previous.get((v.domid, v.vcpu), snap.time) for v in displaced(snap)})
    return out


def plan(snap: HostSnapshot, since: Mapping[VcpuKey, float], threshold: float,
         excluded: Iterable[int] = (), pinned: Iterable[VcpuKey] = (),
         escalate: Iterable[int] = (), settling: bool = False, lagging: Iterable[int] = (),
         repicked: Iterable[int] = ()) -> List[object]:
    """Pins that bring home the vCPUs displaced for at least ``threshold`` seconds,
    with their swap partners (the displaced vCPUs running on their homes), whatever
    the partners' age: a swap is undone in one cycle, as a pair.

    ``excluded``: domids to leave alone; ``pinned``: vCPUs already under a pin of
    ours; ``escalate``: domids that were pushed out again soon after their last pins
    were undone (see :func:`bounced`); ``settling``: credit2's load averages still
    lag a change of demand (see ``demand.is_settling``).  Under credit2, VMs with due
    vCPUs that are escalated, held by pins of ours, or found while settling have
    every vCPU pinned, with their partners' VMs, but for the ``lagging`` VMs (whose
    demand rose, see ``demand.demand_rose``): their displaced vCPUs are re-picked
    (:class:`SetAffinity`, their own hard affinity), unless the VM is in ``repicked``
    (re-picked a moment ago: left to the balancer).  See the module's docstring.
    """
    # a domain shut down, not yet destroyed, is no VM to bring home (nor a partner held with one)
    excluded = set(excluded) | {d.domid for d in snap.domains if d.shutdown}
    pinned = set(pinned)
    all_cpus = snap.topology.all_cpus
    running = snap.running_on()
    out = displaced(snap)
    keys = {(v.domid, v.vcpu) for v in out}
    has_room = _room_checker(snap)

    def eligible(v: VcpuInfo) -> bool:
        usable = snap.pool_cpus(v.domid) & all_cpus
        return (v.domid not in excluded and (v.domid, v.vcpu) not in pinned
                and v.hard >= snap.unpinned  # an admin pin is the admin's business
                and fixable(v, running, keys, usable) and has_room(pin_target(v, snap)))

    due = [v for v in out if snap.time - since.get((v.domid, v.vcpu), snap.time) >= threshold and eligible(v)]
    if not due:
        return []
    targets: Dict[VcpuKey, VcpuInfo] = {(v.domid, v.vcpu): v for v in due}
    for v in _occupants(due, running, keys):
        if eligible(v):
            targets.setdefault((v.domid, v.vcpu), v)
    lagging = set(lagging) if snap.scheduler == "credit2" else set()
    if snap.scheduler == "credit2":
        held = {domid for domid, _ in pinned}
        hot = {v.domid for v in due} if settling else (set(escalate) | held) & {v.domid for v in due}
        for domid in _credit2_partners([v for v in due if v.domid in hot], running, keys, excluded) - lagging:
            vs = [v for v in snap.vcpus.get(domid, ())
                  if soft_is_narrow(v, snap.topology) and v.hard >= snap.unpinned and (domid, v.vcpu) not in pinned]
            if all(has_room(pin_target(v, snap)) for v in vs):
                for v in vs:
                    targets.setdefault((domid, v.vcpu), v)
    uuids = {d.domid: d.uuid for d in snap.domains}
    repicked = set(repicked)  # a re-picked VM's stragglers: the balancer brings them home
    return [SetAffinity(v.domid, uuids.get(v.domid, ""), v.vcpu, hard=v.hard, reason=REPICK)
            if v.domid in lagging else
            PinTemporarily(v.domid, uuids.get(v.domid, ""), v.vcpu, pin_target(v, snap),
                           v.hard, "displaced" if key in keys else HELD_WITH_ITS_VM)
            for key, v in sorted(targets.items())
            if pin_target(v, snap) and not (v.domid in lagging and v.domid in repicked)]


def pin_target(v: VcpuInfo, snap: HostSnapshot) -> FrozenSet[int]:
    """A vCPU's home as a pin can hold it: its soft affinity inside its hard one (the host's
    guest mask) and its CPU pool.  Room is counted on it, every vCPU's the same way."""
    return v.soft & v.hard & snap.pool_cpus(v.domid)


def _occupants(due: Sequence[VcpuInfo], running: Mapping[int, VcpuInfo], keys: Set[VcpuKey]) -> List[VcpuInfo]:
    """The displaced vCPUs running on the due vCPUs' homes: their swap partners."""
    homes: Set[int] = set()
    for v in due:
        homes |= v.soft & v.hard
    return [running[cpu] for cpu in sorted(homes)
            if cpu in running and (running[cpu].domid, running[cpu].vcpu) in keys]


def _room_checker(snap: HostSnapshot) -> Callable[[FrozenSet[int]], bool]:
    """Can a home run every vCPU that wants to be there (running or runnable, its
    :func:`pin_target` inside it) at once?  If not, vCPUs held there would queue while
    pCPUs elsewhere idle: the scheduler's spreading is right and is not undone."""
    wanting = _wanting(snap, lambda v: soft_is_narrow(v, snap.topology))
    memo: Dict[FrozenSet[int], bool] = {}

    def has_room(home: FrozenSet[int]) -> bool:
        if home not in memo:
            memo[home] = sum(n for soft, n in wanting.items() if soft <= home) <= len(home)
        return memo[home]
    return has_room


def _wanting(snap: HostSnapshot, counted: Callable[[VcpuInfo], bool]) -> Dict[FrozenSet[int], int]:
    """Running or runnable guest vCPUs (``counted`` ones) per :func:`pin_target` (none: no home)."""
    out: Dict[FrozenSet[int], int] = {}
    for vs in snap.vcpus.values():
        for v in vs:
            home = pin_target(v, snap) if v.domid != 0 and v.state in ("running", "runnable") and counted(v) \
                else frozenset()
            if home:
                out[home] = out.get(home, 0) + 1
    return out


def _credit2_partners(due: Sequence[VcpuInfo], running: Mapping[int, VcpuInfo], keys: Set[VcpuKey],
                      excluded: Set[int]) -> Set[int]:
    """Every VM involved: those with due vCPUs, and those whose displaced vCPUs sit on
    the due vCPUs' homes."""
    involved = {v.domid for v in due}
    for v in _occupants(due, running, keys):
        if v.domid not in excluded:
            involved.add(v.domid)
    return involved


def plan_restores(snap: HostSnapshot, pins: Sequence[PinRecord], timeout: float,
                  settle: float = CREDIT2_SETTLE, demand_changed_at: Optional[float] = None,
                  bounced_vms: Iterable[str] = (), boot: str = "") -> List[RestorePin]:
    """Undo the pins of VMs that are home (all their pinned vCPUs) or waited too long;
    forget the pins of VMs that are gone or whose hard affinity the admin changed.

    Under credit2, pins that are home are held until the run queues have settled:
    ``settle`` seconds without a new pin of ours anywhere nor a change of demand
    (``demand_changed_at``, see :func:`demand_changed`), and none of the held VMs
    displaced meanwhile; never longer than ``HOLD_MAX`` seconds.  The pins of
    ``bounced_vms`` (UUIDs of VMs pinned because they were pushed out again soon
    after their last pins were undone, see :func:`bounced`) are held while their
    home has room for every vCPU that wants it, settled or not, up to
    ``BOUNCED_HOLD_MAX`` seconds (see :func:`holds_longer`; the caller names those
    :func:`pushed_out_for_good`).  ``boot``: the host's boot id now (pins of another are forgotten).
    """
    pins, out = of_this_boot(pins, boot)
    by_vm: Dict[str, List[PinRecord]] = {}
    for p in pins:
        by_vm.setdefault(p.uuid, []).append(p)
    domains = snap.by_uuid()
    unsettled = snap.scheduler == "credit2" and (
        _unsettled(snap, pins, settle) or is_settling(snap, demand_changed_at, settle))
    bounced_vms = set(bounced_vms) if snap.scheduler == "credit2" else set()
    overbooked = _overbooked_checker(snap)
    for uuid, records in sorted(by_vm.items()):
        d = domains.get(uuid)
        if d is None and uuid in snap.unread:
            continue  # not read this time, not gone: its pins are kept as they are
        if d is None:
            out += [RestorePin(None, uuid, p.vcpu, None, "the VM is gone") for p in records]
            continue
        out += [RestorePin(None, uuid, p.vcpu, None, REBOOTED) for p in records if p.domid != d.domid]
        records = [p for p in records if p.domid == d.domid]
        if not records:
            continue
        current = {v.vcpu: v for v in snap.vcpus.get(d.domid, ())}
        # a record of an older version has no pinned_to: undone as that version would have
        out += [RestorePin(d.domid, uuid, p.vcpu, p.original_hard, "a pin an older version made")
                for p in records if not p.pinned_to and p.vcpu in current]
        records = [p for p in records if p.pinned_to or p.vcpu not in current]
        ours = [p for p in records if p.vcpu in current and current[p.vcpu].hard == p.pinned_to]
        out += [RestorePin(None, uuid, p.vcpu, None, "its hard affinity was changed by someone else: left as is")
                for p in records if p not in ours]
        if not ours:
            continue
        moved = [p for p in ours if not p.pinned_to <= current[p.vcpu].soft]
        if moved:  # the rebalancer gave it a new home: a pin to the old one would hold it away
            out += [RestorePin(d.domid, uuid, p.vcpu, p.original_hard, "its home moved") for p in ours]
            continue
        home = all(current[p.vcpu].cpu in current[p.vcpu].hard for p in ours)
        since = snap.time - min(p.pinned_at for p in ours)
        if home and unsettled and since < HOLD_MAX and not d.paused:  # a paused VM's pins hold nothing
            continue
        if home and uuid in bounced_vms and holds_longer(d.paused, since, [p.pinned_to for p in ours], overbooked):
            continue
        if home or since >= timeout:
            reason = "home" if home else "not home after {:g}s: given up".format(timeout)
            out += [RestorePin(d.domid, uuid, p.vcpu, p.original_hard, reason) for p in ours]
    return out


def holds_longer(paused: bool, since: float, homes: Sequence[FrozenSet[int]],
                 overbooked: Callable[[FrozenSet[int]], bool]) -> bool:
    """Is a bounced VM's hold kept: credit2's balancer pushed it out again within
    ``bounce_window`` of its last restore, so the run queues' loads differ for good
    (a node with 4 runnable vCPUs next to one with 2), and a restore now only starts
    the next push.  Kept until ``BOUNCED_HOLD_MAX`` seconds, while its homes are not
    overbooked (then the scheduler's spreading is right) and it is not paused."""
    return not paused and since < BOUNCED_HOLD_MAX and not any(overbooked(h) for h in homes)


def _overbooked_checker(snap: HostSnapshot) -> Callable[[FrozenSet[int]], bool]:
    """Do more guest vCPUs want to run in a home than it has pCPUs?  Counted by
    :func:`pin_target`, pinned or not (:func:`_room_checker` sees unpinned ones only)."""
    all_cpus = snap.topology.all_cpus
    wanting = _wanting(snap, lambda v: bool(v.soft) and not all_cpus <= v.soft)

    def overbooked(home: FrozenSet[int]) -> bool:
        return sum(n for soft, n in wanting.items() if soft <= home) > len(home)
    return overbooked


def _unsettled(snap: HostSnapshot, pins: Sequence[PinRecord], settle: float) -> bool:
    """Credit2's balancer may still be moving vCPUs on stale load averages: a pin of
    ours is younger than ``settle``, or a VM we hold is displaced again."""
    if any(snap.time - p.pinned_at < settle for p in pins):
        return True
    held = {p.uuid for p in pins}
    uuids = {d.domid: d.uuid for d in snap.domains}
    return any(uuids.get(v.domid) in held for v in displaced(snap))


def bounced(snap: HostSnapshot, restored_at: Mapping[str, float], window: float) -> Set[int]:
    """Domids displaced again within ``window`` seconds of their last restore (by UUID)."""
    uuids = {d.domid: d.uuid for d in snap.domains}
    return {v.domid for v in displaced(snap)
            if snap.time - restored_at.get(uuids.get(v.domid, ""), float("-inf")) <= window}


def pushed_out_for_good(snap: HostSnapshot, bounced_domids: Set[int], restored_at: Mapping[str, float],
                        demand_changed_at: Optional[float]) -> Set[int]:
    """Of the :func:`bounced` VMs, those whose last restore came after the last change of
    demand: pushed out again while nothing changed, so by lasting unevenness between the
    run queues, not by load averages lagging a change (those settle and let the VM be)."""
    uuids = {d.domid: d.uuid for d in snap.domains}
    changed = float("-inf") if demand_changed_at is None else demand_changed_at
    return {domid for domid in bounced_domids
            if restored_at.get(uuids.get(domid, ""), float("-inf")) >= changed}


def pinned_keys(snap: HostSnapshot, pins: Sequence[PinRecord]) -> Set[VcpuKey]:
    """The (domid, vcpu) of the running domains' pinned vCPUs."""
    domains = snap.by_uuid()
    return {(domains[p.uuid].domid, p.vcpu) for p in pins if p.uuid in domains}


def restore_all(snap: HostSnapshot, pins: Sequence[PinRecord], boot: str = "") -> List[RestorePin]:
    """At stop or start: undo every pin of ours still in place (forget the others, and those of
    another boot than ``boot``; those of a VM not read this time are neither: kept for the next start)."""
    domains = snap.by_uuid()
    pins, out = of_this_boot(pins, boot)
    for p in pins:
        d = domains.get(p.uuid)
        if d is None and p.uuid in snap.unread:
            continue
        current = {v.vcpu: v for v in snap.vcpus.get(d.domid, ())} if d else {}
        v: Optional[VcpuInfo] = current.get(p.vcpu)
        if d is None or v is None:
            out.append(RestorePin(None, p.uuid, p.vcpu, None, "the VM is gone"))
        elif d.domid != p.domid:
            out.append(RestorePin(None, p.uuid, p.vcpu, None, REBOOTED))
        elif p.pinned_to and v.hard != p.pinned_to:  # (a record from before pinned_to was kept has none)
            out.append(RestorePin(None, p.uuid, p.vcpu, None, "its hard affinity was changed by someone else"))
        else:
            out.append(RestorePin(d.domid, p.uuid, p.vcpu, p.original_hard, "daemon start or stop"))
    return out
