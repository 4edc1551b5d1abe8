"""The memory-move journal: who is moving which VM's memory, and how far it got.

One row per VM in the host's state database; the mover updates its progress
after every batch and its outcome at the end.  Whether a mover is still alive
is not a pid check (pids are reused): the mover holds an exclusive lock on a
per-VM lock file for its whole life, and the kernel drops it when the process
dies, however it dies.  A row marked running whose lock nobody holds belongs
to a dead mover: its batch record may hold guest pages, so the VM is refused
until it has been recovered.
"""
import json
import os
from typing import Dict, Iterable, List, Optional, Tuple

import attrs

from xapi_numa.core.host import DomainInfo
from xapi_numa.errors import NotMovable
from xapi_numa.state.db import Database
from xapi_numa.state.locks import FileLock, vm_lock

RUNNING, DONE, FAILED, STOPPED, INTERRUPTED = "running", "done", "failed", "stopped", "interrupted"


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

    def to_dict(self) -> dict:
        return {"uuid": self.uuid, "domid": self.domid, "pid": self.pid, "state": self.state, "to": self.to,
                "report": self.report, "started": self.started, "updated": self.updated}


MoverLock = FileLock  # held by a VM's mover from the claim to its exit


class MoveJournal:
    def __init__(self, db: Database) -> None:
        self.db = db

    def lock_for(self, uuid: str) -> MoverLock:
        return vm_lock(self.db.path, "move", uuid)

    def mover_alive(self, uuid: str) -> bool:
        return self.lock_for(uuid).held_by_someone()

    def begin(self, d: DomainInfo, target: int, report: dict, pid: Optional[int] = None,
              lock: Optional[MoverLock] = None) -> MoverLock:
        """Claim the VM for this process (or for ``pid``, a child that inherits the
        returned lock); refused while another mover lives, or while a dead one's
        row is not recovered.  ``lock``: one this process already holds for the VM."""
        pid = os.getpid() if pid is None else pid
        inherited = lock is not None  # held already: the VM was claimed for us, the row is ours
        if lock is None:
            lock = self.lock_for(d.uuid)
            if not lock.try_acquire():
                row = self.status(d.uuid)
                who = " (process {})".format(row.pid) if row else ""
                raise NotMovable(d.name, "its memory is already being moved{}".format(who))
        try:
            now = self.db.clock()
            with self.db.write() as db:
                row = db.execute("SELECT pid, state FROM memory_move WHERE uuid = ?", (d.uuid,)).fetchone()
                if row and row[1] == RUNNING and not inherited:  # a dead mover (we hold its lock now)
                    # its batch record may hold the guest's pages: never claim over it
                    raise NotMovable(d.name, "its last mover (process {}) died; recover first "
                                             "(xapi-numa memory-moves --recover)".format(row[0]))
                db.execute("INSERT OR REPLACE INTO memory_move (uuid, domid, pid, state, target, report, "
                           "started, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (d.uuid, d.domid, pid, RUNNING, target, json.dumps(report), now, now))
        except BaseException:
            lock.release()
            raise
        return lock

    def pending(self, exclude: Optional[str] = None) -> Dict[int, int]:
        """Pages per node that running movers (but ``exclude``'s) have yet to bring there:
        planned less moved.  In a write transaction, it reads in that one."""
        left: Dict[int, int] = {}
        with self.db.read() as db:
            rows = db.execute("SELECT uuid, target, report FROM memory_move WHERE state = ?", (RUNNING,)).fetchall()
        for uuid, target, report in rows:
            if uuid != exclude:
                data = json.loads(report)
                more = max(0, int(data.get("planned_pages", 0)) - int(data.get("moved_pages", 0)))
                left[int(target)] = left.get(int(target), 0) + more
        return left

    def hand_over(self, uuid: str, pid: int) -> None:
        """The claimed row now belongs to ``pid`` (a background mover started for it)."""
        with self.db.write() as db:
            db.execute("UPDATE memory_move SET pid = ? WHERE uuid = ?", (pid, uuid))

    def progress(self, uuid: str, report: dict) -> None:
        with self.db.write() as db:
            db.execute("UPDATE memory_move SET report = ?, updated = ? WHERE uuid = ?",
                       (json.dumps(report), self.db.clock(), uuid))

    def finish(self, uuid: str, state: str, report: dict, only_if: Optional[Tuple[str, float]] = None) -> bool:
        """End the VM's row; with ``only_if`` (state, started), only while it is still that
        row in that state.  Whether it was changed."""
        query = "UPDATE memory_move SET state = ?, report = ?, updated = ? WHERE uuid = ?"
        args: tuple = (state, json.dumps(report), self.db.clock(), uuid)
        if only_if is not None:
            query += " AND state = ? AND started = ?"
            args += only_if
        with self.db.write() as db:
            return db.execute(query, args).rowcount > 0

    def fail_claimed(self, vm: str, error: str) -> None:
        """A background mover could not start: say why where its caller looks."""
        with self.db.write() as db:
            for uuid, report in db.execute("SELECT uuid, report FROM memory_move WHERE state = ?",
                                           (RUNNING,)).fetchall():
                data = json.loads(report)
                if vm in (uuid, data.get("vm"), str(data.get("domid"))):
                    data.update(state=FAILED, error=error)
                    db.execute("UPDATE memory_move SET state = ?, report = ?, updated = ? WHERE uuid = ?",
                               (FAILED, json.dumps(data), self.db.clock(), uuid))

    def rows(self) -> List[MoveRecord]:
        return self._select("", ())

    def _select(self, where: str, args: tuple) -> List[MoveRecord]:
        with self.db.read() as db:
            rows = db.execute("SELECT uuid, domid, pid, state, target, report, started, updated "
                              "FROM memory_move " + where + " ORDER BY started", args).fetchall()
        return [MoveRecord(r[0], int(r[1]), int(r[2]), r[3], int(r[4]), json.loads(r[5]), r[6], r[7]) for r in rows]

    def status(self, uuid: str) -> Optional[MoveRecord]:
        return next(iter(self._select("WHERE uuid = ?", (uuid,))), None)

    def moving(self) -> List[str]:
        """UUIDs of the VMs whose memory a live or dead mover is (or was) moving."""
        with self.db.read() as db:
            return [r[0] for r in db.execute("SELECT uuid FROM memory_move WHERE state = ? ORDER BY started",
                                             (RUNNING,)).fetchall()]

    def forget_ended(self, alive: Iterable[str], older_than: float) -> int:
        """Drop the ended moves of VMs that no longer run here, last changed before
        ``older_than`` (journal clock): one row per VM ever moved, read every cycle."""
        keep = set(alive)
        with self.db.write() as db:
            gone = [u for u, in db.execute("SELECT uuid FROM memory_move WHERE state != ? AND updated < ?",
                                           (RUNNING, older_than)).fetchall() if u not in keep]
            for uuid in gone:
                db.execute("DELETE FROM memory_move WHERE uuid = ? AND state != ?", (uuid, RUNNING))
        return len(gone)
