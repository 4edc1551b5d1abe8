"""Memory following a home the rebalancer moved (its bookkeeping; the steps themselves
are :func:`xapi_numa.core.rebalance_moves.follow_memory`).

Per VM it keeps the home its memory follows and how many pages the steps so far
took (the mover cannot tell which gfns are on the target already, so later steps
skip those), and the VMs whose memory stays where it is by design (PV, a device
model, passthrough): their new home is ours to keep, and the affinity fix-up
must not point them back at their memory.  Every period each followed VM gets
its next step within the room left on the target (free less claims and the
ledger's reservations, shared by the period's steps), until enough is local, a
step brought nothing to the target (it filled up meanwhile), or the target has
had no room for a hold-down.  After a restart, following resumes from the
home-move log, which also keeps the pages the steps took (the mover takes gfns
in order: counted from 0 again, a restart moved again what was on the target,
pausing the guest for it, and the steps brought nothing).
"""
from typing import Dict, List, Mapping, Optional, Set, Tuple

import attrs

from xapi_numa.core import locality, rebalance, rebalance_moves
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.state.homes import HAND, HomeMoves
from xapi_numa.state.moves import DONE as MOVE_DONE, RUNNING, MoveJournal


class MemoryFollowing:
    def __init__(self, settings: rebalance.Settings, moves: MoveJournal, homes: HomeMoves) -> None:
        self.settings, self.moves, self.homes = settings, moves, homes
        self.followed: Dict[str, Tuple[int, int]] = {}  # uuid -> (home it follows, pages moved so far)
        self.homed_fixed: Dict[str, int] = {}  # uuid -> the home we gave a VM whose memory stays where it is
        self._starved: Dict[str, float] = {}  # uuid -> since when its target has had no room for its memory
        self._refused: Set[str] = set()  # VMs whose last step was refused (none started since)
        self._period: Tuple[Optional[int], Optional[Dict[int, int]]] = (None, None)  # chunk, room left
        self._resumed = False  # followed rebuilt from the home-move log (once, after a start)
        self._domid: Dict[str, int] = {}  # uuid -> the domain the entries are about (a reboot is a new one)

    def begin_period(self, chunk_pages: Optional[int], room: Optional[Mapping[int, int]]) -> None:
        """This period's step size (modelled time) and the room on each node its steps share."""
        self._period = (chunk_pages, None if room is None else dict(room))

    def room_left(self) -> Optional[Dict[int, int]]:
        """The room this period's steps so far leave on each node (None: unbounded)."""
        return None if self._period[1] is None else dict(self._period[1])

    def taken(self, node: int, pages: int) -> None:
        """A move of this period brings ``pages`` to ``node`` at once (a whole vnode): the
        period's follow steps share what is left of its room."""
        room = self._period[1]
        if room is not None:
            room[node] = room.get(node, 0) - pages

    def start(self, vm: rebalance.VmLoad, to: int) -> List[object]:
        """A home move of ``vm`` to ``to`` was made: its first step (none if its memory stays)."""
        self._domid[vm.uuid] = vm.domid
        if vm.memory_stays:
            self.homed_fixed[vm.uuid] = to
            return []
        self.followed[vm.uuid] = (to, 0)
        self._starved.pop(vm.uuid, None)
        self._refused.discard(vm.uuid)
        return self._step(attrs.evolve(vm, home=to), 0)

    def first_steps(self, candidates) -> List[object]:
        """The first steps :meth:`start` gives the moves of ``candidates`` once their writes are
        made (the same period), nothing noted: what a dry run shows beside those writes."""
        return [step for c in candidates for vm, to in c.moves if vm.vnode is None and not vm.memory_stays
                for step in self._step(attrs.evolve(vm, home=to), 0)]

    def forget_all_but(self, alive: Mapping[str, int]) -> None:
        """Keep only the entries of domains still running (uuid -> domid): a VM rebooted is
        a new domain, its memory built afresh and its gfns not the ones skipped so far."""
        same = {u for u, domid in self._domid.items() if alive.get(u) == domid}
        self.drop(set(self._domid) - same)

    def drop(self, uuids: Set[str]) -> None:
        """Stop following (and holding the home of) these VMs."""
        for table in (self.followed, self.homed_fixed, self._starved, self._domid):
            for uuid in uuids & set(table):
                del table[uuid]

    def refused(self, uuid: str, now: float) -> bool:
        """A step was not made (refused): following ends if none is made for a hold-down.  True
        if it is the first refused since the VM's last step was started (or its following
        began): the one a log says, not each period's until the hold-down ends it."""
        self._starved.setdefault(uuid, now)
        first = uuid not in self._refused
        self._refused = {u for u in self._refused if u in self.followed} | {uuid}  # (followings ended: forgotten)
        return first

    def steps(self, vms: List[rebalance.VmLoad], excluded: Set[int], now: float) -> List[object]:
        """Memory follows the homes we moved, until enough of it is local, or a step brought
        nothing there (the target filled up meanwhile), or the target has had no room for a
        hold-down (a start's reservation holding it); meanwhile it waits."""
        out: List[object] = []
        for vm in vms:
            if vm.uuid in self.homed_fixed and vm.home != self.homed_fixed[vm.uuid]:
                del self.homed_fixed[vm.uuid]  # someone else homed it since
            state = self.followed.get(vm.uuid)
            if state is None or vm.domid in excluded:
                continue
            if vm.home != state[0] or (state[1] and not self._last_step_gained(vm.uuid)):
                del self.followed[vm.uuid]  # its home changed since, or the memory cannot come
                continue
            if vm.memory_stays:  # resumed after a restart: nothing to follow
                del self.followed[vm.uuid]
                self.homed_fixed[vm.uuid] = state[0]
                continue
            if not vm.pages:
                continue  # its pages could not be read this time: nothing to conclude
            if vm.local_share(vm.home) >= self.settings.local_enough:
                del self.followed[vm.uuid]  # enough is local: done following
                continue
            if now - self._starved.get(vm.uuid, now) >= self.settings.hold_down:
                self.drop({vm.uuid})  # no step made for so long: the fix-up decides where it lives
                continue
            step = self._step(vm, state[1])
            if not step:
                self._starved.setdefault(vm.uuid, now)  # no room: a start's reservation holds it
            out += step
        return out

    def _step(self, vm: rebalance.VmLoad, already_moved: int) -> List[object]:
        """The next follow step, within the room left on the target this period (taken from it)."""
        chunk_pages, room = self._period
        step = rebalance_moves.follow_memory(vm, self.settings, already_moved, chunk_pages,
                                             None if room is None else room.get(vm.home, 0))
        if step is None:
            return []
        if room is not None:
            room[vm.home] = room.get(vm.home, 0) - (step.max_pages or 0)
        return [step]

    def _last_step_gained(self, uuid: str) -> bool:
        """Did the last finished page move of this VM bring pages to its target?"""
        row = self.moves.status(uuid)
        if row is None or row.state == RUNNING:
            return True
        report = row.report or {}
        return row.state == MOVE_DONE and report.get("moved_pages", 0) > report.get("fallback_pages", 0)

    def resume(self, snap: HostSnapshot) -> None:
        """After a (re)start: a VM whose memory was following the home we last moved it to,
        and whose home is still that node, keeps following it.  Otherwise the first cycle's
        affinity fix-up would take the memory left behind for the VM's home (a home over
        both nodes, which the rebalancer no longer moves).  Done once, at the first
        snapshot; the steps already made are counted in the log (those of the same domain)."""
        if self._resumed:
            return
        self._resumed = True
        for uuid, move in self.homes.latest(snap.time).items():
            d = next((x for x in snap.domains if x.uuid == uuid), None)
            if d is None or uuid in self.followed or move.kind == HAND:  # (a move by hand: no memory follows)
                continue
            if locality.home_nodes(snap.vcpus.get(d.domid, ()), snap.topology) == {move.to_node}:
                self.followed[uuid] = (move.to_node, move.followed_pages if move.followed_domid == d.domid else 0)
                self._domid[uuid] = d.domid

    def moved(self, uuid: str, to: int, pages: int) -> None:
        """A follow-up step to ``to`` was started for ``pages`` more pages."""
        if uuid in self.followed and self.followed[uuid][0] == to:
            done = self.followed[uuid][1]
            self.followed[uuid] = (to, done + pages)
            self._starved.pop(uuid, None)
            self._refused.discard(uuid)
            if uuid in self._domid:
                self.homes.followed(uuid, self._domid[uuid], pages)

    def held_homes(self) -> Set[str]:
        """VMs whose home we moved and keep: their memory following it, or staying where it
        is by design (the affinity fix-up must not point them back at their memory)."""
        return set(self.followed) | set(self.homed_fixed)

    def held_domains(self, snap: HostSnapshot) -> Set[int]:
        """The domids in ``snap`` of :meth:`held_homes`, resumed from the home-move log first
        (:meth:`resume`: once per process, it writes nothing): what a daemon just started, or
        a dry run in a process of its own, knows of them is what the log says."""
        self.resume(snap)
        held = self.held_homes()
        return {d.domid for d in snap.domains if d.uuid in held}
