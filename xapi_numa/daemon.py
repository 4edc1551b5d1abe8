"""``xapi-numad``: the process that keeps running VMs well placed.

The work of a cycle is :class:`xapi_numa.ops.runtime.Runtime`; this module is
the process around it: arguments, JSON logs, one instance per host (a lock
under ``/run/xapi-numa``), a xapi link that survives toolstack restarts (read
in a thread of its own, :mod:`xapi_numa.ops.xapi_reader`, never in the cycle),
the loop, and a clean stop on SIGTERM that first puts back every temporary pin.
A cycle that fails in any way is logged and the next one runs: nothing short
of SIGKILL stops the daemon, and after a SIGKILL its next start restores what
the journal holds.
"""
import argparse
import json
import logging
import os
import signal
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

from xapi_numa.backends.open import backend_spec, flag_refusal, open_hypervisor
from xapi_numa.core.backend_affinity import plan_dom0_pins
from xapi_numa.core.cpuset import format_ids
from xapi_numa.errors import InstanceRunning, NumaError, StateError
from xapi_numa.ops import cycle_pace, instance_lock, observe, page_scans, runtime
from xapi_numa.ops.command_line import Parser, given
from xapi_numa.ops.backend_alignment import dom0_for
from xapi_numa.ops.executor import log_event
from xapi_numa.ops.instance_lock import EXIT_ANOTHER_COPY
from xapi_numa.ops.local_xapi import consulted_for
from xapi_numa.ops.settle import settle
from xapi_numa.ops.xapi_link import PlacedSettler, XapiLink, local_login, vm_view
from xapi_numa.ops.xapi_reader import XapiReader
from xapi_numa.state.db import Database, default_path
from xapi_numa.state.ledger import Ledger
from xapi_numa.core.numbers import plain, signed_decimal_number, signed_whole_number

LOG = runtime.LOG
# seconds a stopping daemon waits for another process's lock on the state database: systemd's
# TimeoutStopSec (90) must cover a wait of a cycle's (60) and the restores
STOP_DB_WAIT_S = 5.0
# exit status of a stop that could not put every temporary pin back (the journal keeps them,
# the next start restores them; the error line says which): EX_TEMPFAIL, a status of its own
# so that the unit can count it a stop (SuccessExitStatus=75, not "failed") while a start that
# fails (1) and bad flags (2) stay failures, and systemctl status still shows it
EXIT_PINS_LEFT = 75


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = dict(getattr(record, "fields", {}))
        # a field never overrides these: "time" is always the wall clock of the line
        entry.update(time=round(record.created, 3), level=record.levelname.lower(), event=record.getMessage())
        return json.dumps(entry, sort_keys=True, default=str)


def build_parser() -> Parser:
    """The flags of ``xapi-numad`` (the documentation's test reads them here too)."""
    ap = Parser(prog="xapi-numad", description="keep running VMs NUMA-well-placed")
    ap.add_argument("--backend", type=given, help="xen or sim:PATH (default: $XAPI_NUMA_BACKEND, else xen); on a simulated "
                                      "host the daemon does not advance simulated time: run `xapi-numa sim run` "
                                      "beside it (or see `xapi-numa demo`)")
    ap.add_argument("--period", type=signed_decimal_number, default=1.0, help="seconds between cycles (default 1)")
    ap.add_argument("--threshold", type=signed_decimal_number, default=1.0,
                    help="seconds a vCPU must be displaced before it is brought home (default 1)")
    ap.add_argument("--ledger", type=given, help="state database (default: $XAPI_NUMA_LEDGER; with sim:PATH, PATH.ledger.db; "
                                     "else /var/lib/xapi-numa/ledger.db)")
    ap.add_argument("--cycles", type=signed_whole_number, default=0,
                    help="stop after this many cycles (default 0: run until SIGTERM)")
    ap.add_argument("--no-xapi", action="store_true", help="run without xapi (no policies, no auto-settle)")
    ap.add_argument("--no-backend-affinity", dest="backend_affinity", action="store_false",
                    help="leave guests' backend threads and IRQs in dom0 alone (and hand back ours)")
    ap.add_argument("--pin-dom0", dest="pin_dom0", action="store_true",
                    help="at start, pin dom0's vCPUs one node each (round robin) if Xen was booted "
                         "without such a layout (dom0_vcpus_pin)")
    ap.add_argument("--hand-back", dest="hand_back", action="store_true",
                    help="put back everything a stopped xapi-numad left changed (temporary vCPU pins, guests' "
                         "backend threads and IRQs in dom0) and exit: the package's removal runs it")
    ap.add_argument("--scheduler", choices=("credit", "credit2"),
                    help="the guests' scheduler, when their cpupool's differs from the host default")
    ap.add_argument("--no-rebalance", dest="rebalance", action="store_false",
                    help="do not move VMs' homes and memory when load is uneven (per VM: "
                         "other_config:numa_rebalance=false)")
    page_scans.add_arguments(ap)
    return ap


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def check_ranges(args: argparse.Namespace) -> Optional[str]:
    for name, value, low, high in (("--period", args.period, 0.05, 3600), ("--threshold", args.threshold, 0, 3600),
                                   *page_scans.argument_ranges(args), ("--cycles", args.cycles, 0, 1 << 31)):
        if not low <= value <= high:
            until = "; 0: until SIGTERM" if name == "--cycles" else ""
            return "{}: {} (allowed: {}..{}{})".format(name, plain(value), plain(low), plain(high), until)
    refused = flag_refusal(args.backend)  # a backend that is none, named as xapi-numa names it
    if refused is not None:
        return refused
    if args.pin_dom0 and not args.backend_affinity:
        # the per-node layout is for backend alignment alone: pinned for nothing, dom0 would stay pinned
        return "--pin-dom0: not with --no-backend-affinity (dom0's per-node layout serves backend alignment) " \
               "(allowed: one of them)"
    return None


