"""The rebalancer on real Xen 4.17 (make xen-test, daemon suite, credit2 pool boot).

3 nodes x 2 pCPUs, guests in the cpupool "numa" over nodes 1 and 2 (dom0
keeps node 0, which is therefore no home for a guest).  The homing test's
guests are paused first.  Two PVH guests, R1 and R2, both homed on node 1,
keep all their vCPUs busy and checksum their own memory; node 2 is idle.
xapi-numad (with its page scans every 30 s: stock Xen only has debug key
'u') must move one of them to node 2: its soft affinity on node 2, its vCPUs
running there, at least 90 % of its pages on node 2 by debug key 'u' (read
here independently of libxenuma), and no corruption reported by either
guest.  Then, one guest per node, a 90-second watch must see no further home
move.  Judged by placement and page counts, never by timing: the watches are
generous bounds for software emulation.
"""
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from conftest import xl
from xenlib import MEMCHECK_INITRD, console, create_guest, debug_key_dump, live_domain, patient, wait_console

from xapi_numa.backends.xen import XenHypervisor

# A hang guard, not a measurement: on a busy machine one watch of 420 s ran out with the home
# moved and the memory not yet on the new node (the cause was not kept)
MOVE_WATCH = patient(150)
BALANCED_WATCH = 90  # sustain (2 periods) and a period's moves fit many times over
DUMP_EVERY = 60  # seconds between the test's own reads of debug key 'u' while a move runs


class Phases:
    """Where the test's time went (a report for the run's log, never judged: CI's time budget
    needs to know which wait is long)."""

    def __init__(self):
        self.last, self.spent = time.monotonic(), []

    def done(self, what: str) -> None:
        now = time.monotonic()
        self.spent.append("{} {:.0f} s".format(what, now - self.last))
        self.last = now

    def __str__(self) -> str:
        return "time: " + ", ".join(self.spent)


def _domid(name):
    return int(xl("domid", name).strip())


def _home_moves(lines):
    return [json.loads(line) for line in lines if line.startswith("{") and '"home moved"' in line]


def _memory_moves(ledger):
    """The daemon's page-move journal, as ``xapi-numa memory-moves --json`` shows it."""
    out = subprocess.run([sys.executable, "-m", "xapi_numa.cli", "memory-moves", "--json", "--ledger", ledger],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH="/opt/xapi-numa"))
    return out.stdout.strip()[-3000:]


TIMELINE_EVENTS = ("started", "home moved", "memory move", "page move recovered", "hypervisor refused", "cycle failed")


def _timeline(lines, since):
    """The daemon's rebalancing lines, seconds after its start (a report: where the wait goes)."""
    out = []
    for line in lines:
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("event") in TIMELINE_EVENTS:
            extra = {k: entry[k] for k in ("pages", "status", "detail", "reason", "error") if k in entry}
            out.append("+{:.0f} s {} {}".format(entry["time"] - since, entry["event"], extra))
    return out[:30]


def _dom0_cpu():
    """dom0's CPU time so far, in ticks: (busy, idle, steal) from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2], v[3] + v[4], v[7]


def _cpu_of(pid):
    """A process's CPU seconds so far (user + system), its state and where it waits, or None."""
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/{}/wchan".format(pid)) as f:
            wchan = f.read().strip()
    except OSError:
        return None
    return "{:.0f}s {} {}".format((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), fields[0], wchan)


