"""The rebalancer's bookkeeping around the pure planner (:mod:`xapi_numa.core.rebalance`).

Between periods it keeps what the planner needs to remember: each VM's smoothed CPU demand (from its
vCPUs' CPU time, :mod:`.vcpu_demand`: a reading it cannot trust is no sample), how many consecutive
periods the current best move has stood, when each VM's home last moved (the home-move log in the
state database, which survives restarts), and how far each VM's memory has followed its new home.
Every period it turns a snapshot into :class:`~xapi_numa.core.rebalance.VmLoad` values, asks the
planner (:func:`~xapi_numa.core.rebalance_plan.plan`: the best move, and the further ones worth
making with it in the same period), and returns the actions for the executor, with the assessment
that explains them.  In a period where a domain's vCPUs could not be read (``HostSnapshot.unread``)
the load of its node is not known: no home moves then.

A VM's home is what its affinity says without homing's temporary pins (one may still hold a
vCPU on the node its VM just left).  Memory starts following in the period the home moves.

A vNUMA VM is weighed vnode by vnode: each vnode is a unit of its own (the
demand of its vCPUs, its memory, its pnode as home), and a move takes one
whole vnode (:func:`~xapi_numa.core.vnode_units.vnode_move_actions`).  Its
layout comes from ``Hypervisor.vnuma``, which on real Xen reads the pnodes
from debug key ``u`` (a walk of every page, rate-limited like the page scans):
so each domain's layout is read once, when the domain is first seen running
(a domain not yet run may still be given one), kept, updated by our own vnode
moves, read again only when a move of ours was refused or did not finish (or
the journal's row of the VM changed since: a vnode move another made), and
dropped when the domain goes.  A VM whose layout cannot be read is not moved,
nor is any vnode of a PV guest (Xen 4.17 builds PV vNUMA too; its memory cannot move).
Hold-down is per VM: one vnode moved holds all its vnodes for ``hold_down``.
"""
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Set, Tuple

import attrs

from xapi_numa.core import locality, pools, rebalance, rebalance_moves, rebalance_plan
from xapi_numa.core.actions import MoveMemory
from xapi_numa.core.host import DomainInfo
from xapi_numa.core.policy import Policy
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.vnode_units import vnode_move_actions
from xapi_numa.core.vnuma import VnumaLayout
from xapi_numa.errors import NumaError
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HAND, HomeMove, HomeMoves
from xapi_numa.ops import part_moves
from xapi_numa.ops.executor import DONE, REFUSED
from xapi_numa.ops.part_moves import PartMoves
from xapi_numa.ops.memory_following import MemoryFollowing
from xapi_numa.ops.vcpu_demand import DemandReadings, Unit
from xapi_numa.state.moves import DONE as MOVE_DONE, RUNNING as MOVE_RUNNING, MoveJournal, MoveRecord

UNREADABLE = "unreadable"         # a cached layout the hypervisor would not give: the VM is not moved


@attrs.frozen
class Decision:
    assessment: rebalance.Assessment
    actions: Tuple[object, ...]
    streak: int
    note: str


def _without_our_pins(uuid: str, vcpus, topo, our_pins: Set[Tuple[str, int]]) -> list:
    """The vCPUs as their homes are meant: a temporary pin of homing's is no home (it may
    still hold a vCPU on the node the rebalancer just moved its VM away from, and counting
    it there would make the planner move another VM to the same node)."""
    return [attrs.evolve(v, hard=topo.all_cpus) if (uuid, v.vcpu) in our_pins else v for v in vcpus]


