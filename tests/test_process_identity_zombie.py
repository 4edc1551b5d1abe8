"""A holder that has exited but is not yet reaped by its parent (a zombie, state Z in
``/proc/<pid>/stat``) counted as alive: a VM held by a dead caller waited for its owner
token's expiry.  A zombie has run its last instruction: it is gone now.  A leader thread
that exited before its other threads shows as Z too, while they run: not gone then."""
import ctypes
import os
import signal
import time

import pytest

from xapi_numa.backends import process_identity
from xapi_numa.core.owner_token import Holder

BOOT = "a-boot-id"
# pid (comm) state ppid ... num_threads (field 20) ... starttime (field 22): a comm with ")" and spaces in it
STAT = "{pid} (a) b (c) {state} 1 7 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 {threads} 0 {start} 12345 67 0"


def _proc(text):
    return lambda path: text if path == "/proc/42/stat" else None


def _no_signal(pid):
    raise AssertionError("signal 0 is for a pid absent from /proc")


def _gone(state, threads=1, start=9000):
    stat = STAT.format(pid=42, state=state, threads=threads, start=start)
    return process_identity.gone(Holder(BOOT, 42, 9000), _proc(stat), lambda: BOOT, _no_signal)


@pytest.mark.parametrize("state", ["R", "S", "D", "T", "t", "I"])
def test_a_running_or_sleeping_or_stopped_holder_is_not_gone(state):
    assert not _gone(state)


def test_a_zombie_or_dead_holder_is_gone():
    assert _gone("Z") and _gone("X") and _gone("Z", threads=0)
    assert _gone("Z", start=9001) and _gone("R", start=9001)  # a pid used again: gone as before


def test_a_zombie_leader_whose_other_threads_run_is_not_gone():
    assert not _gone("Z", threads=3)
    assert not _gone("Z", threads="x")  # cannot tell: not gone


def test_a_stat_without_its_fields_tells_nothing():
    holder = Holder(BOOT, 42, 9000)
    assert not process_identity.gone(holder, _proc("42 (a) Z"), lambda: BOOT, _no_signal)
    assert not process_identity.gone(holder, _proc("42 (a Z 1"), lambda: BOOT, _no_signal)


def _raises(error):
    def signal0(pid):
        raise error
    return signal0


def test_the_hidepid_rule_still_holds():
    """Absent from /proc is gone only when signal 0 says no such process (ESRCH)."""
    holder = Holder(BOOT, 42, 9000)
    assert not process_identity.gone(holder, _proc(None), lambda: BOOT, lambda pid: None)
    assert not process_identity.gone(holder, _proc(None), lambda: BOOT, _raises(PermissionError(1, "not permitted")))
    assert process_identity.gone(holder, _proc(None), lambda: BOOT, _raises(ProcessLookupError(3, "no such process")))


def _state(pid):
    return process_identity.read_proc("/proc/{}/stat".format(pid)).rpartition(")")[2].split()[0]


def _wait_for_state(pid, state, seconds=10.0):
    deadline = time.monotonic() + seconds
    while _state(pid) != state:
        assert time.monotonic() < deadline, _state(pid)
        time.sleep(0.01)


def _holder_of(pid):
    held = process_identity.this_process(pid=pid, this_boot=lambda: BOOT)
    assert held is not None and held.pid == pid
    return held


def test_a_real_zombie_child_is_gone_and_stays_so_until_reaped():
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the holder: waits to be told, then exits (its parent, this test, does not reap it yet)
        os.close(go_w)
        os.read(go_r, 1)
        os._exit(0)
    os.close(go_r)
    try:
        holder = _holder_of(pid)
        assert not process_identity.gone(holder, this_boot=lambda: BOOT)  # alive, waiting
        os.write(go_w, b"x")
        _wait_for_state(pid, "Z")
        assert process_identity.gone(holder, this_boot=lambda: BOOT)  # exited, not reaped
    finally:
        os.close(go_w)
        os.waitpid(pid, 0)
    assert process_identity.gone(holder, this_boot=lambda: BOOT)  # reaped: absent, ESRCH


def test_a_real_zombie_leader_with_a_live_thread_is_not_gone():
    pthread_exit = getattr(ctypes.CDLL(None), "pthread_exit", None)
    if pthread_exit is None:
        pytest.skip("no pthread_exit in this C library")
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        import threading

        def last_thread():  # runs on after the leader ended, until told
            os.read(go_r, 1)
            os._exit(0)
        threading.Thread(target=last_thread).start()
        pthread_exit(None)  # the leader thread ends: /proc shows the process as Z
        os._exit(1)
    os.close(go_r)
    try:
        holder = _holder_of(pid)
        _wait_for_state(pid, "Z")
        assert not process_identity.gone(holder, this_boot=lambda: BOOT)  # its thread still runs
        os.write(go_w, b"x")
        deadline = time.monotonic() + 10
        while not process_identity.gone(holder, this_boot=lambda: BOOT):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.close(go_w)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
