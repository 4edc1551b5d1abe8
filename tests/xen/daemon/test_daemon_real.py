"""xapi-numad on real Xen 4.17 (make xen-test, daemon suite).

3 nodes x 2 pCPUs; dom0 (2 vCPUs, pinned) in Pool-0 on node 0; a cpupool "numa" over
nodes 1 and 2 with credit1, then credit2.  Guests A (soft node 1), B and C
(soft node 2), 2 busy vCPUs each; B paused.  One vCPU of A is pushed onto
node 2 and one of C onto node 1 (a brief hard pin, then hard affinity back to
all, else pauses in the order that displaced them naturally; a few rounds, as
Xen sometimes homes them itself): the swap stays.  With the daemon running, A and C must come home and
stay home through a 30 s watch.  Judged by placement, never by timing.

The guests run tests/xen/guest/spin.c: one spinner pinned to each of their
vCPUs (the earlier busybox shell loops left one vCPU of each guest blocked, so
the pool always had an idle pCPU and Xen homed the vCPUs by itself).  Seen
here: the forced swap stays for the 5 s observed without the daemon under
both schedulers; with xapi-numad started, A and C are home within 2 s and
stay home for the 30 s watch (4 affinity writes under each scheduler in the
last runs: the swapped pair pinned home together and restored).
Also seen: destroying a guest of a credit1 cpupool on a credit2 host panicked
Xen 4.17 (csched2_free_domdata), hence one pool scheduler per boot and no
destroy before power-off.
"""
import json
import os
import subprocess
import sys
import threading
import time

from conftest import xl
from xenlib import MEMCHECK_INITRD, console, create_guest, wait_console

from xapi_numa.backends.xen import XenHypervisor

WATCH = 30


def _domid(name):
    return int(xl("domid", name).strip())


def _displaced(hv, domid):
    return [v.vcpu for v in hv.vcpus(domid) if v.state in ("running", "runnable") and v.cpu not in v.soft]


def _wait_busy(hv, domids, timeout=240):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        states = [v.state for d in domids for v in hv.vcpus(d)]
        if "offline" not in states and states.count("running") >= 2:
            return
        time.sleep(2)
    raise AssertionError(f"guests did not bring their vCPUs up: {states}")


def _table(hv, domids):
    return " ".join(f"{d}.{v.vcpu}@{v.cpu}{v.state[0]}" for d in domids for v in hv.vcpus(d))


def _natural_swap(hv, a, b, c, attempt):
    """The natural sequence: pause A; later unpause A and pause B (B unpaused first)."""
    xl("unpause", "B")
    time.sleep(3)
    xl("pause", "A")
    time.sleep(4)
    xl("unpause", "A")
    time.sleep(0.5)
    xl("pause", "B")
    time.sleep(5)
    print(f"XEN-INFO natural sequence try {attempt}: {_table(hv, (a, c))}")
    return bool(_displaced(hv, a) and _displaced(hv, c))


def _forced_swap(hv, topo, a, c, attempt, scheduler):
    """A brief hard pin across, then hard affinity back to all (A's first on odd tries, C's
    first on even ones): whether the swap outlives the restore is up to the scheduler."""
    hv.set_vcpu_affinity(a, 0, hard=topo.cpus_of_nodes([2]))
    hv.set_vcpu_affinity(c, 0, hard=topo.cpus_of_nodes([1]))
    time.sleep(3)
    print(f"XEN-INFO {scheduler} try {attempt} pinned across: {_table(hv, (a, c))}")
    for domid in ((a, c) if attempt % 2 else (c, a)):
        hv.set_vcpu_affinity(domid, 0, hard=topo.all_cpus)
    for second in (1, 3, 5):
        time.sleep(2 if second > 1 else 1)
        print(f"XEN-INFO {scheduler} try {attempt} {second}s after restore: {_table(hv, (a, c))}")
    stuck = (_displaced(hv, a), _displaced(hv, c))
    print(f"XEN-INFO {scheduler} try {attempt}: forced swap, displaced without the daemon after 5 s: "
          f"A {stuck[0]} C {stuck[1]}")
    return bool(stuck[0] and stuck[1])


