"""Moving a running guest's memory to another node: orchestration.

``check`` answers every refusal that needs no scan; ``prepare`` also scans
the guest's memory and plans the move (the pure planning is
:mod:`xapi_numa.core.memory_move`); ``run`` drives the Hypervisor port batch
by batch, paced, recording progress in the move journal
(:mod:`xapi_numa.state.moves`).  A VM whose mover died is handed to the
backend's ``recover_move`` (by the next move, the daemon or ``memory-moves
--recover``; a dry run or a status query only says so), which puts back a
batch left inside its pause window from its batch record and unpauses the
domain (:mod:`xapi_numa.ops.move_recovery`).  After a move the VM's node and
soft affinity follow its memory (:mod:`xapi_numa.core.affinity_fixup`'s rule).

(xapi's "migrate" is a VM migration; this moves pages inside one host.  The CLI's
``migrate`` and the plugin's ``migrate_memory`` are the first version's names.)
"""
import errno
import json
import os
import time
from typing import Callable, Dict, FrozenSet, List, Optional, Tuple

import attrs

from xapi_numa.core import memory_move as pagemove
from xapi_numa.core.actions import MoveMemory
from xapi_numa.core.host import DomainInfo, MemoryMap
from xapi_numa.core.units import format_size
from xapi_numa.core.memory_move import MoveTally
from xapi_numa.core.move_bounds import check_arguments, check_skip
from xapi_numa.core.vnode_units import check_move as check_vnodes, check_target
from xapi_numa.core.vnuma import VnumaLayout
from xapi_numa.errors import HypervisorError, MoveStopped, NoCapacity, NotMovable, NumaError
from xapi_numa.ops import reserve
from xapi_numa.ops.affinity_follow import follow_memory, hold_down_hand_move, home_before
from xapi_numa.ops.background_mover import start_background
from xapi_numa.ops.move_recovery import finish_kept_batch, recover
from xapi_numa.ops.move_refusals import another_domain, refuse_unmovable, xapi_watch
from xapi_numa.ops.observe import domain_by_name_or_id
from xapi_numa.ops.vnode_move import after_vnode_move, check_vnode_move, vnode_gfns
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.db import Database
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import DONE, FAILED, RUNNING, STOPPED, MoveJournal, MoverLock


@attrs.frozen
class Plan:
    domain: DomainInfo
    target: int
    batches: tuple
    movable: int
    skipped: Dict[str, int]
    skipped_gfns: Dict[str, List[int]]
    busy_grants: int
    target_free_pages: int
    superpage_runs: int
    vnode: Optional[int] = None            # a vNUMA guest's vnode, moving whole
    layout: Optional[VnumaLayout] = None   # its layout before the move
    already_there: bool = False            # the hypervisor counts every page of it on the target
    guest_cpus: Optional[FrozenSet[int]] = None  # the host's guest mask: the vCPUs' soft affinity stays inside it

    @property
    def pages(self) -> int:
        return sum(len(b) for b in self.batches)

    def to_dict(self) -> dict:
        return {"vm": self.domain.name, "uuid": self.domain.uuid, "domid": self.domain.domid,
                "to": self.target, "pages": self.pages, "batches": len(self.batches),
                "movable_pages": self.movable, "superpage_runs": self.superpage_runs,
                "target_free_pages": self.target_free_pages, "busy_grants": self.busy_grants,
                "skipped": self.skipped,
                "skipped_gfns": {k: pagemove.ranges(v) for k, v in self.skipped_gfns.items()},
                "vnode": self.vnode, "already_there": self.already_there}


def check(hv: Hypervisor, vm: str, to: int, max_bytes: Optional[int] = None,
          batch: int = pagemove.DEFAULT_BATCH, probe_ms: int = 0, allow_fallback: bool = False,
          vnode: Optional[int] = None, skip: int = 0, room: Optional[int] = None,
          guest_cpus: Optional[FrozenSet[int]] = None) -> DomainInfo:
    """Every refusal that needs no scan of the guest's memory (what the plugin answers
    at once); returns the domain.  Memory goes only to a node with CPUs in the host's
    guest mask (``guest_cpus``).  A vNUMA guest's memory moves only as whole vnodes
    (``vnode``), or to the node every vnode already lives on.  ``room``: pages node ``to`` can take
    (``reserve.room_pages``: not what starting VMs reserved), else its room (claimable, DMA zone aside)."""
    return _checked(hv, vm, to, max_bytes, batch, probe_ms, allow_fallback, vnode, skip, room, guest_cpus)[0]


