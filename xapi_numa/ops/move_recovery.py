"""Putting a paused guest back together after a page-move batch that did not finish.

Two cases leave a guest paused with its batch record (libxenuma's
``xn_mig_move``): its mover died inside the pause window, or the batch could
not put every page's contents back (a released gfn left without a frame, the
copy back refused), when the guest must not run on missing or zeroed memory.
Either way the backend's ``recover_move`` backs what is unbacked, writes the
saved contents back from the record and unpauses the domain.  This module
decides when: :func:`recover` for movers that are gone (run by the next move,
xapi-numad's upkeep and ``memory-moves --recover``), then for any batch record no
journal row led to (a foreground scan killed in its probe pause, a VM restarted
under a new domid), and :func:`finish_kept_batch` at once, by the mover whose
batch it was.  A dry run and a status query change nothing: :func:`pending` says
what recovery would do, and who does it.
"""
import errno
from typing import List, Tuple

from xapi_numa.core.host import DomainInfo
from xapi_numa.errors import HypervisorError, NumaError
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.moves import INTERRUPTED, RUNNING, MoveJournal, MoveRecord

BUSY_TRIES, BUSY_WAIT_S = 50, 0.2  # another recovery of the same record: a move's is well under 10 s
WHO_RECOVERS = "recovery pending: `xapi-numa memory-moves --recover` or xapi-numad's next cycle does it"


class Failure(str):
    """A note of :func:`recover` saying a recovery failed: what it left (a row, a batch record)
    stays, and the next call tries again with the same note while the cause lasts (xapi-numad,
    calling every cycle, says it once while it lasts: :meth:`~xapi_numa.ops.runtime.Runtime.upkeep`)."""


def pending(hv: Hypervisor, journal: MoveJournal) -> List[str]:
    """What :func:`recover` would do now, doing none of it (for a dry run and a status
    query): a running row whose mover is gone, and a batch record no live mover's row
    accounts for.  The guest, its batch record and the journal are left as they are."""
    notes: List[str] = []
    records = set(hv.batch_records())
    domains = {d.uuid: d for d in hv.domains()}
    for row in journal.rows():
        if row.state != RUNNING:
            continue
        d = domains.get(row.uuid)
        domid = row.domid if d is None else d.domid
        if journal.mover_alive(row.uuid):
            records.discard(domid)  # its mover's own batch, in flight
            continue
        name = row.report.get("vm") or row.uuid
        if journal.of_another_boot(row):
            what = "it was moving VM {} in an earlier boot of the host (its journal row still says running)".format(
                name)
        elif d is None:
            what = "VM {} no longer runs here".format(name)
        elif domid in records:
            what = "domain {} ({}) {} with its batch record".format(domid, name, "stays paused" if d.paused else "runs")
        else:
            what = "its journal row still says running (a new move of {} is refused until then)".format(name)
        error = row.report.get("error")
        notes.append("the mover of VM {} (process {}) died{}; {}; {}".format(
            name, row.pid, " after: {}".format(error) if error else "", what, WHO_RECOVERS))
        records.discard(domid)
    for domid in sorted(records):
        notes.append("domain {} has a page-move batch record no live mover's journal row accounts for (a mover "
                     "or a --probe-ms scan killed in its pause window, or a scan pausing it now); {}".format(
                         domid, WHO_RECOVERS))
    return notes


def recover(hv: Hypervisor, journal: MoveJournal) -> List[str]:
    """Finish what a dead mover left: the backend puts back a batch it left inside
    its pause window (from the batch record) and unpauses the domain; the move
    is marked interrupted.  Returns what was done, for logs.

    Each row is recovered holding its VM's mover lock, and only if the row read
    under it is still the dead mover's: a mover that ends (or a new one that
    starts) between the read and the recovery is never taken for a dead one."""
    done = []
    for seen in journal.rows():
        if seen.state != RUNNING:
            continue
        lock = journal.lock_for(seen.uuid)
        if not lock.try_acquire():
            continue  # its mover lives
        try:
            row = journal.status(seen.uuid)
            if row is not None and row.state == RUNNING and (row.pid, row.started) == (seen.pid, seen.started):
                done += _recover_row(hv, journal, row)
        finally:
            lock.release()
    return done + _recover_unjournalled(hv)


