"""xapi-numad's one-copy lock was taken at start and never looked at again.

The lock is a flock on a file: once the file is removed (an admin's ``rm -rf /run/xapi-numa``,
a tmpfs mounted over ``/run``) a second xapi-numad made a new one, locked it and ran beside the
first, each undoing the other's pins.  The daemon now looks every cycle whether the lock's path
still names the file it holds: it takes it again if nobody has, and stops (exit 73, saying why,
its pins left to the other copy: restored, they would undo that one's) if another copy has."""
import fcntl
import json
import os
import subprocess
import sys
import time

from test_daemon import swapped_host
from xapi_numa import daemon
from xapi_numa.ops import instance_lock

HANG_GUARD = 15.0  # seconds: only for a daemon that would otherwise never do it
# this interpreter's xapi-numad (an installed script may import another checkout's)
XAPI_NUMAD = [sys.executable, "-m", "xapi_numa.daemon"]


def start_daemon(path):
    """xapi-numad on the simulated host at ``path``, and its first log line ("started")."""
    proc = subprocess.Popen(XAPI_NUMAD + ["--backend", "sim:" + path, "--period", "0.1", "--no-xapi"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    return proc, proc.stderr.readline()


def wait_until(condition) -> bool:
    deadline = time.monotonic() + HANG_GUARD
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def daemon_on_a_host(tmp_path):
    """xapi-numad running on a simulated host: (the host's path, its lock's, the daemon, its first line)."""
    path = str(tmp_path / "h.json")
    swapped_host(path)
    return (path, instance_lock.lock_path("sim:" + path)) + start_daemon(path)


def stopped(proc) -> str:
    if proc.poll() is None:
        proc.kill()
    return proc.communicate(timeout=30)[1]


def test_a_removed_lock_file_is_taken_again_and_a_second_daemon_is_still_refused(tmp_path):
    path, lock, first, started = daemon_on_a_host(tmp_path)
    try:
        os.remove(lock)  # rm -rf /run/xapi-numa under the running daemon
        wait_until(lambda: os.path.exists(lock))  # (a few cycles: the daemon's next look)
        second = subprocess.run(XAPI_NUMAD + ["--backend", "sim:" + path, "--no-xapi", "--cycles", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        assert second.returncode == daemon.EXIT_ANOTHER_COPY, \
            "a second xapi-numad ran beside the first: " + second.stderr
        assert "another xapi-numad (pid {}) already runs".format(first.pid) in second.stderr, second.stderr
        assert first.poll() is None
    finally:
        err = stopped(first)
    events = [json.loads(line) for line in (started + err).splitlines() if line.startswith("{")]
    assert [e["path"] for e in events if e["event"].startswith("instance lock taken again")] == [lock]


def test_a_daemon_whose_lock_another_took_stops_and_leaves_the_pins_to_it(tmp_path):
    path, lock, first, started = daemon_on_a_host(tmp_path)
    try:
        # another copy's lock file, put in place at once (a rename): the daemon never sees the name free
        other = os.open(lock + ".new", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(other, "{}\n".format(os.getpid()).encode())
        os.rename(lock + ".new", lock)
        ended = wait_until(lambda: first.poll() is not None)
    finally:
        err = stopped(first)
    assert ended, "the daemon ran on beside the copy that took its lock"
    assert first.returncode == daemon.EXIT_ANOTHER_COPY, err
    said = err.splitlines()[-1]
    assert said == ("xapi-numad: error: the xapi-numad lock {} was removed or replaced while this copy ran, and "
                    "another xapi-numad (pid {}) holds it now: this one stops and leaves its temporary pins to "
                    "that one (the state database they share holds them)".format(lock, os.getpid())), err
    events = [json.loads(line)["event"] for line in (started + err).splitlines() if line.startswith("{")]
    assert "temporary pins restored" not in events[1:], "the stopping daemon undid pins of the one that runs on"
    os.close(other)
