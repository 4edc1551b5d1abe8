"""``xapi-numad``: keep running VMs well placed.  One loop, pure planners, one executor.

Every period (default 1 s) it takes a snapshot of the host, asks the
planners what to do, and applies it:

* vCPU homing (:mod:`.homing`): temporary hard pins bring displaced vCPUs
  home; every pin is journalled (:class:`~xapi_numa.ledger.PinJournal`)
  before it is made and undone once the vCPU is home, after a timeout, or at
  the next start after a crash;
* affinity fix-up (:mod:`.affinity_fixup`): soft affinity follows the memory;
* reservations: the ledger's reconcile and expiry, and, with a xapi session,
  settling VMs started with a boot pin from ``place`` (so ``place`` then a
  plain ``xe vm-start`` is enough).

Affinity writes are rate-limited; a refusal by the hypervisor is logged once
and retried with exponential back-off; a domain that vanishes mid-repair is
forgotten, not retried.  Logs are JSON lines.  SIGTERM ends it cleanly.
"""

import argparse
import json
import logging
import os
import signal
import sys
import time
from typing import Callable, Dict, FrozenSet, List, Optional, Set, Tuple

from xapi_numa.core import affinity_fixup, homing
from xapi_numa.ops import move_memory as migrate
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.ops import observe
from xapi_numa.core.cpuset import format_ids
from xapi_numa.errors import HypervisorError, NumaError
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.backends.open import backend_spec, open_hypervisor
from xapi_numa.state.ledger import Ledger, PinJournal
from xapi_numa.core.policy import Policy

LOG = logging.getLogger("xapi-numad")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": round(record.created, 3), "level": record.levelname.lower(), "event": record.getMessage()}
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, sort_keys=True)


def log(level: int, event: str, **fields) -> None:
    LOG.log(level, event, extra={"fields": fields})


