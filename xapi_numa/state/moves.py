"""The memory-move journal: who is moving which VM's memory, and how far it got.

One row per VM in the host's state database; the mover updates its progress
after every batch and its outcome at the end.  Whether a mover is still alive
is not a pid check (pids are reused): the mover holds an exclusive lock on a
per-VM lock file for its whole life, and the kernel drops it when the process
dies, however it dies.  A row marked running whose lock nobody holds belongs
to a dead mover: its batch record may hold guest pages, so the VM is refused
until it has been recovered.

A row says the boot of the host its move was begun in, and is stamped with the host's
clock (dom0's monotonic one) at every update, where the journal is given them
(:meth:`MoveJournal.of_host`).  A running row of another boot names a mover that went
with that boot, and a domain with it: the VM may run again, even as the same domid, but
no page of that move is still to come (:meth:`MoveJournal.pending`), nor is its VM being
moved (:meth:`MoveJournal.moving`); its recovery only ends the row
(:mod:`xapi_numa.ops.move_recovery`).  The hour an ended move stays
(:meth:`MoveJournal.forget_ended`) is told by the host's clock where the row is of this
boot (:func:`xapi_numa.core.boots.age`): by the wall clock, a step forward cut it short.
"""
import json
import os
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import attrs

from xapi_numa.core.boots import age, of_another_boot
from xapi_numa.core.host import DomainInfo
from xapi_numa.errors import InvalidArgument, NotMovable
from xapi_numa.state.db import Database
from xapi_numa.state.locks import MOVE, FileLock, vm_lock
from xapi_numa.state.rows import INTEGER, NUMBER, TEXT, Table, json_of, one_of, optional

RUNNING, DONE, FAILED, STOPPED, INTERRUPTED = "running", "done", "failed", "stopped", "interrupted"
PAGE_COUNTS = ("planned_pages", "moved_pages", "fallback_pages")  # what the readers of a report count with


def _a_report(data: object) -> bool:
    return isinstance(data, dict) and all(type(data.get(k, 0)) is int and data.get(k, 0) >= 0 for k in PAGE_COUNTS)


MEMORY_MOVE = Table("memory_move", ("uuid",), {
    "uuid": TEXT, "domid": INTEGER, "pid": INTEGER, "state": one_of(RUNNING, DONE, FAILED, STOPPED, INTERRUPTED),
    "target": INTEGER, "started": NUMBER, "updated": NUMBER,
    "report": json_of("a JSON object (the move's report; {}, where given, whole numbers)".format(
        ", ".join(PAGE_COUNTS)), _a_report), "host_updated": optional(NUMBER), "boot": TEXT})
RECORD = ("uuid", "domid", "pid", "state", "target", "report", "started", "updated", "boot")  # a MoveRecord's columns


@attrs.frozen
class MoveRecord:
    uuid: str
    domid: int
    pid: int
    state: str
    to: int
    report: dict
    started: float
    updated: float
    boot: str = ""  # the host's boot id when the move was begun ("": not known)

    def to_dict(self) -> dict:
        return {"uuid": self.uuid, "domid": self.domid, "pid": self.pid, "state": self.state, "to": self.to,
                "report": self.report, "started": self.started, "updated": self.updated}


MoverLock = FileLock  # held by a VM's mover from the claim to its exit


