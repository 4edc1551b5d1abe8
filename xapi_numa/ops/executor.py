"""The one executor: applies the planners' actions to the world.

Planners only decide (:mod:`xapi_numa.core.actions`); everything that follows
from performing an action lives here, once:

* **journalling** — a temporary pin is written to the pin journal before it
  is made (and dropped if it could not be made); a restored pin leaves the
  journal only once its original affinity is back; a change to a guest's
  backend thread or IRQ in dom0 likewise, and one that changed nothing
  leaves the backend journal as it found it;
* **back-off** — a domain whose hypervisor refused a write is left alone for
  a while (1 s, doubling up to 5 min), and the refusal is **logged once**;
* **a write budget** — at most ``max_writes`` affinity writes per batch of
  actions; the rest are deferred to the next batch;
* **vanished domains** — a write to a domain that no longer exists is not an
  error: the action is reported ``gone`` (and its journal entry dropped);
* **dry run** — nothing is touched; every action comes back ``would``, which
  is how every "what would you do now" is answered.

Hypervisor refusals become outcomes; any other failure (no capacity for a
reservation, the state database unavailable) is raised to the caller.
"""
import errno
import logging
import os
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import attrs

from xapi_numa.core import actions as act
from xapi_numa.core.backend_affinity import IRQ, THREAD, Owned
from xapi_numa.core.homing import PinRecord
from xapi_numa.core.reservation import ClaimOverlap
from xapi_numa.errors import HypervisorError, NumaError
from xapi_numa.ops import observe
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.db import Database
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.backend_pins import BackendJournal
from xapi_numa.state.pins import PinJournal

DONE, WOULD, REFUSED, GONE, DEFERRED = "done", "would", "refused", "gone", "deferred"
MAX_BACKOFF_S = 300.0
FALLBACK_CLAIM_ERRNOS = (errno.ENOSYS, errno.EOPNOTSUPP)
# a node claim refused for these is made host-wide instead: no node claims here, or the node's
# memory taken meanwhile (xenopsd, domain.ml, claims globally after a failed node claim too): a
# build left without any claim would run beside claimed ones
NODE_CLAIM_FALLBACK_ERRNOS = FALLBACK_CLAIM_ERRNOS + (errno.ENOMEM,)


@attrs.frozen
class Outcome:
    action: object
    status: str
    detail: str = ""

    def to_dict(self) -> dict:
        return dict(act.describe(self.action), status=self.status, detail=self.detail)


def log_event(logger: logging.Logger, level: int, event: str, **fields) -> None:
    """A structured log line: the event, and its fields (JSON-formatted by the daemon)."""
    logger.log(level, event, extra={"fields": fields})


