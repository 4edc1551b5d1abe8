"""Moving a running guest's memory to another node: orchestration.

``check`` answers every refusal that needs no scan; ``prepare`` also scans
the guest's memory and plans the move (the pure planning is
:mod:`xapi_numa.pagemove`); ``run`` drives the hypervisor port batch by
batch, paced, recording progress in the ledger database.  The journal there
says who is moving which VM; a VM whose mover died is handed to the
backend's ``recover_move`` (the next ``migrate``, the daemon,
``migration_status``), which puts back a batch left inside its pause window
from its batch record and unpauses the domain.  After a move the VM's node
affinity and soft affinity follow its memory.
"""

import errno
import json
import os
import time
from typing import Callable, Dict, List, Optional

import attrs

from xapi_numa.core.affinity_fixup import MEANINGFUL_SHARE
from xapi_numa.errors import HypervisorError, InvalidArgument, MoveStopped, NoCapacity, NotMovable, NumaError
from xapi_numa.core.host import DomainInfo, MemoryMap
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.ops.observe import domain_by_name_or_id
from xapi_numa.state.ledger import Ledger
from xapi_numa.core import memory_move as pagemove
from xapi_numa.core.memory_move import MoveTally

RUNNING, DONE, FAILED, STOPPED, INTERRUPTED = "running", "done", "failed", "stopped", "interrupted"


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

    @property
    def pages(self) -> int:
        return sum(len(b) for b in self.batches)

    def to_dict(self) -> dict:
        return {"vm": self.domain.name, "uuid": self.domain.uuid, "domid": self.domain.domid,
                "to": self.target, "pages": self.pages, "batches": len(self.batches),
                "movable_pages": self.movable, "superpage_runs": self.superpage_runs,
                "target_free_pages": self.target_free_pages, "busy_grants": self.busy_grants,
                "skipped": self.skipped,
                "skipped_gfns": {k: pagemove.ranges(v) for k, v in self.skipped_gfns.items()}}


class Journal:
    """Moves in progress and their last report, in the ledger database."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def begin(self, d: DomainInfo, target: int, report: dict, pid: Optional[int] = None,
              owner: Optional[int] = None) -> None:
        """Claim the VM for one mover (``pid``, default this process); refused while
        another live mover has it.  ``owner``: the process that claimed it on our
        behalf (the plugin that started us in the background)."""
        now = self.ledger.clock()
        pid = os.getpid() if pid is None else pid
        with self.ledger._write() as db:
            row = db.execute("SELECT pid, state FROM migration WHERE uuid = ?", (d.uuid,)).fetchone()
            if row and row[1] == RUNNING and row[0] not in (pid, owner):
                if _alive(row[0]):
                    raise NotMovable(d.name, f"its memory is already being moved (process {row[0]})")
                # its batch record may hold the guest's pages: never claim over it
                raise NotMovable(d.name, f"its last mover (process {row[0]}) died; recover first "
                                         "(xapi-numa migrations --recover)")
            db.execute("INSERT OR REPLACE INTO migration (uuid, domid, pid, state, target, report, "
                       "started, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (d.uuid, d.domid, pid, RUNNING, target, json.dumps(report), now, now))

    def progress(self, uuid: str, report: dict) -> None:
        with self.ledger._write() as db:
            db.execute("UPDATE migration SET report = ?, updated = ? WHERE uuid = ?",
                       (json.dumps(report), self.ledger.clock(), uuid))

    def finish(self, uuid: str, state: str, report: dict) -> None:
        with self.ledger._write() as db:
            db.execute("UPDATE migration SET state = ?, report = ?, updated = ? WHERE uuid = ?",
                       (state, json.dumps(report), self.ledger.clock(), uuid))

    def fail_claimed(self, vm: str, error: str) -> None:
        """A background mover could not start: say why where its caller looks."""
        with self.ledger._write() as db:
            for uuid, report in db.execute("SELECT uuid, report FROM migration WHERE state = ?",
                                           (RUNNING,)).fetchall():
                data = json.loads(report)
                if vm in (uuid, data.get("vm"), str(data.get("domid"))):
                    data.update(state=FAILED, error=error)
                    db.execute("UPDATE migration SET state = ?, report = ?, updated = ? WHERE uuid = ?",
                               (FAILED, json.dumps(data), self.ledger.clock(), uuid))

    def rows(self) -> List[dict]:
        with self.ledger._read() as db:
            return [{"uuid": r[0], "domid": r[1], "pid": r[2], "state": r[3], "to": r[4],
                     "report": json.loads(r[5]), "started": r[6], "updated": r[7]}
                    for r in db.execute("SELECT uuid, domid, pid, state, target, report, started, "
                                        "updated FROM migration ORDER BY started").fetchall()]

    def status(self, uuid: str) -> Optional[dict]:
        for row in self.rows():
            if row["uuid"] == uuid:
                return row
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(hv: Hypervisor, journal: Journal) -> List[str]:
    """Finish what a dead mover left: the backend puts back a batch it left inside
    its pause window (from the batch record) and unpauses the domain; the move
    is marked interrupted.  Returns what was done, for logs."""
    done = []
    for row in journal.rows():
        if row["state"] != RUNNING or _alive(row["pid"]):
            continue
        report = dict(row["report"], error=f"process {row['pid']} died during the move")
        domain = next((d for d in hv.domains() if d.uuid == row["uuid"]), None)
        if domain is not None:
            try:
                note = hv.recover_move(domain.domid)
            except NumaError as err:
                done.append(f"could not recover domain {domain.domid} ({domain.name}): {err.message}")
                continue  # the row stays: retried by the next caller
            if note:
                done.append(note)
        journal.finish(row["uuid"], INTERRUPTED, report)
        done.append(f"move of {row['uuid']} by process {row['pid']} marked interrupted")
    return done


def parse_node(text: str, field: str = "to") -> int:
    """One node, in Xen's syntax: ``1`` or ``node:1``."""
    value = text.strip()
    value = value[5:] if value.startswith("node:") else value
    if not value.isdigit():
        raise InvalidArgument(field, f"{text!r} is not one node", "a node number such as 1, or node:1")
    return int(value)