class FailureLog:
    """Cycle failures, logged without flooding: a failure at once, the same again at most
    every ``every`` seconds (with how many there were), good cycles in between or not (a
    failure every other cycle was two lines a second), and the first good cycle after
    failures logged since the last such line."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self.message: Optional[str] = None  # the last failure
        self.count = 0                      # failures since "cycles work again" was last said
        self._said: Dict[str, Tuple[float, int]] = {}  # failure -> (logged at, not logged since)
        self._unsaid_recovery = False       # a failure was logged since "cycles work again"

    def failed(self, message: str, now: float) -> None:
        self.count += 1
        self.message = message
        said = self._said.get(message)
        if said is not None and now - said[0] < self.every:
            self._said[message] = (said[0], said[1] + 1)
            return
        fields = {"error": message}
        if said is not None:
            fields.update(repeated=said[1] + 1, failures=self.count)
        log_event(LOG, logging.WARNING, "cycle failed", **fields)
        # the others logged over a minute ago go (a message with a number in it is new at each cycle)
        self._said = {m: v for m, v in self._said.items() if now - v[0] < self.every}
        self._said[message] = (now, 0)
        self._unsaid_recovery = True

    def succeeded(self) -> None:
        if self._unsaid_recovery:
            log_event(LOG, logging.INFO, "cycles work again", failures=self.count, last_error=self.message)
            self.count, self._unsaid_recovery = 0, False


def db_path_for(args: argparse.Namespace, spec: str) -> str:
    path = instance_lock.real_sim_path(spec)
    if args.ledger:
        return args.ledger
    # a simulated host keeps its state beside its state file
    return path + ".ledger.db" if path and not os.environ.get("XAPI_NUMA_LEDGER") else default_path()


def build_runtime(args: argparse.Namespace, spec: str, hv,
                  stopping=lambda: False) -> Tuple[runtime.Runtime, Optional[XapiReader]]:
    """The daemon's runtime over ``hv``, and its xapi reader (None with --no-xapi), closed at stop;
    ``stopping``: has a stop been asked (the rest of a cycle is then skipped)?  xapi is read in
    the reader's thread (started by the first cycle), never in the cycle: a wedged xapi holds up
    no homing; only auto-settle's settles, which write the host and the state database, are
    made in the cycle."""
    db = Database(db_path_for(args, spec))
    settings = runtime.Settings(threshold=args.threshold, page_scan_interval=args.page_scan_interval,
                                page_scan_max_memory=args.page_scan_max_memory << 30, scheduler=args.scheduler,
                                backend_affinity=args.backend_affinity, rebalancing=args.rebalance)
    dom0 = dom0_for(spec, hv)
    # a hand-back puts everything back: it needs nothing of xapi; a simulated host has none (as the CLI's rule)
    if args.no_xapi or args.hand_back or not consulted_for(spec):
        return runtime.Runtime(hv, db, settings, dom0=dom0, stopping=stopping), None
    reader = XapiReader(XapiLink(local_login, time.monotonic, LOG), time.monotonic, LOG)
    ledger = Ledger(db=db)
    # the settle itself writes hv and the ledger (SQLite: this thread's connection): in the cycle
    # (without waiting for a place of the VM: the cycle must not stall; the settler looks again later)
    settler = PlacedSettler(reader, lambda session, uuid: settle(hv, session, ledger, uuid, lock_wait=0.0),
                            lambda: [(d.uuid, d.domid) for d in hv.domains()], time.monotonic, LOG, lookups=reader)
    return runtime.Runtime(hv, db, settings, settler=settler, dom0=dom0, backend_opt_out=reader.backend_affinity_off,
                           stopping=stopping, xapi_use=reader.use, **vm_view(reader)), reader


def pin_dom0(rt: runtime.Runtime) -> None:
    """--pin-dom0: give dom0 the per-node layout backend alignment needs."""
    vcpus = rt.hv.vcpus(0)
    outcomes = rt.executor.apply(plan_dom0_pins(vcpus, rt.hv.topology()))
    log_event(LOG, logging.INFO, "dom0 vCPUs pinned per node", pinned=[o.action.vcpu for o in outcomes
                                                                          if o.status == "done"],
              refused=[o.detail for o in outcomes if o.status not in ("done",)])


def hand_back(rt: runtime.Runtime) -> bool:
    """--hand-back: every temporary pin and every backend thread and IRQ we moved goes back
    (to dom0's default), with no cycle run.  True if nothing of ours is left in force.
    dom0's own vCPUs pinned by --pin-dom0 stay: their earlier affinity was never kept."""
    restored = restore_at_stop(rt)
    if rt.backends is None:
        return restored
    # no pages per node: on stock Xen a snapshot with them presses debug key 'u'
    outcomes = rt.executor.apply(rt.backends.plan(observe.take(rt.hv), enabled=False))
    left = len(rt.backends.journal.entries()) + rt.backends.journal.left_out.count  # (damaged rows stay)
    log_event(LOG, logging.INFO if not left else logging.ERROR, "backend work handed back",
              done=sum(1 for o in outcomes if o.status == "done"), left=left)
    return restored and not left


def run_loop(rt: runtime.Runtime, period: float, cycles: int, stop: dict,
             clock: Callable[[], float] = time.monotonic, lock: Optional[instance_lock.HeldLock] = None) -> None:
    """Cycles until a stop, ``cycles`` of them, or a refused state database; an
    :class:`InstanceRunning` if another xapi-numad took the host's ``lock`` from us."""
    failures, overruns = FailureLog(), cycle_pace.Overruns(LOG, period)
    while not stop["now"]:
        started = clock()
        if stop.pop("hup", False):
            log_event(LOG, logging.INFO, "SIGHUP: nothing to reload (no configuration file); still running, "
                                         "stop with SIGTERM")
        if lock is not None:
            keep_lock(lock, failures)
        try:
            stats = rt.cycle()
            failures.succeeded()
            if any(stats.get(k) for k in ("pinned", "restored", "soft_moved", "repicked")):
                log_event(LOG, logging.INFO, "cycle", **stats)
        except Exception as err:  # noqa: BLE001 - one bad cycle must not end the daemon
            message = err.message if isinstance(err, NumaError) else "{}: {}".format(type(err).__name__, err)
            if rt.db.refused is None:  # (that one is said once, as the daemon stops on it)
                failures.failed(message, time.monotonic())
        if rt.db.refused is not None:  # replaced by a newer version's file: no cycle can work (_run stops on it)
            raise rt.db.refused
        if cycles and rt.cycles >= cycles:
            break
        took = clock() - started
        overruns.cycle(took, started + took)
        # sleep in small steps so that SIGTERM ends us promptly
        rest_until = started + took + cycle_pace.rest_after(took, period)
        while not stop["now"] and clock() < rest_until:
            time.sleep(min(0.05, period))


def keep_lock(lock: instance_lock.HeldLock, failures: FailureLog) -> None:
    """Hold the host's lock under its name: one whose file was removed or replaced is taken
    again (said); another xapi-numad that took it meanwhile ends this one (InstanceRunning).
    A lock file that cannot be made now is a failure like a cycle's, and the cycles go on:
    no other copy can make it either, and the old file is still held."""
    try:
        if not lock.kept():
            log_event(LOG, logging.WARNING, "instance lock taken again: its file was removed or replaced "
                      "(no other xapi-numad had taken it)", path=lock.path)
    except InstanceRunning:
        raise
    except StateError as err:
        failures.failed(err.message, time.monotonic())


def restore_at_stop(rt: runtime.Runtime, db_wait: Optional[float] = None) -> bool:
    """Put every temporary pin back before exiting; if that cannot be done now (the
    host or the state database unreadable), say so in the log: the journal keeps
    them, and the next start restores them.  ``db_wait``: seconds to wait for another
    process's lock on the state database from now on (a stop has little time left).
    A state database refused as of a newer schema (its path names a newer version's file
    now): the pins are put back from the journal rows of the file it had, kept in memory
    (:meth:`Database.keep_in_memory`); those that cannot be are logged for the admin, as
    no later start can read their journal."""
    try:
        if db_wait is not None:
            rt.db.set_busy_timeout(db_wait)
        rt.restore_all_pins("stop")
        if rt.pins_left and rt.db.refused is not None:  # their journal is in memory only: no start reads it
            log_event(LOG, logging.ERROR, "temporary pins left at stop, and their journal is lost with this "
                      "process (the state database was refused): put their hard affinity back by hand "
                      "(xl vcpu-pin DOMAIN VCPU HARD)", left=rt.pins_left,
                      pins=[{"vm": p.uuid, "domid": p.domid, "vcpu": p.vcpu, "hard": format_ids(p.original_hard)}
                            for p in rt.pins.entries()])
        elif rt.pins_left:  # refused, or VMs not read: the journal keeps them for the next start
            damaged = rt.pins.left_out.count  # (left out of every read: no start restores them)
            log_event(LOG, logging.ERROR, "temporary pins left at stop: the next start restores them" if not damaged
                      else "temporary pins left at stop: the next start restores those it can read, not the "
                           "damaged rows warned of (mend or delete them)", left=rt.pins_left, damaged=damaged)
        return not rt.pins_left
    except (NumaError, OSError) as err:
        if err is rt.db.refused and not rt.db.in_memory:  # a newer version's file now: from the rows of the one it had
            rt.db.keep_in_memory()
            return restore_at_stop(rt)
        log_event(LOG, logging.ERROR, "temporary pins not restored at stop: the next start restores them",
                  error=err.message if isinstance(err, NumaError) else "{}: {}".format(type(err).__name__, err))
        return False


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    try:
        return _run(args)
    finally:  # the logger is the process's: a second main() (tests, an embedding) must not log twice
        LOG.removeHandler(handler)


def _run(args: argparse.Namespace) -> int:
    problem = check_ranges(args)
    if problem:
        print("xapi-numad: error: " + problem, file=sys.stderr)
        return 2
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    # SIGHUP's default would end us with temporary pins in place (and systemd's
    # Restart=on-failure counts that as a clean exit): say so in the log instead
    signal.signal(signal.SIGHUP, lambda *_: stop.update(hup=True))
    try:
        spec = backend_spec(args.backend)
        hv = open_hypervisor(spec)
        hv.topology()  # a host that is not there is said so before anything is made
        lock = instance_lock.HeldLock(spec)
        db_path = db_path_for(args, spec)
        if args.hand_back and not os.path.exists(db_path):
            # every move of ours is journalled there first: no database, nothing to give back
            # (and a hand-back must not make the state folder on a host where we never ran)
            log_event(LOG, logging.INFO, "nothing to hand back: no state database (xapi-numad never ran here)",
                      path=db_path)
            lock.release()
            return 0
        rt, reader = build_runtime(args, spec, hv, stopping=lambda: stop["now"])
        try:
            if args.hand_back:
                handed = hand_back(rt)
                lock.release()
                return 0 if handed else 1
            rt.restore_all_pins("start: pins left by a previous run")
            if args.pin_dom0:
                pin_dom0(rt)
            log_event(LOG, logging.INFO, "started", backend=spec,
                      scheduler=args.scheduler or rt.hv.capabilities().scheduler, period=args.period)
            try:
                run_loop(rt, args.period, args.cycles, stop, lock=lock)
                keep_lock(lock, FailureLog())  # (the pins restored now must not be those of a copy started since)
            except InstanceRunning as err:
                # that copy restored the journal's pins at its start and owns the journal now: restored
                # here, the pins it has made since would be undone under it
                raise InstanceRunning(err.message + ": this one stops and leaves its temporary pins to that one "
                                      "(the state database they share holds them)") from None
            except StateError as err:
                if err is not rt.db.refused:
                    raise
            # refused (a newer version's file, met in the loop or now): from the rows of the file it had
            restored = restore_at_stop(rt, STOP_DB_WAIT_S)
            if rt.db.refused is not None:
                raise rt.db.refused  # (said as it stops: exit 1)
        finally:
            if reader is not None:
                reader.close()  # its thread stops; one in a call to a wedged xapi is not waited for
        log_event(LOG, logging.INFO, "stopped", cycles=rt.cycles, writes=rt.writes)
        lock.release()
        return 0 if restored else EXIT_PINS_LEFT
    except NumaError as err:
        print("xapi-numad: error: {}".format(err.message), file=sys.stderr)
        return EXIT_ANOTHER_COPY if isinstance(err, InstanceRunning) else 1
    except OSError as err:  # a state file or folder it may not read or write
        print("xapi-numad: error: {}: {}".format(err.filename or "I/O", err.strerror or err), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