def _mover_sample(ledger, uuid):
    """The running move of the VM, as its journal row says: (pid, batches done, planned), or None."""
    try:
        db = sqlite3.connect("file:{}?mode=ro".format(ledger), uri=True, timeout=5)
        try:
            row = db.execute("SELECT pid, state, report FROM memory_move WHERE uuid = ?", (uuid,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    if row is None:
        return None
    report = json.loads(row[2])
    return row[0], row[1], report.get("batches"), report.get("batches_planned")


def _on_node(hv, topo, domid, node):
    cpus = topo.cpus_of_nodes([node])
    vcpus = hv.vcpus(domid)
    return all(v.soft <= cpus for v in vcpus), sum(1 for v in vcpus if v.cpu in cpus), len(vcpus)


def test_the_rebalancer_moves_a_home_and_the_memory_follows(numa_pool, tmp_path):
    if numa_pool != "credit2":
        pytest.skip("the rebalancer runs in the credit2 boot (time budget)")
    hv = XenHypervisor()
    topo = hv.topology()
    phases = Phases()
    for name in ("A", "B", "C"):  # the homing test's guests, if it ran: quiet them
        subprocess.run(["xl", "pause", name], capture_output=True, timeout=60)
    for name in ("R1", "R2"):
        # 96 MiB: Debian's guest kernel alone takes 56 MB (64 MiB does not build); less to move than 128
        create_guest(name, paused=False, kind="pvh", pool="numa", cpus_soft="node:1", vcpus=2, memory=96,
                     initrd=MEMCHECK_INITRD, extra="guest=spinmem")
    r = {name: _domid(name) for name in ("R1", "R2")}
    for name in r:
        wait_console(name, r"memcheck: pass 2 ok", timeout=300, untouched=True)
    phases.done("guests up")
    before = debug_key_dump()
    print("XEN-INFO pages before: " + ", ".join("{} {}".format(n, before.get(d)) for n, d in r.items()))

    ledger = str(tmp_path / "ledger.db")
    daemon_started = time.time()
    # Cycles every 2 s, the rebalancer's own period (it looks as often as at 1 s): under QEMU a
    # cycle costs about 0.4 CPU-seconds, which at 1 s left the page mover a starved share of dom0
    daemon = subprocess.Popen([sys.executable, "-m", "xapi_numa.daemon", "--backend", "xen", "--period", "2",
                               "--no-xapi", "--scheduler", "credit2", "--ledger", ledger,
                               "--page-scan-interval", "30"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True,
                              env=dict(os.environ, PYTHONPATH="/opt/xapi-numa"))
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(daemon.stderr.readline, "")), daemon=True)
    reader.start()
    moved = None
    uuids = {name: live_domain(hv, domid).uuid for name, domid in r.items()}
    samples, cpu0, cpu_times = [], _dom0_cpu(), []
    try:
        deadline = time.monotonic() + MOVE_WATCH
        next_dump, dumped_at, pages = time.monotonic() + DUMP_EVERY, None, {}
        while time.monotonic() < deadline and moved is None:
            time.sleep(5)
            movers = [_mover_sample(ledger, u) for u in uuids.values()]
            cpu_times.append("+{:.0f} daemon {} movers {}".format(
                time.time() - daemon_started, _cpu_of(daemon.pid),
                [_cpu_of(m[0]) for m in movers if m and m[1] == "running"]))
            # debug key 'u' walks every page of every domain on a dom0 vCPU, which the daemon
            # and its mover need: read it when a move has ended, and otherwise only now and then
            ended = _home_moves(lines) and not any(m and m[1] == "running" for m in movers)
            if not (ended and movers != dumped_at) and time.monotonic() < next_dump:
                continue
            dumped_at = movers
            next_dump = time.monotonic() + DUMP_EVERY
            dump_started = time.monotonic()
            pages = debug_key_dump()
            cpu = _dom0_cpu()
            samples.append("+{:.0f} s dump {:.1f} s dom0 busy/idle/steal {} {}".format(
                time.time() - daemon_started, time.monotonic() - dump_started,
                "/".join(str(a - b) for a, b in zip(cpu, cpu0)), movers))
            cpu0 = cpu
            for name, domid in r.items():
                soft_there, running_there, vcpus = _on_node(hv, topo, domid, 2)
                on2 = pages.get(domid, {}).get(2, 0)
                total = sum(pages.get(domid, {}).values()) or 1
                if soft_there and running_there == vcpus and on2 >= 0.9 * total:
                    moved = (name, on2, total)
        phases.done("home moved, memory followed" if moved else "watch ran out")
        print("XEN-INFO daemon timeline: " + " | ".join(_timeline(lines, daemon_started)))
        print("XEN-INFO samples: " + " | ".join(samples))
        print("XEN-INFO CPU seconds: " + " | ".join(cpu_times[::max(1, len(cpu_times) // 20)]))
        print("XEN-INFO moved: {}; home moves: {}".format(moved, [m.get("reason") for m in _home_moves(lines)]))
        if moved is None:  # what a failure needs to be understood: where things ended up
            print("XEN-INFO pages at the end: " + ", ".join("{} {}".format(n, pages.get(d)) for n, d in r.items()))
            print("XEN-INFO vCPUs at the end: " + ", ".join("{} {}".format(n, _on_node(hv, topo, d, 2))
                                                            for n, d in r.items()))
            print("XEN-INFO memory moves: " + _memory_moves(ledger))
        assert moved is not None, "no guest was rehomed on node 2 with its memory within {} s: {}".format(
            MOVE_WATCH, "".join(lines[-40:]))
        moves_then = len(_home_moves(lines))
        time.sleep(BALANCED_WATCH)  # one guest per node now: nothing more to gain
        phases.done("balanced watch")
        assert len(_home_moves(lines)) == moves_then, _home_moves(lines)
    finally:
        daemon.terminate()
        daemon.wait(timeout=120)
        reader.join(timeout=30)
    assert daemon.returncode == 0, "".join(lines[-30:])
    for name, domid in r.items():
        text = console(name)
        assert "CORRUPT" not in text, text[-2000:]
        assert not live_domain(hv, domid).paused
        last = [line for line in text.splitlines() if line.startswith("memcheck: pass ")][-1]
        wait_console(name, r"memcheck: pass {} ok".format(int(last.split()[2]) + 1), timeout=180)
    phases.done("daemon stopped, both guests a memcheck pass further")
    print("XEN-INFO rebalancer: {} rehomed on node 2 with {} of {} pages there; {}".format(*moved, phases))
