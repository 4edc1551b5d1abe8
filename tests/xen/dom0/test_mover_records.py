"""Real-Xen tests of the page mover's batch record (make xen-test): a mover
SIGKILLed at any instant leaves something recovery can finish, liveness is
the record's lock (never a pid), and the pause Xen counts is given back
exactly once.
"""
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import console, create_guest, expected_scheduler, wait_console
from xenlib import live_domain

from xapi_numa._libxenuma import lib
from xapi_numa.core import memory_move as pagemove
from xapi_numa.errors import HypervisorError

GUEST = "memcheck-rec"


@pytest.fixture(scope="module")
def guest(xen_cmdline):
    if expected_scheduler(xen_cmdline) != "credit2":
        pytest.skip("page moves do not depend on the scheduler: they run in the credit2 boot only")
    domid = create_guest(GUEST, paused=False, memory=128, kind="pvh", initrd="/opt/guest/initrd-mem.cpio",
                         cpus_soft="node:0")
    try:
        wait_console(GUEST, r"memcheck: pass 2 ok", timeout=180, untouched=True)
        yield domid
    finally:
        subprocess.run(["xl", "destroy", GUEST], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """Records of this test only (the backend reads XAPI_NUMA_RUN_DIR at each call).

    Made here, as the backend makes its own before every record: a test that hands
    xn_mig_move a path itself must not depend on an earlier backend call having made
    it (a record under a missing directory is refused with ENOENT before any pause)."""
    directory = str(tmp_path / "run")
    os.makedirs(directory, mode=0o700)
    monkeypatch.setenv("XAPI_NUMA_RUN_DIR", directory)
    return directory


def paused(hv, domid: int) -> bool:
    return live_domain(hv, domid).paused


def busy(path: str) -> int:
    return lib.xn_mig_record_busy(path.encode())


def healthy(hv, domid: int) -> None:
    assert not paused(hv, domid)
    lines = [l for l in console(GUEST).splitlines() if l.startswith("memcheck: pass ")]
    # memcheck prints "pass N ok"; anything else there (once seen: "pass %lu ok", its printf
    # format unexpanded) means the guest misbehaved: fail with what it printed
    assert all(l.split()[2].isdigit() for l in lines), console(GUEST)[-2000:]
    passes = [int(l.split()[2]) for l in lines]
    wait_console(GUEST, r"memcheck: pass {} ok".format(passes[-1] + 1), timeout=120)
    assert "CORRUPT" not in console(GUEST), console(GUEST)[-2000:]


def mover(code: str) -> subprocess.Popen:
    # faulthandler: a mover killed by a fault (seen once: SIGSEGV, nothing printed) says where
    return subprocess.Popen([sys.executable, "-c", "from xapi_numa.backends.xen import XenHypervisor, ffi, lib\n"
                             + code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                            env=dict(os.environ, PYTHONFAULTHANDLER="1"))


def died(proc: subprocess.Popen) -> str:
    """What a mover that died left: its exit status, output and the kernel's fault lines."""
    out, err = proc.communicate()
    kernel = subprocess.run(["dmesg"], stdout=subprocess.PIPE, universal_newlines=True).stdout.splitlines()
    faults = [line for line in kernel if any(w in line for w in ("segfault", "general protection", "traps:"))]
    return "exit {}; stdout {!r}; stderr {!r}; kernel: {}".format(proc.returncode, out[-1000:], err[-3000:],
                                                                 faults[-5:])


def test_kill_during_the_probe_pause_is_recovered(hv, guest, run_dir):
    record = os.path.join(run_dir, "move-{}.probe".format(guest))  # a probe's record of its own
    proc = mover("XenHypervisor().memory_map({}, probe_ms=60000)".format(guest))  # the longest allowed
    deadline = time.monotonic() + 180
    while not (paused(hv, guest) and os.path.exists(record)):
        assert proc.poll() is None and time.monotonic() < deadline, died(proc)
        time.sleep(0.1)
    # alive: its lock says so, and recovery keeps its hands off (a live scan's record:
    # nothing to recover, and no error either)
    assert busy(record) == 1
    assert hv.recover_move(guest) is None
    assert paused(hv, guest) and os.path.exists(record)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert paused(hv, guest) and os.path.exists(record) and busy(record) == 0
    note = hv.recover_move(guest)
    assert note and "unpaused" in note, note
    assert not os.path.exists(record)
    assert hv.recover_move(guest) is None
    healthy(hv, guest)


def test_kill_after_the_unpause_does_not_unpause_twice(hv, guest, run_dir):
    """An admin pause is in force (Xen's pause count 1): the mover pauses (2),
    unpauses (1) and dies before removing its record.  Recovery must leave
    the count at 1 -- a second unpause would run the admin's paused guest."""
    record = os.path.join(run_dir, "move-{}.batch".format(guest))
    gfns = pagemove.movable_gfns(hv.memory_map(guest))[:512]
    hv.pause(guest)
    try:
        proc = mover("import sys\nhv = XenHypervisor()\nres = ffi.new('struct xn_mig_result *')\n"
                     "arr = ffi.new('uint64_t[]', {!r})\n"
                     "rc = lib.xn_mig_move(hv._h, {}, arr, {}, 1, 16, lib.XN_MIG_FAULT_DIE_AFTER_UNPAUSE, b{!r}, res)\n"
                     "sys.stderr.write('xn_mig_move returned %d at stage %d, error %d\\n' % (rc, res.stage, res.error))\n"
                     "sys.exit(1)".format(list(gfns), guest, len(gfns), record))
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 98, err
        assert os.path.exists(record) and busy(record) == 0
        assert paused(hv, guest)             # the admin's pause
        assert hv.recover_move(guest) is None  # nothing to do: the record said "unpaused"
        assert not os.path.exists(record)
        assert paused(hv, guest)             # still the admin's pause: not unpaused a second time
    finally:
        hv.unpause(guest)
    healthy(hv, guest)


def test_liveness_is_the_lock_not_the_pid(hv, guest, run_dir):
    """A mover dies with frames released.  Whatever runs under any pid since,
    its record's lock is free: no move may overwrite it, and recovery puts
    the guest back together."""
    record = os.path.join(run_dir, "move-{}.batch".format(guest))
    gfns = pagemove.movable_gfns(hv.memory_map(guest))[512:1024]
    proc = mover("XenHypervisor().move_pages({}, {!r}, 1, fault='die-after-release')".format(guest, list(gfns)))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 99, err
    # a process that lives on (as one reusing the dead mover's pid would) changes nothing
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        assert paused(hv, guest) and busy(record) == 0
        with pytest.raises(HypervisorError):
            hv.move_pages(guest, list(gfns), 1)   # EEXIST: the dead mover's record awaits recovery
        note = hv.recover_move(guest)
        assert note and "unpaused" in note, note
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not os.path.exists(record)
    healthy(hv, guest)