def _swap_that_stays(hv, topo, a, b, c, scheduler, rounds=3):
    """Displace one vCPU of A and one of C so that Xen leaves them there: a forced swap, else
    the natural sequence, a few rounds of each.  Seen under credit2 on a busy machine: one
    run where three natural sequences and a forced swap were all homed by Xen within a
    second, so one try each was not enough."""
    for attempt in range(1, rounds + 1):
        if _forced_swap(hv, topo, a, c, attempt, scheduler) or _natural_swap(hv, a, b, c, attempt):
            return True
    return False


def test_daemon_brings_a_swapped_pair_home(numa_pool, tmp_path):
    scheduler = numa_pool
    hv = XenHypervisor()
    topo = hv.topology()
    assert len(topo.nodes) == 3
    for name, soft in (("A", "node:1"), ("B", "node:2"), ("C", "node:2")):
        create_guest(name, paused=False, pool="numa", cpus_soft=soft, vcpus=2, memory=128,
                     initrd=MEMCHECK_INITRD, extra="guest=spin")
    a, b, c = _domid("A"), _domid("B"), _domid("C")
    for name in ("A", "B", "C"):
        m = wait_console(name, r"spin: (\d+) cpus online \(([^)]*)\)", timeout=240, untouched=True)
        print(f"XEN-INFO guest {name}: {m.group(0)}")
    _wait_busy(hv, (a, b, c))
    xl("pause", "B")
    time.sleep(3)
    print(f"XEN-INFO {scheduler} busy: {_table(hv, (a, b, c))}")
    assert _swap_that_stays(hv, topo, a, b, c, scheduler), \
        f"neither a forced swap nor the natural sequence stuck under {scheduler}"

    ledger = str(tmp_path / "ledger.db")
    daemon = subprocess.Popen([sys.executable, "-m", "xapi_numa.daemon", "--backend", "xen", "--period", "1",
                               "--threshold", "1", "--no-xapi", "--no-rebalance", "--scheduler", scheduler,
                               "--ledger", ledger],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH="/opt/xapi-numa"))
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(daemon.stderr.readline, "")), daemon=True)
    reader.start()
    samples = []
    try:
        # the watch starts when the daemon does (starting Python takes a while under emulation)
        deadline = time.monotonic() + 180
        while not any('"started"' in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any('"started"' in line for line in lines), f"xapi-numad did not start: {lines[-5:]}"
        start = time.monotonic()
        while time.monotonic() - start < WATCH:
            time.sleep(1)
            samples.append((round(time.monotonic() - start), _displaced(hv, a) + _displaced(hv, c)))
    finally:
        daemon.terminate()
        daemon.wait(timeout=120)
        reader.join(timeout=30)
    err = "".join(lines)
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    writes = [e.get("writes") for e in events if e["event"] == "stopped"]
    print(f"XEN-INFO {scheduler}: samples {samples}; daemon affinity writes {writes}")
    for name in ("A", "C"):
        print(f"XEN-INFO console {name}: " + " | ".join(console(name).splitlines()[-4:]))
    assert daemon.returncode == 0, err[-2000:]
    # the daemon did it: with no write of its own, Xen alone homing them would pass too
    # (unless Xen had homed them before the daemon was up: nothing was then left to do)
    if samples and samples[0][1]:
        assert writes and writes[0] > 0, f"xapi-numad wrote no affinity: {writes}"
    assert samples[-1][1] == []
    last_displaced = max((t for t, d in samples if d), default=0)
    assert last_displaced <= WATCH - 10, f"still displaced at {last_displaced}s: {samples}"
    # no temporary pin left behind: hard affinity is all CPUs again
    assert all(v.hard >= topo.cpus_of_nodes([1, 2]) for d in (a, c) for v in hv.vcpus(d))