class Rebalancer:
    def __init__(self, db: Database, settings: rebalance.Settings = rebalance.Settings(),
                 policy_of: Optional[Callable[[str], Policy]] = None,
                 opted_out: Optional[Callable[[str], bool]] = None,
                 read_layout: Optional[Callable[[int], Optional[VnumaLayout]]] = None,
                 move_blockers: Optional[Callable[[int], List[str]]] = None, boot: str = "") -> None:
        self.settings, self.move_blockers = settings, move_blockers  # (Hypervisor.move_blockers; None: all can move)
        self.homes = HomeMoves(db, boot)  # (boot: Hypervisor.boot_id, the boot its clock's stamps are of)
        self.moves = MoveJournal(db, boot=boot)
        self.policy_of = policy_of or (lambda uuid: Policy())
        self.opted_out = opted_out or (lambda uuid: False)
        self.read_layout = read_layout  # Hypervisor.vnuma (None: no VM is taken for a vNUMA one)
        self.layouts: Dict[str, Tuple[int, object]] = {}  # uuid -> (domid, layout, None or UNREADABLE)
        self._unsure: Set[str] = set()  # VMs whose cached layout a mover of ours is still changing
        # uuid -> its memory-move row when its cached layout was last known right: a row changed since is
        # a move another made (compared whole: by wall-clock stamps of two processes, a step back hid one)
        self._seen: Dict[str, Optional[MoveRecord]] = {}
        self.readings = DemandReadings()  # each unit's demand, from its vCPUs' CPU time
        self._streak = 0  # consecutive periods with a move worth making
        self._pending: List[Tuple[rebalance.VmLoad, int, rebalance.Candidate, str, float, Tuple]] = []  # unconfirmed
        self.part_moves = PartMoves()  # moves made only in part, mended in the next periods
        self.following = MemoryFollowing(settings, self.moves, self.homes)
        self.left_alone: Set[str] = set()  # VMs whose policy, pins, pool or opt-out now keep the rebalancer away
        self._blockers: Dict[str, Tuple[int, bool]] = {}  # uuid -> (domid, memory cannot move), read once

    @property
    def unit_demand(self) -> Dict[Unit, float]:
        return self.readings.unit_demand

    @property
    def history(self) -> Dict[Unit, List[float]]:
        return self.readings.history

    @property
    def demand(self) -> Dict[str, float]:
        """Smoothed demand per VM (its units' summed)."""
        out: Dict[str, float] = {}
        for (uuid, _), d in self.unit_demand.items():
            out[uuid] = out.get(uuid, 0.0) + d
        return out

    # --- vNUMA layouts, read once per domain -------------------------------------------------------------
    def layout(self, uuid: str) -> Optional[VnumaLayout]:
        entry = self.layouts.get(uuid)
        return entry[1] if entry is not None and isinstance(entry[1], VnumaLayout) else None

    def refresh_layouts(self, snap: HostSnapshot) -> None:
        """Read the layout of each domain seen running for the first time (or since a move
        of ours on it ended other than done); forget the domains that are gone."""
        alive = {d.uuid: d for d in snap.domains if d.domid != 0}
        domids = dict(snap.unread, **{u: d.domid for u, d in alive.items()})  # the unread are not gone
        self.layouts = {u: e for u, e in self.layouts.items() if domids.get(u) == e[0]}
        rows = {r.uuid: r for r in self.moves.rows()}
        moving = {uuid for uuid, r in rows.items() if r.state == MOVE_RUNNING and not self.moves.of_another_boot(r)}
        for uuid in sorted(set(self.layouts) - self._unsure - moving):
            row = rows.get(uuid)  # a vnode move another made (the CLI, the plugin) since: read it again
            if row is not None and row.report.get("vnode") is not None and row != self._seen.get(uuid):
                self.layouts.pop(uuid, None)
        for uuid in sorted(self._unsure - moving):  # our mover finished: keep what it did, or read again
            self._unsure.discard(uuid)
            row = rows.get(uuid)
            if row is None or row.state != MOVE_DONE:
                self.layouts.pop(uuid, None)
            else:
                self._seen[uuid] = row
        for uuid, d in alive.items():
            if uuid not in self.layouts and self.read_layout is not None and self._has_run(d, snap):
                self._seen[uuid] = rows.get(uuid)
                self.layouts[uuid] = (d.domid, self._read(d))
        self._seen = {u: r for u, r in self._seen.items() if u in self.layouts}

    @staticmethod
    def _has_run(d: DomainInfo, snap: HostSnapshot) -> bool:
        """A domain not run yet may still be given its layout by its builder: read it later."""
        return not d.paused or any(v.cpu_time > 0 for v in snap.vcpus.get(d.domid, ()))

    def _read(self, d: DomainInfo) -> object:
        try:
            return self.read_layout(d.domid)
        except NumaError:
            return UNREADABLE

    def _unit_of(self, uuid: str) -> Callable[[int], Optional[int]]:
        lay = self.layout(uuid)
        if lay is None:
            return lambda vcpu: None
        owner = {c: v.index for v in lay.vnodes for c in v.vcpus}
        return lambda vcpu: owner.get(vcpu)

    # --- what the planner is told ----------------------------------------------------------------------
    def observe_demand(self, snap: HostSnapshot) -> None:
        """Update every unit's smoothed demand (a VM's, or a vnode's) from its vCPUs since
        the last look (:mod:`.vcpu_demand`: a reading it cannot trust is no sample)."""
        self.readings.observe(snap, self._unit_of)
        unread = snap.unread  # not read this time, not gone: what is known of them is kept
        alive = {d.uuid for d in snap.domains} | set(unread)
        self.following.forget_all_but(dict(unread, **{d.uuid: d.domid for d in snap.domains}))
        self._blockers = {u: x for u, x in self._blockers.items() if u in alive}

    def loads(self, snap: HostSnapshot, pages: Mapping[str, Mapping[int, int]], excluded: Set[int],
              now: float, our_pins: Set[Tuple[str, int]] = frozenset()) -> List[rebalance.VmLoad]:
        """What the planner weighs: one unit per VM, or per vnode of a vNUMA VM."""
        topo = snap.topology
        last = self.homes.last_moved(now)
        out = []
        self.left_alone = set()
        for d in snap.domains:
            if d.domid == 0:
                continue
            vcpus = snap.vcpus.get(d.domid, ())
            eligible, allowed = self._eligibility(d.uuid, vcpus, snap.unpinned, our_pins)
            running = self._running(d, snap)
            # paused (xl pause, VM.pause): no CPU wanted now, whatever its history; our mover's pause is its move's
            movable = eligible and running and not d.paused and d.domid not in excluded and \
                now - last.get(d.uuid, float("-inf")) >= self.settings.hold_down
            allowed = pools.within_pool(allowed, snap, d.domid)
            fixed = self._memory_fixed(d) if running else True  # its devices are not all there yet
            lay = self.layout(d.uuid)
            if not eligible:
                self.left_alone.add(d.uuid)  # nor does its memory follow a home we gave it
            if lay is not None:  # a vnode whose memory cannot move (a PV guest's) could not keep its promise
                keeps = not fixed and d.type != "pv"
                out += self._vnode_units(d, lay, movable and d.uuid not in self._unsure and keeps, allowed)
                continue
            if self.layouts.get(d.uuid, (0, None))[1] == UNREADABLE:
                movable = False  # it may be a vNUMA VM whose vnodes we cannot see: never split one
            if not pages.get(d.uuid):
                movable = False  # where its memory is, and so what a move costs, is not known
            meant = _without_our_pins(d.uuid, vcpus, topo, our_pins)
            homes = locality.home_nodes(meant, topo)
            home = next(iter(homes)) if len(homes) == 1 else None
            unit = (d.uuid, None)
            out.append(rebalance.VmLoad(d.domid, d.uuid, d.name, home, tuple(v.vcpu for v in vcpus),
                                        self.unit_demand.get(unit, 0.0), dict(pages.get(d.uuid, {})), d.type,
                                        movable, allowed, tuple(self.history.get(unit, ())),
                                        fixed_memory=fixed, shares={} if home is not None else locality.home_shares(
                                            meant, topo, topo.nodes_of_cpus(snap.pool_cpus(d.domid)))))
            if home is not None and allowed is not None and home not in allowed:
                self.left_alone.add(d.uuid)  # its preferred list or CPU pool changed since
        return out

    def _running(self, d: DomainInfo, snap: HostSnapshot) -> bool:
        """A domain still being built (not run yet, or its claim outstanding), or arriving by
        migration, is its toolstack's business, not a home to move."""
        return self._has_run(d, snap) and not d.claimed

    def _memory_fixed(self, d: DomainInfo) -> bool:
        """Can the VM's memory not follow a new home (a device model's map cache, passthrough)?
        Read once per running domain (on real Xen, xenstore reads: a domain being built has
        not all its devices yet), as the mover would refuse it."""
        if self.move_blockers is None:
            return False
        entry = self._blockers.get(d.uuid)
        if entry is None or entry[0] != d.domid:
            try:
                entry = (d.domid, bool(self.move_blockers(d.domid)))
            except NumaError:
                entry = (d.domid, True)  # cannot tell: as the mover would, do not count on moving it
            self._blockers[d.uuid] = entry
        return entry[1]

    def _vnode_units(self, d: DomainInfo, lay: VnumaLayout, movable: bool,
                     allowed: Optional[FrozenSet[int]]) -> List[rebalance.VmLoad]:
        """A vNUMA VM as its vnodes: each homed on its pnode, with its vCPUs and its memory
        (where the vnode's promise keeps it); one of unknown pnode makes none movable."""
        known = all(v.pnode is not None for v in lay.vnodes)
        return [rebalance.VmLoad(d.domid, d.uuid, d.name, v.pnode, tuple(v.vcpus),
                                 self.unit_demand.get((d.uuid, v.index), 0.0),
                                 {v.pnode: v.memory >> 12} if v.pnode is not None else {}, d.type,
                                 movable and known, allowed, tuple(self.history.get((d.uuid, v.index), ())),
                                 vnode=v.index)
                for v in lay.vnodes]

    def _eligibility(self, uuid: str, vcpus, unpinned, our_pins) -> Tuple[bool, Optional[FrozenSet[int]]]:
        if self.opted_out(uuid):
            return False, None
        try:
            policy = self.policy_of(uuid)
        except NumaError:  # a policy_of that refuses the stored policy: left alone as unreadable (ops.left_alone)
            return False, None
        if policy.mode in ("any", "strict"):
            return False, None
        if any(not v.hard >= unpinned and (uuid, v.vcpu) not in our_pins for v in vcpus):
            return False, None  # an admin hard pin (a temporary pin of homing's is not one)
        return True, (frozenset(policy.nodes) if policy.mode == "preferred" and policy.nodes else None)

    # --- the decision -------------------------------------------------------------------------------------
    def decide(self, snap: HostSnapshot, pages: Mapping[str, Mapping[int, int]], excluded: Set[int],
               chunk_pages: Optional[int] = None, our_pins: Set[Tuple[str, int]] = frozenset(),
               record: bool = True, room: Optional[Mapping[int, int]] = None,
               max_writes: Optional[int] = None) -> Decision:
        """The actions of this period.  ``record=False``: a dry run (nothing is logged as
        moved, and the memory-follow progress is left as it is).  ``room``: pages each node
        can take (free less claims and the ledger's reservations); ``max_writes``: the
        affinity writes the executor makes at most (moves that do not fit wait: half a
        move would leave a VM's vCPUs homed on two nodes)."""
        now = snap.time
        # a domain shut down, not yet destroyed, is left as one a mover holds: never moved (as the
        # idle VM a busy one trades homes with, least of all), nor its memory following (kept for later)
        excluded = set(excluded) | {d.domid for d in snap.domains if d.shutdown}
        self._pending = []  # a batch the executor never reported on (it raised) counts as not made
        self.following.begin_period(chunk_pages, room)
        self.following.resume(snap)
        self.refresh_layouts(snap)
        self.observe_demand(snap)
        vms, capacity = self.loads(snap, pages, excluded, now, our_pins), pools.guest_capacity(snap)
        # a home move a process left half made is mended first: a dry run shows it, leaving the note
        whole = self.part_moves.take_unwritten(snap, self.homes.unwritten(), set(self.moves.moving()), self.layout)
        if record:
            self.homes.written(whole)
        mending = self.part_moves.mending
        undo = self.part_moves.due(snap, self.left_alone, {d.uuid for d in snap.domains if d.domid in excluded})
        if record:
            self.homes.written(mending - self.part_moves.mending)  # gone, not ours, or given up
        mending = self.part_moves.mending  # not moved this period (one note per VM), its load still weighed
        # nor any VM while a domain is unread: its node's load, and so what a move there gains, is not known
        vms = [attrs.evolve(vm, movable=False) if vm.uuid in mending or snap.unread else vm for vm in vms]
        # a move of its own (logged, held down): a VM whose memory stays, homed back with it
        back = rebalance_plan.back_moves(rebalance_moves.back_to_memory(
            vms, self.following.homed_fixed, capacity, self.settings), self.settings,
            None if max_writes is None else max_writes - len(undo))
        gone_back = {vm.uuid: to for c in back for vm, to in c.moves}  # weighed at their new home, held
        moving = set(gone_back)
        if max_writes is not None:
            max_writes -= len(undo) + sum(c.writes for c in back)
        self.following.drop(self.left_alone)  # the follow steps take their room before any move is weighed on it
        follow = self.following.steps([vm for vm in vms if vm.uuid not in moving], excluded, now)
        assessment = rebalance_plan.plan(
            [attrs.evolve(v, home=gone_back[v.uuid], movable=False) if v.uuid in gone_back else v for v in vms],
            snap.topology, self.settings, capacity, self.following.room_left(), max_writes, already=len(back))
        actions: List[object] = list(undo)
        for c in back:
            actions += self._move_homes(c, snap, now, record)
        names = {d.uuid: d.name for d in snap.domains}
        note = "; ".join([c.explain({}).split("; +")[0] for c in back] + [assessment.reason] + [
            "mending a home move made only in part: " + ", ".join(sorted(names.get(u, u) for u in {
                a.uuid for a in undo}))] * bool(undo) + [
            "no home moves: {} domain(s) not read this period".format(len(snap.unread))] * bool(snap.unread))
        # the imbalance must be sustained; the move made is the best one at that moment
        streak = self._streak + 1 if assessment.best is not None or assessment.deferred is not None else 0
        self._streak = streak
        if assessment.best is not None and (streak >= self.settings.sustain or not record):
            for candidate in assessment.chosen:
                actions += self._move_homes(candidate, snap, now, record)
                moving |= {vm.uuid for vm, _ in candidate.moves}  # following its old home no more
            if record:
                self._streak = 0
            # memory follows once the executor has made every write of the move (applied)
            note = ("moving: " if record else "would move: ") + note
        elif assessment.best is not None:
            note = "waiting ({}/{} periods): {}".format(streak, self.settings.sustain, note)
        actions += [a for a in follow if a.uuid not in moving]  # (a VM moved again follows its new home)
        actions += [] if record else self.following.first_steps(assessment.chosen)  # as applied() starts them
        return Decision(assessment, tuple(actions), streak, note)

    def _move_homes(self, best: rebalance.Candidate, snap: HostSnapshot, now: float,
                    record: bool = True) -> List[object]:
        out: List[object] = []
        for vm, to in best.moves:
            reason = best.explain({}).split("; node loads")[0]  # begins with the kind: "balance: ..."
            if vm.vnode is not None:  # one whole vnode: its memory moves in one mover, no follow-up
                out += vnode_move_actions(vm.domid, vm.uuid, self.layout(vm.uuid), vm.vnode, to, snap.topology,
                                          self.settings.rate, reason, snap.unpinned)
                self.following.taken(to, rebalance.pages_to_move(vm, to, self.settings.local_enough))
            else:
                out += rebalance_moves.home_move_actions(vm, to, snap.topology, reason, snap.unpinned)
            if record:
                was = part_moves.before(vm, snap, self.layout(vm.uuid))
                self._pending.append((vm, to, best, reason, now, was))
                self.homes.intend(vm.uuid, vm.domid, vm.home, to, vm.vnode, was[0])
        return out

    def _confirm(self, outcomes) -> List[object]:
        """A move counts (the home-move log, its hold-down, memory following) only once every write
        of it was made, of both VMs of a swap (:func:`.part_moves.counted`); one deferred or refused
        is not a move.  The first memory-follow steps of the moves that count, to be made at once."""
        pending, self._pending = self._pending, []
        mending = self.part_moves.mending
        self.part_moves.ended(outcomes)
        self.homes.written(mending - self.part_moves.mending)  # mended: whole again
        steps: List[object] = []
        mine = [part_moves.writes_of(p[0], outcomes) for p in pending]
        for (vm, to, best, reason, now, before), m, counts in zip(pending, mine, part_moves.counted(
                [(p[2], m) for p, m in zip(pending, mine)])):
            if not counts:
                self.part_moves.made_in_part(vm, m, before, now)  # its note stays until mended
                continue
            self.homes.written([vm.uuid])
            self.homes.record(HomeMove(vm.uuid, now, vm.home, to, best.kind, reason), self.settings.hold_down)
            if vm.vnode is None:  # a vnode's memory moved with it
                steps += self.following.start(vm, to)
        return steps

    def applied(self, outcomes) -> List[object]:
        """What the executor made of our actions: the home moves it made count, and their memory starts
        following in the same period (the steps returned); a vnode move started updates the cached layout
        (the mover records the same map when it is done: if it does not finish, the layout is read again);
        one refused leaves it to be read again."""
        steps = self._confirm(outcomes)
        for o in outcomes:
            a = o.action
            if not isinstance(a, MoveMemory) or a.vnode is None:
                continue
            entry, lay = self.layouts.get(a.uuid), self.layout(a.uuid)
            if o.status == DONE and lay is not None:
                self.layouts[a.uuid] = (entry[0], lay.with_pnode(a.vnode, a.to))
                self._unsure.add(a.uuid)
            elif o.status == REFUSED:
                self.layouts.pop(a.uuid, None)
        return steps

    def counts(self) -> Dict[str, int]:
        return {kind: n for kind, n in self.homes.counts().items() if kind != HAND}  # (ours, not moves by hand)