def _recover_unjournalled(hv: Hypervisor) -> List[str]:
    """Batch records no journal row led to: a foreground scan killed in its probe pause
    (it writes no row before the move), or a record left under a domid its VM no longer
    has.  The backend leaves a live mover's record alone (EBUSY).  First, what a writer
    killed while writing a record left (a query only lists records: this is recovery's)."""
    done = hv.sweep_batch_records()
    for domid in hv.batch_records():
        try:
            note = hv.recover_move(domid)
        except NumaError as err:
            if getattr(err, "errno", None) != errno.EBUSY:
                done.append(Failure("could not recover the batch record of domain {}: {}".format(domid, err.message)))
            continue
        if note:
            done.append(note)
    return done


def _recover_row(hv: Hypervisor, journal: MoveJournal, row: MoveRecord) -> List[str]:
    # a mover that kept its guest paused said why before it exited
    error = row.report.get("error") or "process {} died during the move".format(row.pid)
    report = dict(row.report, error=error)
    if journal.of_another_boot(row):  # its domain and batch record went with that boot: the VM's domain now is
        report["error"] = "{}: its mover went with an earlier boot of the host".format(error)  # another one
        done: List[str] = []
    else:
        done, put_back = _recover_domain(hv, row, report)
        if not put_back:
            return done  # the row stays: retried by the next caller
    if journal.finish(row.uuid, INTERRUPTED, report, only_if=(RUNNING, row.started)):
        done.append("move of {} by process {} marked interrupted".format(row.uuid, row.pid))
    return done


def _recover_domain(hv: Hypervisor, row: MoveRecord, report: dict) -> Tuple[List[str], bool]:
    """Put back what the dead mover of ``row`` left in its domain (``report``'s error then says
    so): (what was done, whether the VM's running domain is whole: the row can end)."""
    done: List[str] = []
    error = report["error"]
    domains = hv.domains()
    domain = next((d for d in domains if d.uuid == row.uuid), None)
    if domain is None:
        # the VM is gone; its batch record, if any, must not wait for (or meet) a domain that
        # gets its domid: the backend drops a record whose domain is gone or is another one now
        try:
            hv.recover_move(row.domid)
        except NumaError as err:
            done.append(Failure("could not drop the batch record of gone domain {}: {}".format(row.domid,
                                                                                                err.message)))
    else:  # (restarted since, its record is under the old domid: the sweep after the rows takes it)
        try:
            note = hv.recover_move(domain.domid)
        except NumaError as err:
            done.append(Failure("could not recover domain {} ({}): {}".format(domain.domid, domain.name,
                                                                               err.message)))
            return done, False
        if note:
            done.append(note)
            # the row's story ends with this recovery, not with an earlier one that failed
            report["error"] = "{}; later: {}".format(error, note)
    return done, True


def finish_kept_batch(hv: Hypervisor, d: DomainInfo, error: str) -> Tuple[bool, str]:
    """A batch whose contents could not all be put back leaves the guest paused, with them
    in its batch record (never running on missing or zeroed memory), as does one whose
    unpause failed: recovery finishes it now.  (still paused?, what to tell)"""
    for attempt in range(BUSY_TRIES):
        try:
            note = hv.recover_move(d.domid)
            break
        except HypervisorError as err:
            # EBUSY: another recovery (xapi-numad's sweep, a CLI) holds the record right now;
            # when it is done the record is gone and there is nothing left to do here
            if err.errno != errno.EBUSY or attempt == BUSY_TRIES - 1:
                return _still_paused(hv, d, error, err)
            hv.sleep(BUSY_WAIT_S)
        except NumaError as err:
            return _still_paused(hv, d, error, err)
    return False, f"{error}; recovery put them back from the batch record: {note}" if note else error


def _still_paused(hv: Hypervisor, d: DomainInfo, error: str, err: NumaError) -> Tuple[bool, str]:
    """What a failed recovery leaves, as the domain shows it (a recovery can put the batch
    back and then fail on another record of the domain's)."""
    try:
        paused = any(x.domid == d.domid and x.paused for x in hv.domains())
    except NumaError:
        paused = True  # cannot tell: the cautious answer
    if not paused:
        return False, f"{error}; recovery put them back, then failed on something else: {err.message}"
    return True, (f"{error}; the guest stays paused with its contents in the batch record, and "
                      f"putting them back failed too ({err.message}): xapi-numad's next cycle or "
                      f"`xapi-numa memory-moves --recover` tries again")