class Executor:
    """Applies actions through the Hypervisor port and the state database."""

    def __init__(self, hv: Hypervisor, db: Optional[Database] = None, logger: Optional[logging.Logger] = None,
                 dry_run: bool = False, max_writes: Optional[int] = None,
                 clock: Optional[Callable[[], float]] = None,
                 start_mover: Optional[Callable[[Hypervisor, Database, act.MoveMemory], int]] = None,
                 dom0=None) -> None:
        self.hv = hv
        self.dom0 = dom0  # a backends.dom0.Dom0Proc: where guests' backend threads and IRQs are set
        self.backend_journal = BackendJournal(db, logger, hv.clock, hv.boot_id()) \
            if db is not None and dom0 is not None else None
        self.start_mover = start_mover  # starts a background page mover; returns its pid
        self.db = db
        self.logger = logger or logging.getLogger("xapi-numa")
        self.dry_run = dry_run
        self.max_writes = max_writes
        self.clock = clock or hv.clock
        self.ledger = Ledger(db=db) if db is not None else None
        self.pins = PinJournal(db) if db is not None else None
        self.writes = 0                                          # affinity writes made so far
        self._backoff: Dict[int, Tuple[float, float]] = {}      # domid -> (retry at, delay)
        self._reported: Set[Tuple[int, str]] = set()            # refusals already logged
        self._journal_error: Optional[str] = None               # the pin journal failed in this batch

    # --- the entry point ---------------------------------------------------------------------------
    def apply(self, actions: Sequence[object]) -> List[Outcome]:
        budget = self.max_writes
        self._journal_error = None
        out = []
        for action in actions:
            if self.dry_run:
                out.append(Outcome(action, WOULD, getattr(action, "reason", "")))
                continue
            if isinstance(action, act.AFFINITY_WRITES) and not (isinstance(action, act.RestorePin)
                                                                 and action.domid is None):
                if budget is not None and budget <= 0:
                    out.append(Outcome(action, DEFERRED, "write budget of this cycle used"))
                    continue
                if budget is not None:
                    budget -= 1
            out.append(self._apply_one(action))
        return out

    def forget_backoff(self) -> None:
        """Let the next write to every domain through, whatever was refused before: a
        stop puts temporary pins back once, now, or never (an RPM removal stops for good)."""
        self._backoff.clear()

    def forget_gone(self, domids: Set[int], dom0_refused: Optional[Set[Tuple[str, int]]] = None) -> None:
        """Forget the refusals of domains no longer there (``domids``: those that are, read or
        not), and of dom0's threads and IRQs not in ``dom0_refused`` (None: keep them): a
        daemon sees thousands of domains come and go, and once Xen's domids wrap a new domain
        must neither wait out a gone one's back-off nor have its own refusals go unlogged."""
        self._backoff = {d: v for d, v in self._backoff.items() if d in domids}
        self._reported = {k for k in self._reported if (k[0] in domids if k[0] != "dom0" else
                                                        dom0_refused is None or k[1:] in dom0_refused)}

    def _apply_one(self, action) -> Outcome:
        handler = getattr(self, "_" + type(action).__name__)
        return handler(action)

    # --- hypervisor writes, with back-off and log-once ---------------------------------------------
    def _guarded(self, action, domid: int, what: str, write: Callable[[], None]) -> Outcome:
        now = self.clock()
        retry_at, delay = self._backoff.get(domid, (0.0, 0.0))
        if now < retry_at:
            return Outcome(action, DEFERRED, "backing off after a refusal")
        try:
            write()
        except HypervisorError as err:
            if err.errno == errno.ESRCH:
                self._backoff.pop(domid, None)
                return Outcome(action, GONE, "the domain is gone")
            delay = min(max(2 * delay, 1.0), MAX_BACKOFF_S)
            self._backoff[domid] = (now + delay, delay)
            if (domid, what) not in self._reported:  # logged once, then quietly retried
                self._reported.add((domid, what))
                log_event(self.logger, logging.WARNING, "hypervisor refused", domid=domid, op=what,
                          error=err.message, retry_in=delay)
            return Outcome(action, REFUSED, err.message)
        self._backoff.pop(domid, None)
        self._reported.discard((domid, what))
        return Outcome(action, DONE)

    def _affinity_write(self, action, domid: int, vcpu: int, what: str, hard=None, soft=None) -> Outcome:
        outcome = self._guarded(action, domid, what,
                                lambda: self.hv.set_vcpu_affinity(domid, vcpu, hard=hard, soft=soft))
        if outcome.status == DONE:
            self.writes += 1
        return outcome

    def _SetAffinity(self, a: act.SetAffinity) -> Outcome:
        return self._affinity_write(a, a.domid, a.vcpu, "affinity", hard=a.hard, soft=a.soft)

    def _PinTemporarily(self, a: act.PinTemporarily) -> Outcome:
        # journal first: a crash between the two steps leaves a restorable entry
        self.pins.record(PinRecord(a.uuid, a.vcpu, a.domid, a.cpus, a.original_hard, self.clock(), self.hv.boot_id()))
        outcome = self._affinity_write(a, a.domid, a.vcpu, "pin", hard=a.cpus)
        if outcome.status != DONE:
            self.pins.drop(a.uuid, a.vcpu)
        return outcome

    def _RestorePin(self, a: act.RestorePin) -> Outcome:
        if a.domid is None or a.hard is None:
            return self._forget_pin(a, Outcome(a, DONE, a.reason))
        outcome = self._affinity_write(a, a.domid, a.vcpu, "restore", hard=a.hard)
        return self._forget_pin(a, outcome) if outcome.status in (DONE, GONE) else outcome

    def _forget_pin(self, a: act.RestorePin, outcome: Outcome) -> Outcome:
        """The pin is undone (or not ours to undo): its journal entry goes.  A journal that
        cannot take that (a full disk, a write lock held past the busy timeout) holds up no
        other restore, and is not tried again in this batch: the entry left no longer matches
        the affinity, and the next look forgets it (a stop once put back one pin of many)."""
        if self._journal_error is None:
            try:
                self.pins.drop(a.uuid, a.vcpu)
                return outcome
            except NumaError as err:
                self._journal_error = err.message
                log_event(self.logger, logging.WARNING, "pin journal not updated: its entries go at the next look",
                          error=err.message)
        return attrs.evolve(outcome, detail="; ".join(filter(None, (outcome.detail, "journal entry kept"))))

    def _SetNodeAffinity(self, a: act.SetNodeAffinity) -> Outcome:
        return self._guarded(a, a.domid, "node-affinity", lambda: self.hv.set_node_affinity(a.domid, a.nodes))

    # --- reservations and claims ----------------------------------------------------------------------
    def _Reserve(self, a: act.Reserve) -> Outcome:
        # read once inside the ledger's transaction: the node claims we made, and what the other
        # rows hold that their domains' own claims hold too (counted once: on the claim's node, or in
        # the host's total)
        seen: List[Tuple[Dict[int, int], ClaimOverlap]] = []

        def claims() -> Tuple[Dict[int, int], ClaimOverlap]:
            if not seen:
                seen.append((observe.known_node_claims(self.hv, self.ledger),
                             observe.claims_overlap(self.hv, self.ledger, exclude=a.vm)))
            return seen[0]
        reservation = self.ledger.reserve(
            a.vm, a.bytes_per_node, a.ttl,
            lambda: observe.claimable(self.hv, dma=a.zones, known=claims()[0], overlap=claims()[1]), a.owner,
            lambda: observe.claimable_total(self.hv, known=claims()[0], overlap=claims()[1]), self.hv.boot_id(),
            a.started)
        return Outcome(a, DONE, "until {:.0f}".format(reservation.expires))

    def _ReleaseReservation(self, a: act.ReleaseReservation) -> Outcome:
        had = self.ledger.release(a.vm, created=a.created, claimed=a.claimed)
        return Outcome(a, DONE if had else GONE, a.reason)

    def _ShrinkReservation(self, a: act.ShrinkReservation) -> Outcome:
        shrunk = self.ledger.shrink(a.vm, a.outstanding, a.created)
        return Outcome(a, DONE if shrunk else GONE, a.reason)

    def _RenewLease(self, a: act.RenewLease) -> Outcome:
        renewed = self.ledger.renew(a.vm, a.created, a.expires, a.seen_pages)
        return Outcome(a, DONE if renewed else GONE, "{}: until {:.0f}".format(a.reason, a.expires))

    def _ClaimReservation(self, a: act.ClaimReservation) -> Outcome:
        """One claim, as Xen keeps one per domain: on the reservation's node where it has a
        single one, host-wide where it has several or where the node claim is refused for want
        of node claims (ENOSYS/EOPNOTSUPP) or of memory there (ENOMEM), as XenServer's
        toolstack does.  Xen's argument is the domain's
        total (it stakes that less the pages the domain has)."""
        total = a.domain_pages + sum(a.pages_per_node.values())
        if a.max_pages is not None:
            total = min(total, a.max_pages)
        nodes = [n for n, p in a.pages_per_node.items() if p]
        node = nodes[0] if len(nodes) == 1 else None
        # Xen's one claim per domain there already (the toolstack's own, made before its first
        # page, or ours, made by a process killed before it wrote the ledger): the build's, and
        # ours only if the ledger says so
        adopted = self._has_claim(a.domid)
        if not adopted and total > a.domain_pages and \
                not self.ledger.note_claim_ours(a.vm, a.created, a.domid, node):
            return Outcome(a, GONE, "the reservation went meanwhile")
        try:
            if total > a.domain_pages and not adopted:  # (nothing left to claim: done with all the same)
                try:
                    self.hv.claim(a.domid, total, node)
                except HypervisorError as err:
                    if node is None or err.errno not in NODE_CLAIM_FALLBACK_ERRNOS:
                        raise
                    node = None
                    # the row says host-wide before the claim is: killed after it, the claim
                    # must not be counted on the node it was refused on (what Xen keeps from
                    # every node would be lost where that node has less free than it holds)
                    if not self.ledger.note_claim_ours(a.vm, a.created, a.domid, None):
                        return Outcome(a, GONE, "the reservation went meanwhile")
                    self.hv.claim(a.domid, total, None)
        except HypervisorError as err:
            if err.errno == errno.ESRCH:
                return Outcome(a, GONE, "the domain is gone")
            if not (err.errno == errno.EINVAL and self._has_claim(a.domid)):
                if not self._has_claim(a.domid):  # (none made: the note would hold the row for good)
                    self.ledger.forget_claim_ours(a.vm, a.created)
                return Outcome(a, REFUSED, "claim refused, reservation kept: " + err.message)
            adopted = True  # (made since we looked: the build's all the same)
        try:
            made = not adopted and total > a.domain_pages
            marked = self.ledger.mark_claimed(a.vm, a.created, a.unclaimed,
                                              (-1 if node is None else node) if made else None)
        except NumaError:
            if not adopted:  # (the row stays unclaimed: nothing would ever cancel the claim made here)
                self._cancel_claims(a.domid)
            raise
        if not marked:
            if adopted:  # (not made here: left to whoever made it)
                return Outcome(a, GONE, "the reservation went meanwhile")
            self._cancel_claims(a.domid)  # settled or released meanwhile: nothing would cancel it
            return Outcome(a, GONE, "the reservation went meanwhile: claim cancelled")
        return Outcome(a, DONE, "the domain's claim, there already" if adopted else "host-wide claim"
                       if node is None else "claim on node {}".format(node))

    def _has_claim(self, domid: int) -> bool:
        try:
            found = self.hv.domain(domid, named=False)
        except NumaError:
            return False
        return found is not None and found.claimed > 0

    def _cancel_claims(self, domid: int) -> None:
        """Cancel the domain's claim: Xen keeps one per domain, and a claim of 0 cancels it
        whatever node it is on.  Host-wide, so that a claim made host-wide where node claims
        are missing (the hypervisor answers ENOSYS/EOPNOTSUPP on a node) is cancelled too."""
        try:
            self.hv.claim(domid, 0, None)
        except HypervisorError:
            pass  # the domain may be gone: its claim went with it

    def _CancelClaims(self, a: act.CancelClaims) -> Outcome:
        self._cancel_claims(a.domid)
        return Outcome(a, DONE, a.reason)

    def _MoveMemory(self, a: act.MoveMemory) -> Outcome:
        if self.start_mover is None:
            return Outcome(a, REFUSED, "this executor starts no page movers")
        try:
            pid = self.start_mover(self.hv, self.db, a)
        except NumaError as err:
            return Outcome(a, REFUSED, err.message)
        if pid == os.getpid():  # a host with modelled time: the step ran here, as planned
            return Outcome(a, DONE, "moved in this process (simulated host)")
        return Outcome(a, DONE, "mover started as process {}".format(pid))

    # --- guests' backend work in dom0 -------------------------------------------------------------------
    def _journalled(self, key: Tuple[str, int]) -> Optional[Owned]:
        """The backend journal's entry for a thread or IRQ, if it has one."""
        return next((o for o in self.backend_journal.entries() if (o.kind, o.ident) == key), None)

    def _unrecord(self, key: Tuple[str, int], earlier: Optional[Owned]) -> None:
        """A write that changed nothing leaves the journal as it found it: an entry this call
        made goes, an earlier one stays (its change is still in effect, and only the entry
        lets opting out or --no-backend-affinity hand it back)."""
        if earlier is None:
            self.backend_journal.drop(*key)
        else:
            self.backend_journal.record(earlier)

    def _dom0_write(self, action, key: Tuple[str, int], write: Callable[[bool], bool]) -> Outcome:
        """Journal first, then write (told whether the journal already named this thread or
        IRQ); the journal is put back as it was if nothing was changed."""
        if self.dom0 is None:
            return Outcome(action, REFUSED, "this executor does not reach dom0")
        earlier = self._journalled(key)
        self.backend_journal.record(Owned(action.uuid, key[0], key[1], action.name, getattr(action, "starttime", 0),
                                          cpus=action.cpus), getattr(action, "moved_from", None))
        try:
            changed = write(earlier is not None)
        except OSError as err:
            self._unrecord(key, earlier)
            if ("dom0",) + key not in self._reported:
                self._reported.add(("dom0",) + key)
                log_event(self.logger, logging.WARNING, "dom0 refused an affinity change", kind=key[0],
                          ident=key[1], name=action.name, error=err.strerror)
            return Outcome(action, REFUSED, err.strerror or str(err))
        if not changed:
            self._unrecord(key, earlier)
            return Outcome(action, GONE, "no longer the {} we saw".format(key[0]))
        return Outcome(action, DONE, action.reason)

    def _SetThreadAffinity(self, a: act.SetThreadAffinity) -> Outcome:
        return self._dom0_write(a, (THREAD, a.tid),
                                lambda journalled: self.dom0.set_thread(a.tid, a.name, a.starttime, a.cpus))

    def _SetIrqAffinity(self, a: act.SetIrqAffinity) -> Outcome:
        def write(journalled: bool) -> bool:
            self.dom0.ban_irq(a.irq)  # banned before it is moved: irqbalance must not move it back
            try:
                moved = self.dom0.set_irq(a.irq, a.name, a.cpus)
            except BaseException:
                # the ban goes with the journal entry: if this write made the entry, nothing
                # else would ever unban it; if an earlier one stays, so does the ban
                if not journalled:
                    self.dom0.unban_irq(a.irq)
                raise
            if not moved and not journalled:
                self.dom0.unban_irq(a.irq)
            return moved
        return self._dom0_write(a, (IRQ, a.irq), write)

    def _ForgetBackendAffinity(self, a: act.ForgetBackendAffinity) -> Outcome:
        if self.backend_journal is None:
            return Outcome(a, REFUSED, "this executor does not reach dom0")
        entry = self._journalled((a.kind, a.ident))
        if entry is not None and entry == Owned(a.uuid, a.kind, a.ident, a.name, a.starttime):
            self.backend_journal.drop(a.kind, a.ident)
        return Outcome(a, DONE, a.reason)

    def _RestoreBackendAffinity(self, a: act.RestoreBackendAffinity) -> Outcome:
        if self.dom0 is None:
            return Outcome(a, REFUSED, "this executor does not reach dom0")
        entry = self._journalled((a.kind, a.ident))
        if entry is not None and entry != Owned(a.uuid, a.kind, a.ident, a.name, a.starttime):
            # the journal names another thread or IRQ by this number now (a reused tid or IRQ
            # number, aligned anew in this batch): the entry and the ban are that one's to keep
            return Outcome(a, GONE, "no longer the {} we saw".format(a.kind))
        if a.cpus is None and a.kind == THREAD:  # nothing read to hand it back to: the entry stays, for the next cycle
            return Outcome(a, REFUSED, "dom0's vCPUs were not read")
        status = DONE
        try:
            if a.cpus is not None and a.kind == THREAD:
                status = DONE if self.dom0.set_thread(a.ident, a.name, a.starttime, a.cpus) else GONE
            elif a.cpus is not None:
                status = DONE if self.dom0.set_irq(a.ident, a.name, a.cpus) else GONE
            if a.kind == IRQ:
                self.dom0.unban_irq(a.ident)
        except OSError as err:  # the journal entry stays: retried next cycle
            return Outcome(a, REFUSED, err.strerror or str(err))
        self.backend_journal.drop(a.kind, a.ident)
        return Outcome(a, status, a.reason)
