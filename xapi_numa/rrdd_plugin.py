"""``xapi-numa-rrdd``: the xcp-rrdd plugin process publishing per-VM NUMA metrics.

As xen-api's own plugins do (``reporter_local``): the file is made whole
before the first registration (xcp-rrdd maps it then), and every reading of
xcp-rrdd (every 5 s): register (idempotent; it answers when the next reading
is), take one snapshot of the host with pages per node, turn it into data
sources (:mod:`xapi_numa.ops.metrics`) and write the protocol v2 file
(:mod:`xapi_numa.backends.rrdd`) just before xcp-rrdd reads it: as long
before as the last snapshot took, and half a second more.  A file made anew
(more VMs than it had room for) is registered again, for xcp-rrdd to map it.
A failed cycle is logged and retried next time: the process outlives xcp-rrdd
or xapi restarts.  SIGTERM or SIGINT: deregister, remove the file, exit 0.

One copy per host talks to xcp-rrdd: it holds the host's ``xapi-numa-rrdd`` lock
(:mod:`xapi_numa.ops.instance_lock`, as xapi-numad holds its own), and a second copy
exits 73 (``EXIT_ANOTHER_COPY``, which its unit does not restart on) saying which one
runs.  Which timestamp xcp-rrdd reads is asked of rpm once, at start.

Pages per node: where Xen answers natively, read at every reading; on stock
Xen (debug key 'u', which walks every page under a lock) as xapi-numad reads
them, at most once per ``--page-scan-interval`` and never on a host above
``--page-scan-max-memory``, each VM's last reading published in between
(:mod:`xapi_numa.ops.page_scans`).

``--once --file PATH`` writes one payload to PATH without xcp-rrdd (tests, and
a look at what would be published).
"""
import argparse
import os
import re
import signal
import sys
import time
from typing import List, Optional, Tuple

import attrs

from xapi_numa.backends import rrdd
from xapi_numa.backends.open import backend_spec, flag_refusal, open_hypervisor
from xapi_numa.errors import BackendUnavailable, InstanceRunning, InvalidArgument, NumaError
from xapi_numa.core.numbers import plain, shown
from xapi_numa.ops import instance_lock, metrics, page_scans
from xapi_numa.ops.command_line import Parser, given
from xapi_numa.ops.instance_lock import EXIT_ANOTHER_COPY

PROGRAM = "xapi-numa-rrdd"  # its lock's name, and its systemd unit's
PLUGIN_UID = "xapi-numa"
# xcp-rrdd joins the uid to its shared-memory directory unchecked: a '/' or '..' in it
# would put the file elsewhere (and its removal at exit with it)
UID_SHAPE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
LEAD_TIME = 0.5  # seconds before xcp-rrdd's reading that the file is written, beyond the snapshot's time
MAX_LEAD = 3.0   # (a reading is every 5 s)
RETRY = 5.0      # seconds to wait after a failed cycle
TICK = 0.2       # how often a sleep looks at the stop flag


def build_parser() -> Parser:
    """The flags of ``xapi-numa-rrdd`` (the documentation's test reads them here too)."""
    p = Parser(prog="xapi-numa-rrdd", description="Publish per-VM NUMA metrics to xcp-rrdd.")
    p.add_argument("--backend", type=given,
                   help="xen or sim:PATH for a simulated host (default: $XAPI_NUMA_BACKEND, else xen)")
    p.add_argument("--uid", type=given, default=PLUGIN_UID, help="plugin name registered with xcp-rrdd")
    p.add_argument("--file", type=given, help="write here instead of where xcp-rrdd says (no registration)")
    p.add_argument("--once", action="store_true", help="write one reading and exit")
    p.add_argument("--socket", type=given, default=rrdd.RRDD_SOCKET, help="xcp-rrdd's socket")
    p.add_argument("--names", default="auto", metavar="|".join(metrics.NAME_CHOICES),
                   help="XenServer 9's data source names: unless xapi publishes them itself (auto), "
                        "always (all) or never (own)")
    page_scans.add_arguments(p, "the last reading is published in between; none above the memory limit")
    p.add_argument("--timestamp", default="auto", choices=("auto", "double", "seconds"),
                   help="the file's timestamp: a double (xcp-rrdd from xen-api v24.40), whole seconds "
                        "(older), or as the installed xcp-rrdd package reads it (auto)")
    return p


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if not UID_SHAPE.fullmatch(args.uid):  # xcp-rrdd makes its file's path of it
        p.error("--uid: {} (allowed: letters, digits, '.', '_' and '-', not starting with '.', "
                "at most 64)".format(shown(args.uid)))
    refused = flag_refusal(args.backend)  # a backend that is none, as xapi-numad refuses it
    if refused is not None:
        p.error(refused)
    for name, value, low, high in page_scans.argument_ranges(args):
        if not low <= value <= high:
            p.error("{}: {} (allowed: {}..{})".format(name, plain(value), plain(low), plain(high)))
    return args


def log(message: str) -> None:
    sys.stderr.write("xapi-numa-rrdd: {}\n".format(message))
    sys.stderr.flush()


def sleep_unless_stopped(seconds: float, stop: dict) -> None:
    end = time.monotonic() + seconds
    while not stop["now"]:
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(TICK, left))