class Daemon:
    """The loop's state and its executor; planners stay pure."""

    def __init__(self, hv: Hypervisor, ledger: Ledger, clock: Callable[[], float], scheduler: str,
                 policy_of: Optional[Callable[[str], Policy]] = None, threshold: float = 1.0,
                 pin_timeout: float = 5.0, max_writes_per_cycle: int = 256, fixup_every: int = 30,
                 settler: Optional[Callable[[], List[str]]] = None) -> None:
        self.hv, self.ledger, self.clock, self.scheduler = hv, ledger, clock, scheduler
        self.journal = PinJournal(ledger)
        self.moves = migrate.Journal(ledger)
        self.policy_of = policy_of or (lambda uuid: Policy())
        self.threshold, self.pin_timeout = threshold, pin_timeout
        self.max_writes = max_writes_per_cycle
        self.fixup_every = fixup_every
        self.settler = settler
        self.displaced_since: Dict[Tuple[int, int], float] = {}
        self.writes = 0
        self.cycles = 0
        self.backoff: Dict[int, Tuple[float, float]] = {}  # domid -> (retry at, delay)
        self.reported: Set[Tuple[int, str]] = set()

    # --- affinity writes, with error handling in one place ---------------------------------------
    def _write(self, domid: int, vcpu: int, what: str, hard: Optional[FrozenSet[int]] = None,
               soft: Optional[FrozenSet[int]] = None) -> bool:
        """Every affinity write goes through here: back-off, log-once, ESRCH to the caller."""
        now = self.clock()
        retry_at, delay = self.backoff.get(domid, (0.0, 0.0))
        if now < retry_at:
            return False
        try:
            self.hv.set_vcpu_affinity(domid, vcpu, hard=hard, soft=soft)
        except HypervisorError as err:
            if err.errno_name == "ESRCH":
                raise
            delay = min(max(2 * delay, 1.0), 300.0)
            self.backoff[domid] = (now + delay, delay)
            if (domid, what) not in self.reported:  # logged once, then quietly retried
                self.reported.add((domid, what))
                log(logging.WARNING, "affinity write refused", domid=domid, vcpu=vcpu, op=what,
                    error=err.message, retry_in=delay)
            return False
        self.backoff.pop(domid, None)
        self.reported.discard((domid, what))
        self.writes += 1
        return True

    # --- temporary pins ------------------------------------------------------------------------------
    def recover(self) -> int:
        """At start: undo every temporary pin a previous run left behind."""
        restored = 0
        doms = {d.uuid: d.domid for d in self.hv.domains()}
        for uuid, vcpu, _, original, _ in self.journal.entries():
            domid = doms.get(uuid)
            if domid is not None:
                try:
                    if self._write(domid, vcpu, "restore", hard=_cpus(original)):
                        restored += 1
                    else:
                        continue  # keep the entry: retried next cycle
                except HypervisorError:
                    pass  # gone
            self.journal.drop(uuid, vcpu)
        if restored:
            log(logging.INFO, "restored pins left by a previous run", count=restored)
        return restored

    def _restore_due(self, snap: HostSnapshot) -> int:
        """Restore the original hard affinity of pinned VMs that are home (or waited too long)."""
        by_vm: Dict[str, list] = {}
        for row in self.journal.entries():
            by_vm.setdefault(row[0], []).append(row)
        doms = {d.uuid: d.domid for d in snap.domains}
        restored = 0
        for uuid, rows in by_vm.items():
            domid = doms.get(uuid)
            if domid is None:  # destroyed meanwhile: nothing to restore, nothing to retry
                for r in rows:
                    self.journal.drop(uuid, r[1])
                continue
            current = {v.vcpu: v for v in snap.vcpus.get(domid, ())}
            home = all(r[1] in current and current[r[1]].cpu in current[r[1]].hard for r in rows)
            timed_out = snap.time - min(r[4] for r in rows) >= self.pin_timeout
            if not (home or timed_out):
                continue
            for r in rows:
                try:
                    if self._write(domid, r[1], "restore", hard=_cpus(r[3])):
                        self.journal.drop(uuid, r[1])
                        restored += 1
                except HypervisorError:
                    self.journal.drop(uuid, r[1])
            log(logging.INFO, "pins restored", domid=domid, vcpus=len(rows), home=home, timed_out=timed_out)
        return restored

    def _apply_pins(self, pins: List[homing.Pin], now: float) -> int:
        applied = 0
        for pin in pins[: self.max_writes]:
            # journal first: a crash between the two lines leaves a restorable entry
            self.journal.record(pin.uuid, pin.vcpu, pin.domid, format_ids(pin.original_hard), now)
            try:
                if self._write(pin.domid, pin.vcpu, "pin", hard=pin.cpus):
                    applied += 1
                else:
                    self.journal.drop(pin.uuid, pin.vcpu)
            except HypervisorError:
                self.journal.drop(pin.uuid, pin.vcpu)
        if applied:
            log(logging.INFO, "pinned displaced vCPUs home", count=applied,
                vcpus=[f"{p.domid}.{p.vcpu}" for p in pins[:applied]])
        return applied

    # --- one cycle --------------------------------------------------------------------------------------
    def excluded(self, snap: HostSnapshot) -> Set[int]:
        # a VM whose memory is being moved gets its affinity from the mover when it is done
        moving = {r["uuid"] for r in self.moves.rows() if r["state"] == migrate.RUNNING}
        out = {d.domid for d in snap.domains if d.uuid in moving}
        for d in snap.domains:
            try:
                mode = self.policy_of(d.uuid).mode
            except NumaError:
                mode = "best_effort"
            if mode in ("any", "strict"):
                out.add(d.domid)
        return out

    def cycle(self) -> dict:
        now = self.clock()
        self.cycles += 1
        with_pages = self.fixup_every > 0 and self.cycles % self.fixup_every == 1
        snap = observe.take(self.hv, now, with_pages=with_pages)
        # how long each vCPU has been displaced
        current = {(v.domid, v.vcpu) for v in homing.displaced(snap)}
        self.displaced_since = {k: self.displaced_since.get(k, now) for k in current}
        restored = self._restore_due(snap)
        pinned = {(d.domid, r[1]) for r in self.journal.entries() for d in snap.domains if d.uuid == r[0]}
        excluded = self.excluded(snap)
        pins = homing.plan(snap, self.displaced_since, self.threshold, self.scheduler, excluded, pinned)
        applied = self._apply_pins(pins, now) if pins else 0
        moved = 0
        if with_pages:
            for move in affinity_fixup.plan(snap, excluded):
                try:
                    if not all([self._write(move.domid, v.vcpu, "soft", soft=move.cpus)
                                for v in snap.vcpus.get(move.domid, ())]):
                        continue  # refused: retried on a later fix-up pass
                except HypervisorError:
                    continue  # the domain went away
                moved += 1
                log(logging.INFO, "soft affinity follows memory", domid=move.domid,
                    nodes=sorted(move.nodes), reason=move.reason)
        upkeep = self._upkeep()
        return {"time": now, "displaced": len(current), "pinned": applied, "restored": restored,
                "soft_moved": moved, "writes": self.writes, **upkeep}

    def _upkeep(self) -> dict:
        out = {}
        try:
            # a page mover that died mid-batch left its domain paused: unpause it
            for note in migrate.recover(self.hv, self.moves):
                log(logging.WARNING, "page move recovered", what=note)
            out["expired"] = self.ledger.expire()
            out["reconciled"] = len(self.ledger.reconcile(self.hv))
            if self.settler is not None:
                out["settled"] = len(self.settler())
        except NumaError as err:
            if (-1, "upkeep") not in self.reported:
                self.reported.add((-1, "upkeep"))
                log(logging.WARNING, "reservation upkeep failed", error=err.message)
        return out