def _checked(hv: Hypervisor, vm: str, to: int, max_bytes: Optional[int], batch: int, probe_ms: int,
             allow_fallback: bool, vnode: Optional[int], skip: int, room: Optional[int] = None,
             guest_cpus: Optional[FrozenSet[int]] = None
             ) -> Tuple[DomainInfo, Optional[VnumaLayout], Optional[int], int]:
    """(the domain, its vNUMA layout, the pages that are elsewhere and need room: None with a fallback,
    the pages to move)."""
    topo = hv.topology()
    check_arguments(len(topo.nodes), to, batch, max_bytes, probe_ms, allow_fallback, vnode)
    d = domain_by_name_or_id(hv, vm)
    check_skip(skip, max(d.memory, d.max_memory) // pagemove.PAGE, d.name)
    refuse_unmovable(hv, d)
    layout = hv.vnuma(d.domid)
    check_vnodes(layout, d.name, to, vnode)  # NUMA_VNODE_SPLIT before anything moves
    check_target(topo, to, guest_cpus)  # a vnode's or the whole VM's: only where its vCPUs may follow
    # Pages already on the target come back to it, so only the rest needs room;
    # stock Xen cannot say which gfn is where, so count from the per-node totals
    # (the whole domain: a few skipped frames more than will move).
    pages = d.memory // pagemove.PAGE
    if max_bytes is not None:
        pages = min(pages, max_bytes // pagemove.PAGE)
    if allow_fallback:
        return d, layout, None, pages  # what does not fit goes elsewhere: no page count (a debug-key walk on stock Xen)
    if vnode is not None and layout is not None:
        check_vnode_move(layout, vnode, max_bytes, skip)
        # all of it: its recorded pnode says nothing of where its pages are (--apply sets only the map)
        pages = need = layout.vnode(vnode).memory // pagemove.PAGE
    else:  # the pages elsewhere, of which a step moves at most its max
        need = min(pages, max(0, d.memory // pagemove.PAGE - hv.node_pages(d.domid).get(to, 0)))
    _require_room(d, to, pages, need, _room(hv, to, room))
    return d, layout, need, pages


def _require_room(d: DomainInfo, to: int, pages: int, need: int, free_pages: int) -> None:
    if need > free_pages:
        raise NoCapacity(f"node {to} can take {format_size(free_pages * pagemove.PAGE)} ({free_pages} pages); moving "
                         f"{pages} pages of {d.name} needs up to {need} (allow the rest elsewhere with --allow-fallback)",
                         ("to", str(to), str(free_pages), str(need)))


def _room(hv: Hypervisor, to: int, room: Optional[int]) -> int:
    """Pages node ``to`` can take: ``room`` as the caller counted it, else its room (DMA zone aside)."""
    return hv.node_memory()[to].room // pagemove.PAGE if room is None else room


def prepare(hv: Hypervisor, vm: str, to: int, max_bytes: Optional[int] = None,
            batch: int = pagemove.DEFAULT_BATCH, probe_ms: int = 0, allow_fallback: bool = False,
            skip: int = 0, vnode: Optional[int] = None, room: Optional[int] = None,
            checked: Optional[tuple] = None, guest_cpus: Optional[FrozenSet[int]] = None) -> Plan:
    """Check, scan the guest's memory and plan a move; changes nothing (the probe
    pauses the guest briefly).  ``skip``: leave the first movable gfns alone (an
    earlier step of the same move took them).  ``vnode``: only that vnode's pages.
    ``checked``: what :func:`_checked` answered the caller, holding the VM's lock."""
    d, layout, need, _ = checked or _checked(hv, vm, to, max_bytes, batch, probe_ms, allow_fallback, vnode, skip,
                                             room, guest_cpus)
    if need == 0 and vnode is None:  # every page is there: no scan, and no pause per batch for nothing
        return Plan(d, to, (), 0, {}, {}, 0, _room(hv, to, room), 0, already_there=True, guest_cpus=guest_cpus)
    try:
        memory: MemoryMap = hv.memory_map(d.domid, probe_ms)
    except HypervisorError as err:
        if err.errno == errno.EPROTOTYPE:
            raise NotMovable(d.uuid, "it is a PV guest", d.name) from None
        if err.errno == errno.EOPNOTSUPP and "populate-on-demand" in err.message:  # not a scan's EOPNOTSUPP
            raise NotMovable(d.uuid, "it booted with populate-on-demand (memory below its maximum): reading its "
                                     "gfns would populate them and released frames would go to its PoD cache", d.name) from None
        raise
    gfns = pagemove.movable_gfns(memory)[skip:]
    stay = pagemove.skipped_gfns(memory)
    if vnode is not None and layout is not None:
        gfns = vnode_gfns(layout, vnode, gfns)
        # what stays behind of this vnode only: the rest of the domain is not this move's
        stay = {why: kept for why, kept in ((w, vnode_gfns(layout, vnode, g)) for w, g in stay.items()) if kept}
    max_pages = None if max_bytes is None else max_bytes // pagemove.PAGE
    batches = tuple(pagemove.plan_batches(gfns, batch, max_pages))
    return Plan(d, to, batches, len(gfns), {why: len(kept) for why, kept in stay.items()}, stay,
                memory.busy_grants, _room(hv, to, room),
                sum(pagemove.whole_runs(b) for b in batches), vnode, layout if vnode is not None else None,
                guest_cpus=guest_cpus)


def claim(hv: Hypervisor, ledger: Ledger, vm: str, to: int, max_bytes: Optional[int] = None,
          batch: int = pagemove.DEFAULT_BATCH, probe_ms: int = 0, allow_fallback: bool = False,
          skip: int = 0, vnode: Optional[int] = None, lock_fd: Optional[int] = None,
          guest_cpus: Optional[FrozenSet[int]] = None) -> Tuple[Plan, MoverLock]:
    """Claim the VM, check and plan its move, in the order that keeps movers apart:
    the VM's mover lock first (a second mover of it is told it is already being
    moved); under it the vNUMA layout and every check (no mover of another vnode can
    change the map meanwhile); then the target's room and the running row with the
    pages this move will bring, in one transaction (another move or a reservation for
    the same node sees this one, or this one sees it); and only then the scan.
    ``lock_fd``: the lock a background mover inherited from its claimer (verified).
    Returns the plan and the lock, for :func:`run`; a refusal ends the row it wrote."""
    journal = MoveJournal.of_host(ledger.db, hv)
    d = domain_by_name_or_id(hv, vm)
    lock = journal.adopt(d, lock_fd) if lock_fd is not None else journal.take_lock(d)
    ours = lock_fd is not None  # the row: the claimer's, handed to us
    try:
        room = reserve.room_pages(hv, ledger, exclude_move=d.uuid).get(to)
        checked = _checked(hv, str(d.domid), to, max_bytes, batch, probe_ms, allow_fallback, vnode, skip, room,
                           guest_cpus)
        d, need, pages = checked[0], checked[2], checked[3]
        row = {"vm": d.name, "uuid": d.uuid, "domid": d.domid, "to": to, "state": RUNNING, "planned_pages": need or 0}
        again = None if need is None else (
            lambda: _require_room(d, to, pages, need, reserve.room_pages(hv, ledger, exclude_move=d.uuid)[to]))
        journal.begin(d, to, row, lock=lock, own_lock=lock_fd is None, room_check=again)
        ours = True
        return prepare(hv, str(d.domid), to, max_bytes, batch, probe_ms, allow_fallback, skip, vnode,
                       checked=checked, guest_cpus=guest_cpus), lock
    except BaseException as err:
        if ours:  # refused before a page moved: said where a background mover's caller looks
            why = err.message if isinstance(err, NumaError) else "stopped before the move ({})".format(
                type(err).__name__)
            journal.finish(d.uuid, FAILED, {"vm": d.name, "uuid": d.uuid, "domid": d.domid, "to": to,
                                            "state": FAILED, "error": why})
        lock.release()
        raise


Progress = Callable[[MoveTally], None]


def run(hv: Hypervisor, db: Database, plan: Plan, rate: Optional[float] = None,
        verify_chunk: int = pagemove.DEFAULT_VERIFY_CHUNK, allow_fallback: bool = False,
        progress: Optional[Progress] = None, fault: Optional[str] = None, fault_batch: int = 0,
        lock: Optional[MoverLock] = None,
        sleep: Optional[Callable[[float], None]] = None, clock: Callable[[], float] = time.monotonic,
        follow_affinity: bool = True, still_movable: Optional[Callable[[], Optional[str]]] = None) -> dict:
    """Move the planned batches; returns the report (also kept in the journal).

    ``still_movable`` is asked before each batch: a reason it gives (xapi started a live
    migration or a suspend of the VM since the move began, see
    :func:`xapi_numa.ops.move_refusals.xapi_watch`) stops the move there, as stopped, with
    that reason; no batch is then in flight (each gives back its pause, its raise of
    max_pages and its batch record before it returns).

    Afterwards the VM's node and soft affinity follow its memory, unless
    ``follow_affinity`` is off (the rebalancer chose the home first; the memory
    is following it, not the other way round).

    Callers run :func:`recover` first (before the scan): a VM whose last mover died
    is refused until then, its batch record may hold the guest's pages.

    Stops at the first batch that fails, after that batch has put every page
    back; raises MoveStopped with the report in that case.
    """
    # A backend with modelled time (the simulator) paces in that time, not ours.
    sleep = sleep or hv.sleep
    journal = MoveJournal.of_host(db, hv)
    d = plan.domain
    tally = MoveTally(plan.pages, len(plan.batches))
    base = {"vm": d.name, "uuid": d.uuid, "domid": d.domid, "to": plan.target, "skipped": plan.skipped,
            "already_there": plan.already_there}
    lock = journal.begin(d, plan.target, dict(base, state=RUNNING, **tally.summary()), lock=lock)
    try:
        home = home_before(hv, d) if follow_affinity else None
        try:
            return _run_batches(hv, journal, plan, tally, base, rate, verify_chunk, allow_fallback, progress, fault,
                                fault_batch, sleep, clock, follow_affinity, still_movable)
        finally:
            if home is not None and (tally.released or plan.already_there) and not another_domain(hv, d):  # followed
                hold_down_hand_move(hv, db, d, home, plan.target, plan.vnode)
    finally:
        lock.release()


def _run_batches(hv: Hypervisor, journal: MoveJournal, plan: Plan, tally: MoveTally, base: dict,
                 rate: Optional[float], verify_chunk: int, allow_fallback: bool, progress: Optional[Progress],
                 fault: Optional[str], fault_batch: int, sleep: Callable[[float], None],
                 clock: Callable[[], float], follow_affinity: bool,
                 still_movable: Optional[Callable[[], Optional[str]]] = None) -> dict:
    d = plan.domain
    started = clock()
    state, error, stuck, kept_paused = DONE, None, (), False
    try:
        for i, batch in enumerate(plan.batches):
            why = another_domain(hv, d) or (still_movable() if still_movable else None)
            if why:  # (the scan and the pacing take long: the VM's state may have changed since the claim)
                state, error = STOPPED, f"stopped before batch {i + 1} of {len(plan.batches)}: {why}"
                break
            result = hv.move_pages(d.domid, batch, plan.target, verify_chunk, allow_fallback,  # the backend checks
                                   fault if i == fault_batch else None, uuid=d.uuid)  # d.uuid again (ESTALE)
            tally.add(result)
            tally.elapsed = clock() - started
            if progress:
                progress(tally)
            if result.error or result.lost:  # before any journal write, which may fail: a kept pause is recovered
                state, stuck = FAILED, result.stuck_gfns
                error = _explain(result, plan.target)
                if result.lost or result.stage == "unpause":  # the batch record was kept: recovery's turn
                    kept_paused, error = finish_kept_batch(hv, d, error)
                break
            journal.progress(d.uuid, dict(base, state=RUNNING, **tally.summary()))
            if i + 1 < len(plan.batches):
                sleep(pagemove.pacing_gap(result.pause, len(batch), rate))
    except KeyboardInterrupt:
        # delivered when a batch returns (the pause window holds signals off): that batch
        # may have kept the guest paused, and its result is gone with the interrupt
        state, error = STOPPED, "stopped by the user"
        kept_paused, error = finish_kept_batch(hv, d, error)
    except NumaError as err:
        state, error = FAILED, err.message
    tally.elapsed = clock() - started
    report = dict(base, state=state, **tally.summary())
    if error:
        report["error"] = error
    if stuck:
        report["stuck_gfns"] = pagemove.ranges(stuck)
    foreign = another_domain(hv, d)  # its domid is another VM's now: nothing of it follows (review rC)
    if foreign:
        report["affinity"] = {"skipped": foreign}
    elif plan.vnode is not None and plan.layout is not None:
        note = after_vnode_move(hv, d, plan.layout, plan.vnode, plan.target, state == DONE, tally, report, journal.db,
                                follow_affinity, plan.guest_cpus)
        state, error = (FAILED if note and state == DONE else state), note or error
        report["state"] = state
    elif (tally.released or plan.already_there) and follow_affinity:  # (all there: still its home)
        try:
            report["affinity"] = follow_memory(hv, d, journal.db, plan.guest_cpus)
        except NumaError as err:  # the domain went away meanwhile: the journal still gets the outcome
            report["affinity"] = {"error": err.message}
    if kept_paused:  # the row stays RUNNING: the next recovery (xapi-numad, the CLI) retries it
        journal.progress(d.uuid, dict(report, state=RUNNING))
    else:
        journal.finish(d.uuid, state, report)
    if state != DONE:
        raise MoveStopped(f"moving the memory of {d.name} stopped after {tally.batches} of "
                          f"{tally.batches_planned} batches: {error}", (d.name, state, json.dumps(report)))
    return report


def _explain(result, target: int) -> str:
    if result.lost:
        return (f"{result.lost} gfns did not get their contents back (stage {result.stage}, "
                f"{errno.errorcode.get(result.error, result.error)})")
    if result.not_freed:
        return (f"{result.not_freed} old frame(s) among the gfns reported were not freed after release: "
                f"Xen or a backend still references them (a frame it keeps mapped). The guest got new "
                f"frames with the same contents, but whoever holds the old one writes to it; no further "
                f"batch was touched")
    if result.stage == "unpause" and result.error == errno.EINVAL:
        return ("someone else unpaused the guest inside the batch's pause window: it may have run on memory "
                "being moved")
    if result.stage == "unpause":
        return (f"the guest could not be unpaused after its batch ({errno.errorcode.get(result.error, result.error)}); "
                f"its batch record was kept for recovery")
    if result.error == errno.ENOMEM:
        return (f"node {target} ran out of free memory; {result.fallback} pages of the last batch went to "
                f"other nodes")
    return (f"batch failed at stage {result.stage} ({errno.errorcode.get(result.error, result.error)}); "
            f"its contents were put back and the domain unpaused")


def start_for(hv: Hypervisor, db: Database, action: MoveMemory) -> int:
    """Claim the VM and start a background mover for a planned :class:`MoveMemory` (a
    whole vnode with ``--vnode`` when it names one: the mover records its new pnode)."""
    journal = MoveJournal.of_host(db, hv)
    recover(hv, journal)  # a dead mover's batch record first
    d = next((x for x in hv.domains() if x.uuid == action.uuid), None)
    if d is None:
        raise HypervisorError(errno.ESRCH, "domain of VM {}".format(action.uuid))
    max_bytes = None if action.max_pages is None else action.max_pages * pagemove.PAGE
    # a follow step is sized to the target's room: its background mover refuses rather than spill (as a
    # vnode must land whole on one pnode), against the room every mover checks
    check(hv, str(d.domid), action.to, max_bytes, vnode=action.vnode, skip=action.skip,
          room=reserve.room_pages(hv, Ledger(db=db), exclude_move=d.uuid)[action.to])
    return claim_and_start(journal, d, action.to, max_bytes, action.rate, action.reason, action.skip,
                           keep_affinity=True, vnode=action.vnode)


def move_now(hv: Hypervisor, db: Database, action: MoveMemory,
             xapi_use: Optional[Callable[[Callable[[object], object]], object]] = None) -> int:
    """Carry out a planned :class:`MoveMemory` in this process (a host with modelled
    time: its pacing is modelled, so the step is as long as the plan says).  xapi is asked
    between batches, as a background mover asks it (``xapi_use``: a link's ``use``; None: no xapi)."""
    journal = MoveJournal.of_host(db, hv)
    recover(hv, journal)
    d = next((x for x in hv.domains() if x.uuid == action.uuid), None)
    if d is None:
        raise HypervisorError(errno.ESRCH, "domain of VM {}".format(action.uuid))
    max_bytes = None if action.max_pages is None else action.max_pages * pagemove.PAGE
    # as start_for's background mover: the room checked at the claim, and no spill elsewhere
    plan, lock = claim(hv, Ledger(db=db), str(d.domid), action.to, max_bytes, skip=action.skip, vnode=action.vnode)
    run(hv, db, plan, action.rate, follow_affinity=False, lock=lock,
        still_movable=None if xapi_use is None else xapi_watch(xapi_use, d.uuid, clock=hv.clock))
    return os.getpid()


def claim_and_start(journal: MoveJournal, d: DomainInfo, to: int, max_bytes: Optional[int],
                    rate: Optional[float], reason: str = "", skip: int = 0, keep_affinity: bool = False,
                    vnode: Optional[int] = None, guest_cpus: Optional[FrozenSet[int]] = None) -> int:
    """Claim the VM in the journal (refused if someone is moving it) and hand it to a
    background mover (with the host's guest mask the caller read, ``guest_cpus``)."""
    report = {"vm": d.name, "uuid": d.uuid, "domid": d.domid, "to": to, "state": RUNNING, "reason": reason}
    lock = journal.begin(d, to, report)
    try:
        text_rate = None if rate is None else pagemove.format_rate(rate)
        pid = start_background(d.domid, to, journal.db.path, lock, max_bytes, text_rate, skip, keep_affinity, vnode,
                               guest_cpus)
        journal.hand_over(d.uuid, pid)
    finally:
        lock.release()  # the child holds its own copy of the lock
    return pid