def publish_once(hv, out: rrdd.PluginFile, tally: metrics.NonaffineTally, names: str,
                 stamp: str = "double", readings: Optional[page_scans.PageReadings] = None
                 ) -> Tuple[metrics.NonaffineTally, bool]:
    """One reading: snapshot -> data sources -> v2 file; the tally for the next one, and
    whether the file was made anew.  One wall-clock time, taken before the snapshot, is the
    payload's timestamp and the end of the rates' interval: xcp-rrdd divides by the
    difference of timestamps.  Pages per node come from ``readings`` (on stock Xen a rare
    debug-key scan whose reading stands in between; every time where Xen answers natively)."""
    now = time.time() if stamp == "double" else float(int(time.time()))  # what the payload will say
    readings = readings if readings is not None else page_scans.PageReadings()
    snap = attrs.evolve(readings.snapshot(hv), time=now)
    sources, tally = metrics.collect(snap, hv.capabilities(), tally, names)
    return tally, out.write(rrdd.encode(sources, now, stamp))


def run(args: argparse.Namespace, stop: dict) -> int:
    if args.once and not args.file:
        raise InvalidArgument("--once", "needs --file PATH", "--once --file PATH")
    metrics.check_names(args.names, "--names")  # before touching the host
    spec = backend_spec(args.backend)
    hv = open_hypervisor(spec)
    # One copy talks to xcp-rrdd: a second would register the same uid and write the same
    # file, and at its exit deregister it and remove the file under the first.  (--file
    # writes where it is told, without xcp-rrdd: a look beside the running service.)
    lock = None if args.file else instance_lock.HeldLock(spec, PROGRAM)
    try:
        return publish(args, stop, hv, lock)
    finally:
        if lock is not None:
            lock.release()


def publish(args: argparse.Namespace, stop: dict, hv, lock: Optional[instance_lock.HeldLock] = None) -> int:
    """Write a reading before each of xcp-rrdd's (or to --file) until stopped, or until another
    copy took the host's ``lock`` (its file removed meanwhile): InstanceRunning, the registration
    and the file left to that copy."""
    # Read once per process: its unit is PartOf xcp-rrdd, so a restarted (or updated and
    # restarted) xcp-rrdd restarts this process too; rpm -q at every retry while xcp-rrdd
    # is away cost two rpm runs every 5 s, and could read a package newer than the
    # xcp-rrdd still running.
    stamp = stamp_for(args)
    tally = metrics.NonaffineTally()
    readings = page_scans.PageReadings(page_scans.limits_of(args))
    if args.file:
        tally, _ = publish_once(hv, rrdd.PluginFile(args.file), tally, args.names, stamp, readings)
        if args.once:
            return 0
    client = None if args.file else rrdd.Rrdd(args.socket)
    out = rrdd.PluginFile(args.file) if args.file else None
    lead = LEAD_TIME
    remap = True  # xcp-rrdd is to map our file afresh at the next registration
    displaced = False  # another copy took the host's lock
    try:
        while not stop["now"]:
            try:
                wait = rrdd.FREQUENCY_SECONDS
                if client is not None:
                    if out is None:  # whole before xcp-rrdd hears of it: it maps the file at registration
                        made = rrdd.PluginFile(client.path(args.uid))
                        tally, _ = publish_once(hv, made, tally, args.names, stamp, readings)
                        out = made  # (a first snapshot that failed is taken again, before any registration)
                    if remap:
                        # a registration (an earlier run's, or before the file was made anew) maps an older
                        # file, and register keeps it: deregister first, until that works
                        client.deregister(args.uid)
                        remap = False
                    wait = client.register(args.uid)
                # just before the reading; a reading closer than the lead time: the one after
                sleep_unless_stopped((wait - lead) % rrdd.FREQUENCY_SECONDS, stop)
                if stop["now"]:
                    break
                keep_lock(lock)
                started = time.monotonic()
                tally, remade = publish_once(hv, out, tally, args.names, stamp, readings)
                lead = min(MAX_LEAD, LEAD_TIME + time.monotonic() - started)
                remap = remap or remade  # registered again next: xcp-rrdd maps the bigger file
            except InstanceRunning:
                displaced = True  # the registration and the file are that copy's now: not undone at our exit
                raise
            except NumaError as err:  # xcp-rrdd restarting, a domain vanishing: next cycle
                remap = remap or isinstance(err, BackendUnavailable)  # xcp-rrdd away: perhaps a new one
                log("{} (retrying in {:.0f} s)".format(err.message, RETRY))
                sleep_unless_stopped(RETRY, stop)
    finally:
        if not displaced:
            cleanup(client, args.uid, out.path if out is not None else None)
    return 0


def keep_lock(lock: Optional[instance_lock.HeldLock]) -> None:
    """Hold the host's lock under its name (as xapi-numad does each cycle): one whose file was
    removed is taken again, and an InstanceRunning if another copy took it meanwhile."""
    if lock is not None and not lock.kept():
        log("the xapi-numa-rrdd lock {} was removed or replaced; taken again".format(lock.path))


def stamp_for(args: argparse.Namespace) -> str:
    """The timestamp's format: as asked, or as the installed xcp-rrdd reads it."""
    return rrdd.timestamp_format(rrdd.installed_version()) if args.timestamp == "auto" else args.timestamp


def cleanup(client: Optional[rrdd.Rrdd], uid: str, path: Optional[str]) -> None:
    """Leave nothing behind: deregister, remove the file xcp-rrdd would read."""
    if client is None:
        return
    try:
        client.deregister(uid)
    except NumaError as err:
        log(err.message)
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    # nothing to reload, and SIGHUP's default would end us without deregistering (and
    # systemd's Restart=on-failure counts that as a clean exit, so no restart either)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        return run(args, stop)
    except NumaError as err:
        log(err.message)
        return EXIT_ANOTHER_COPY if isinstance(err, InstanceRunning) else 1
    except OSError as err:  # the --file path: a directory, no permission, ...
        log("{}: {}".format(getattr(err, "filename", None) or "I/O", err.strerror or err))
        return 1


if __name__ == "__main__":
    sys.exit(main())