def _cpus(text: str) -> FrozenSet[int]:
    out = set()
    for part in text.split(","):
        if part:
            a, _, b = part.partition("-")
            out.update(range(int(a), int(b or a) + 1))
    return frozenset(out)


# --- the process -----------------------------------------------------------------------------------
def _clock_for(hv, spec: str) -> Callable[[], float]:
    if spec.startswith("sim:"):
        return lambda: hv.now_ms() / 1000.0  # simulated time: thresholds in simulated seconds
    return time.monotonic


def _xapi_settler(hv):
    """Settle VMs started with a boot pin from place (needs a local xapi)."""
    from xapi_numa.plugin import functions as plugin
    from xapi_numa.backends import xapi

    url = os.environ.get("XAPI_NUMA_XENAPI_URL")
    try:
        import XenAPI  # type: ignore[import-not-found]
        session = XenAPI.Session(url) if url else XenAPI.xapi_local()
        session.xenapi.login_with_password(os.environ.get("XAPI_NUMA_POOL_USER", "root"),
                                           os.environ.get("XAPI_NUMA_POOL_PASSWORD", ""), "2.21", "xapi-numad")
    except Exception as err:  # no xapi here: run without settling
        log(logging.INFO, "no xapi session: VMs are not settled automatically", reason=str(err))
        return None

    def settle_all() -> List[str]:
        done = []
        running = {d.uuid for d in hv.domains()}
        for ref, rec in xapi.call(session.xenapi.VM.get_all_records).items():
            if rec["uuid"] in running and xapi.PLACED_KEY in rec["other_config"] and \
                    rec["power_state"] == "Running":
                plugin.settle(plugin.Context(session._session, session=session, hv=hv), {"vm": rec["uuid"]})
                done.append(rec["uuid"])
                log(logging.INFO, "settled a VM started after place", vm=rec["uuid"])
        return done
    return settle_all


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="xapi-numad", description="keep running VMs NUMA-well-placed")
    ap.add_argument("--backend", help="xen (default) or sim:PATH")
    ap.add_argument("--period", type=float, default=1.0, help="seconds between cycles (default 1)")
    ap.add_argument("--threshold", type=float, default=1.0,
                    help="seconds a vCPU must be displaced before it is brought home (default 1)")
    ap.add_argument("--ledger", help="reservation ledger (default $XAPI_NUMA_LEDGER or /var/lib/xapi-numa/ledger.db)")
    ap.add_argument("--cycles", type=int, default=0, help="stop after this many cycles (default: run until SIGTERM)")
    ap.add_argument("--no-xapi", action="store_true", help="do not settle VMs through xapi")
    ap.add_argument("--scheduler", choices=("credit", "credit2"),
                    help="the guests' scheduler, when their cpupool's differs from the host default")
    args = ap.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    for name, value, low, high in (("--period", args.period, 0.05, 3600), ("--threshold", args.threshold, 0, 3600)):
        if not low <= value <= high:
            print(f"xapi-numad: error: {name}: {value:g} (allowed: {low:g}..{high:g})", file=sys.stderr)
            return 2
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    try:
        hv = open_hypervisor(args.backend)
        spec = backend_spec(args.backend)
        ledger = Ledger(args.ledger or (spec[4:] + ".ledger.db" if spec.startswith("sim:")
                                        and not os.environ.get("XAPI_NUMA_LEDGER") else None))
        scheduler = args.scheduler or hv.capabilities().scheduler
        daemon = Daemon(hv, ledger, _clock_for(hv, spec), scheduler, threshold=args.threshold,
                        settler=None if args.no_xapi else _xapi_settler(hv))
        daemon.recover()
        log(logging.INFO, "started", backend=spec, scheduler=scheduler, period=args.period)
        while not stop["now"]:
            started = time.monotonic()
            try:
                stats = daemon.cycle()
                if stats["pinned"] or stats["restored"] or stats["soft_moved"]:
                    log(logging.INFO, "cycle", **stats)
            except NumaError as err:
                log(logging.WARNING, "cycle failed", error=err.message)
            if args.cycles and daemon.cycles >= args.cycles:
                break
            # sleep in small steps so that SIGTERM ends us promptly
            while not stop["now"] and time.monotonic() - started < args.period:
                time.sleep(min(0.05, args.period))
        log(logging.INFO, "stopped", cycles=daemon.cycles, writes=daemon.writes)
        return 0
    except NumaError as err:
        print(f"xapi-numad: error: {err.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