def parse_rate(text: Optional[str], field: str = "rate") -> Optional[float]:
    """MB/s as typed -> bytes/s (None: unpaced beyond the duty cycle)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1 << 20:
        raise InvalidArgument(field, f"{text!r}", "MB/s as a number above 0, e.g. 200")
    return value * (1 << 20)


def _check_domain(hv: Hypervisor, d: DomainInfo) -> None:
    if d.domid == 0:
        raise NotMovable(d.name, "dom0's memory is not moved by this tool")
    if d.type == "pv":
        raise NotMovable(d.name, "it is a PV guest (its page tables hold machine frame numbers); "
                                 "only PVH and HVM guests can have their memory moved")
    blockers = hv.move_blockers(d.domid)
    if blockers:
        raise NotMovable(d.name, f"it has {', '.join(blockers)}: device DMA mappings would go stale")


def check(hv: Hypervisor, vm: str, to: int, max_bytes: Optional[int] = None,
          batch: int = pagemove.DEFAULT_BATCH, probe_ms: int = 0, allow_fallback: bool = False) -> DomainInfo:
    """Every refusal that needs no scan of the guest's memory (what the plugin answers
    at once); returns the domain."""
    topo = hv.topology()
    nodes = len(topo.nodes)
    if not 0 <= to < nodes:
        raise InvalidArgument("to", f"no node {to} on this host", f"0..{nodes - 1}")
    if not 1 <= batch <= pagemove.MAX_BATCH:
        raise InvalidArgument("batch", f"{batch} pages", f"1..{pagemove.MAX_BATCH}")
    if max_bytes is not None and max_bytes < pagemove.PAGE:
        raise InvalidArgument("max", f"{max_bytes} bytes is less than one page", "4K or more, e.g. 512M, 2G")
    if not 0 <= probe_ms <= 60000:
        raise InvalidArgument("probe", f"{probe_ms} ms", "0..60000")
    d = domain_by_name_or_id(hv, vm)
    _check_domain(hv, d)
    # Pages already on the target come back to it, so only the rest needs room;
    # stock Xen cannot say which gfn is where, so count from the per-node totals
    # (the whole domain: a few skipped frames more than will move).
    pages = d.memory // pagemove.PAGE
    if max_bytes is not None:
        pages = min(pages, max_bytes // pagemove.PAGE)
    need = max(0, pages - hv.node_pages(d.domid).get(to, 0))
    free_pages = hv.node_memory()[to].claimable // pagemove.PAGE
    if need > free_pages and not allow_fallback:
        raise NoCapacity(f"node {to} has {free_pages} free pages; moving {pages} pages of {d.name} "
                         f"needs up to {need} (allow the rest elsewhere with --allow-fallback)",
                         ("to", str(to), str(free_pages), str(need)))
    return d


def prepare(hv: Hypervisor, vm: str, to: int, max_bytes: Optional[int] = None,
            batch: int = pagemove.DEFAULT_BATCH, probe_ms: int = 0, allow_fallback: bool = False) -> Plan:
    """Check, scan the guest's memory and plan a move; changes nothing (the probe
    pauses the guest briefly)."""
    d = check(hv, vm, to, max_bytes, batch, probe_ms, allow_fallback)
    try:
        memory: MemoryMap = hv.memory_map(d.domid, probe_ms)
    except HypervisorError as err:
        if err.errno == errno.EPROTOTYPE:
            raise NotMovable(d.name, "it is a PV guest") from None
        raise
    gfns = pagemove.movable_gfns(memory)
    max_pages = None if max_bytes is None else max_bytes // pagemove.PAGE
    batches = tuple(pagemove.plan_batches(gfns, batch, max_pages))
    return Plan(d, to, batches, len(gfns), pagemove.skipped_counts(memory), pagemove.skipped_gfns(memory),
                memory.busy_grants, hv.node_memory()[to].claimable // pagemove.PAGE,
                sum(pagemove.whole_runs(b) for b in batches))


Progress = Callable[[MoveTally], None]


def run(hv: Hypervisor, ledger: Ledger, plan: Plan, rate: Optional[float] = None,
        verify_chunk: int = pagemove.DEFAULT_VERIFY_CHUNK, allow_fallback: bool = False,
        progress: Optional[Progress] = None, fault: Optional[str] = None, fault_batch: int = 0,
        owner: Optional[int] = None,
        sleep: Optional[Callable[[float], None]] = None, clock: Callable[[], float] = time.monotonic) -> dict:
    """Move the planned batches; returns the report (also kept in the journal).

    Callers run :func:`recover` first (before the scan): a VM whose last mover died
    is refused until then, its batch record may hold the guest's pages.

    Stops at the first batch that fails, after that batch has put every page
    back; raises MoveStopped with the report in that case.
    """
    # A backend with modelled time (the simulator) paces in that time, not ours.
    sleep = sleep or hv.sleep
    journal = Journal(ledger)
    d = plan.domain
    tally = MoveTally(plan.pages, len(plan.batches))
    base = {"vm": d.name, "uuid": d.uuid, "domid": d.domid, "to": plan.target, "skipped": plan.skipped}
    journal.begin(d, plan.target, dict(base, state=RUNNING, **tally.summary()), owner=owner)
    started = clock()
    state, error, stuck = DONE, None, ()
    try:
        for i, batch in enumerate(plan.batches):
            result = hv.move_pages(d.domid, batch, plan.target, verify_chunk, allow_fallback,
                                   fault if i == fault_batch else None)
            tally.add(result)
            tally.elapsed = clock() - started
            journal.progress(d.uuid, dict(base, state=RUNNING, **tally.summary()))
            if progress:
                progress(tally)
            if result.error or result.lost:
                state, stuck = FAILED, result.stuck_gfns
                error = _explain(result, plan.target)
                break
            if i + 1 < len(plan.batches):
                sleep(pagemove.pacing_gap(result.pause, len(batch), rate))
    except KeyboardInterrupt:
        state, error = STOPPED, "stopped by the user between batches"
    except NumaError as err:
        state, error = FAILED, err.message
    tally.elapsed = clock() - started
    report = dict(base, state=state, **tally.summary())
    if error:
        report["error"] = error
    if stuck:
        report["stuck_gfns"] = pagemove.ranges(stuck)
    if tally.released:
        report["affinity"] = follow_memory(hv, d)
    journal.finish(d.uuid, state, report)
    if state != DONE:
        raise MoveStopped(f"moving the memory of {d.name} stopped after {tally.batches} of "
                          f"{tally.batches_planned} batches: {error}", (d.name, state, json.dumps(report)))
    return report


def _explain(result, target: int) -> str:
    if result.lost:
        return (f"{result.lost} gfns could not be given a frame again (stage {result.stage}, "
                f"{errno.errorcode.get(result.error, result.error)}): the guest has lost memory")
    if result.not_freed:
        return (f"{result.not_freed} old frame(s) among the gfns reported were not freed after release: "
                f"Xen or a backend still references them (a frame it keeps mapped). The guest got new "
                f"frames with the same contents, but whoever holds the old one writes to it; no further "
                f"batch was touched")
    if result.error == errno.ENOMEM:
        return (f"node {target} ran out of free memory; {result.fallback} pages of the last batch went to "
                f"other nodes")
    return (f"batch failed at stage {result.stage} ({errno.errorcode.get(result.error, result.error)}); "
            f"its contents were put back and the domain unpaused")


def follow_memory(hv: Hypervisor, d: DomainInfo) -> dict:
    """Point node affinity and soft affinity at the nodes that now hold the memory.
    Hard affinity is the admin's: it is reported, never changed."""
    topo = hv.topology()
    pages = hv.node_pages(d.domid)
    total = sum(pages.values()) or 1
    nodes = frozenset(n for n, p in pages.items() if p / total >= MEANINGFUL_SHARE)
    if not nodes:
        return {}
    cpus = topo.cpus_of_nodes(nodes)
    hv.set_node_affinity(d.domid, nodes)
    outcome = {"nodes": sorted(nodes), "soft": "set", "hard_excludes_memory": []}
    for v in hv.vcpus(d.domid):
        hv.set_vcpu_affinity(d.domid, v.vcpu, soft=cpus)
        if not v.hard & cpus:
            outcome["hard_excludes_memory"].append(v.vcpu)
    return outcome


def start_background(domid: int, to: int, ledger_path: str, max_bytes: Optional[int] = None,
                     rate: Optional[str] = None) -> int:
    """Run ``xapi-numa migrate`` detached (its own session, no stdio: xapi reads
    the plugin's stdout to EOF), owning the journal row this process claimed.
    Returns its pid."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "xapi_numa.cli", "migrate", str(domid), "--to", str(to), "--json",
           "--ledger", ledger_path, "--journal-owner", str(os.getpid())]
    if max_bytes is not None:
        cmd += ["--max", str(max_bytes)]
    if rate is not None:
        cmd += ["--rate", rate]
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True, close_fds=True)
    return child.pid