class MoveJournal:
    def __init__(self, db: Database, host_clock: Optional[Callable[[], float]] = None, boot: str = "") -> None:
        """``host_clock``, ``boot``: the host's clock and boot id (None, "": not known; rows are
        then written without them, and every row is read as of this boot)."""
        self.db, self.host_clock, self.boot = db, host_clock, boot

    @classmethod
    def of_host(cls, db: Database, hv) -> "MoveJournal":
        """The journal as the host ``hv`` (a Hypervisor) stamps and reads it."""
        return cls(db, hv.clock, hv.boot_id())

    def _host_now(self) -> Optional[float]:
        return None if self.host_clock is None else self.host_clock()

    def of_another_boot(self, row: MoveRecord) -> bool:
        """Was ``row``'s move begun in another boot of the host (its mover and its domain gone with it)?"""
        return of_another_boot(row.boot, self.boot)

    def lock_for(self, uuid: str) -> MoverLock:
        return vm_lock(self.db.path, MOVE, uuid, create=not self.db.in_memory)  # (in memory: no file, none made)

    def mover_alive(self, uuid: str) -> bool:
        return self.lock_for(uuid).held_by_someone()

    def begin(self, d: DomainInfo, target: int, report: Optional[dict], pid: Optional[int] = None,
              lock: Optional[MoverLock] = None, own_lock: bool = False,
              room_check: Optional[Callable[[], None]] = None) -> MoverLock:
        """Claim the VM for this process (or for ``pid``, a child that inherits the
        returned lock); refused while another mover lives, or while a dead one's
        row is not recovered.  ``lock``: one this process already holds for the VM:
        the VM was claimed for us (the row is ours), or with ``own_lock``, this
        process took it itself (:meth:`take_lock`).  ``report`` None: only take the
        lock.  ``room_check`` raises if the target lacks room for this move; it runs
        in the transaction that writes the row, so that two movers (or a mover and a
        reservation, :meth:`Ledger.reserve`) checking the same node never both pass."""
        pid = os.getpid() if pid is None else pid
        inherited = lock is not None and not own_lock  # held already: the VM was claimed for us, the row is ours
        if lock is None:
            lock = self.lock_for(d.uuid)
            if not lock.try_acquire():
                row = self.status(d.uuid)
                who = " (process {})".format(row.pid) if row else ""
                raise NotMovable(d.uuid, "its memory is already being moved{}".format(who), d.name)
        try:
            if report is None:  # the lock only (take_lock)
                return lock
            now = self.db.clock()
            with self.db.write() as db:
                row = next(iter(MEMORY_MOVE.rows(self.db, db, ("pid", "state", "boot"), "WHERE uuid = ?",
                                                 (d.uuid,))), None)
                if row and row[1] == RUNNING and not inherited and not of_another_boot(row[2], self.boot):
                    # a dead mover (we hold its lock now); one of an earlier boot: its batch went with it
                    # its batch record may hold the guest's pages: never claim over it
                    raise NotMovable(d.uuid, "its last mover (process {}) died; recover first "
                                             "(xapi-numa memory-moves --recover)".format(row[0]), d.name)
                db.execute("INSERT OR REPLACE INTO memory_move (uuid, domid, pid, state, target, report, "
                           "started, updated, host_updated, boot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (d.uuid, d.domid, pid, RUNNING, target, json.dumps(report), now, now,
                            self._host_now(), self.boot))
                if room_check is not None:  # with this row written: a refusal rolls it back
                    room_check()
        except BaseException:
            lock.release()
            raise
        return lock

    def take_lock(self, d: DomainInfo) -> MoverLock:
        """The VM's mover lock, before anything about the move is read (no row yet:
        :meth:`begin` with ``own_lock`` writes it); refused while another mover lives."""
        return self.begin(d, -1, None)

    def adopt(self, d: DomainInfo, fd: int) -> MoverLock:
        """The lock a background mover inherited as descriptor ``fd`` from the process
        that claimed the VM for it (:func:`~xapi_numa.ops.move_memory.claim_and_start`).
        Refused unless ``fd`` holds the VM's mover lock and the VM's row is a running
        claim made by our parent or handed over to us: any other descriptor would let
        two movers work on one VM (InvalidArgument ``lock_fd``, nothing changed)."""
        why = self.lock_for(d.uuid).held_through(fd)
        row = self.status(d.uuid) if why is None else None
        if why is None and (row is None or row.state != RUNNING or row.pid not in (os.getpid(), os.getppid())):
            why = "VM {} has no running claim made for this process".format(d.uuid)
        if why is not None:
            raise InvalidArgument("lock_fd", "descriptor {}: {}".format(fd, why),
                                  "the mover lock of the VM, inherited from the process that claimed it")
        return MoverLock(self.lock_for(d.uuid).path, fd)

    def pending(self, exclude: Optional[str] = None) -> Dict[int, int]:
        """Pages per node that running movers (but ``exclude``'s) have yet to bring there:
        planned less moved; none of a mover of another boot.  In a write transaction, it reads
        in that one."""
        left: Dict[int, int] = {}
        with self.db.read() as db:
            rows = MEMORY_MOVE.rows(self.db, db, ("uuid", "target", "report", "boot"), "WHERE state = ?", (RUNNING,))
        for uuid, target, report, boot in rows:
            if uuid != exclude and not of_another_boot(boot, self.boot):
                more = max(0, report.get("planned_pages", 0) - report.get("moved_pages", 0))
                left[target] = left.get(target, 0) + more
        return left

    def hand_over(self, uuid: str, pid: int) -> None:
        """The claimed row now belongs to ``pid`` (a background mover started for it)."""
        with self.db.write() as db:
            db.execute("UPDATE memory_move SET pid = ? WHERE uuid = ?", (pid, uuid))

    def progress(self, uuid: str, report: dict) -> None:
        with self.db.write() as db:
            db.execute("UPDATE memory_move SET report = ?, updated = ?, host_updated = ? WHERE uuid = ?",
                       (json.dumps(report), self.db.clock(), self._host_now(), uuid))

    def finish(self, uuid: str, state: str, report: dict, only_if: Optional[Tuple[str, float]] = None) -> bool:
        """End the VM's row; with ``only_if`` (state, started), only while it is still that
        row in that state.  Whether it was changed."""
        query = "UPDATE memory_move SET state = ?, report = ?, updated = ?, host_updated = ? WHERE uuid = ?"
        args: tuple = (state, json.dumps(report), self.db.clock(), self._host_now(), uuid)
        if only_if is not None:
            query += " AND state = ? AND started = ?"
            args += only_if
        with self.db.write() as db:
            return db.execute(query, args).rowcount > 0

    def rows(self) -> List[MoveRecord]:
        return self._select("", ())

    def _select(self, where: str, args: tuple) -> List[MoveRecord]:
        with self.db.read() as db:
            rows = MEMORY_MOVE.rows(self.db, db, RECORD, where + " ORDER BY started", args)
        return [MoveRecord(*row) for row in rows]

    def status(self, uuid: str) -> Optional[MoveRecord]:
        return next(iter(self._select("WHERE uuid = ?", (uuid,))), None)

    def moving(self) -> List[str]:
        """UUIDs of the VMs whose memory a live or dead mover of this boot is (or was) moving.  xapi-numad
        reads them before homing in every cycle: a row whose UUID cannot be read (it names no
        VM to leave alone) is passed over here, not to stop homing for good; every other
        reader refuses it (a move's recovery, in the daemon's every cycle, which logs it)."""
        with self.db.read() as db:
            rows = MEMORY_MOVE.rows(self.db, db, ("uuid", "boot"), "WHERE state = ? ORDER BY started", (RUNNING,),
                                    left_out=lambda err: None)
        return [uuid for uuid, boot in rows if not of_another_boot(boot, self.boot)]

    def forget_ended(self, alive: Iterable[str], kept_for: float) -> int:
        """Drop the ended moves of VMs that no longer run here, last changed more than ``kept_for``
        seconds ago (:func:`~xapi_numa.core.boots.age`): one row per VM ever moved, read every cycle."""
        keep = set(alive)
        wall, host = self.db.clock(), self._host_now()
        with self.db.write() as db:
            rows = MEMORY_MOVE.rows(self.db, db, ("uuid", "updated", "host_updated", "boot"), "WHERE state != ?",
                                    (RUNNING,))
            gone = [u for u, *when in rows if u not in keep and age(when[0], when[1], when[2], wall, host,
                                                                    self.boot) > kept_for]
            for uuid in gone:
                db.execute("DELETE FROM memory_move WHERE uuid = ? AND state != ?", (uuid, RUNNING))
        return len(gone)
