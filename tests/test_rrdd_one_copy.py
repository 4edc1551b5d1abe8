"""One xapi-numa-rrdd per host.

A second copy (run by hand beside the service) registered the same uid with xcp-rrdd,
wrote the same file, and at its exit deregistered the uid and removed the file under
the first: the host's metrics stopped.  Like xapi-numad, the plugin holds the host's
lock (:mod:`xapi_numa.ops.instance_lock`) while it talks to xcp-rrdd: a second copy
refuses, naming the first, and exits 73 (EXIT_ANOTHER_COPY) before any call to xcp-rrdd.
"""
import fcntl
import os
import subprocess
import time

from xapi_numa.ops import instance_lock

from test_rrdd import PLUGIN, ROOT, fake_rrdd, host  # noqa: F401 (host: the fixture)

HANG_GUARD = 60  # seconds: only for a process that would otherwise never end


def wait_until(condition, proc=None) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not condition() and time.monotonic() < deadline and (proc is None or proc.poll() is None):
        time.sleep(0.1)


def _first_copy(tmp_path, path):
    """A fake xcp-rrdd and the plugin's copy for ``path``: (shm file, calls, server, argv, process)."""
    sock, shm = str(tmp_path / "xcp-rrdd"), str(tmp_path / "metrics-xapi-numa")
    calls = []
    server = fake_rrdd(sock, shm, calls)
    args = PLUGIN + ["--backend", "sim:" + path, "--socket", sock]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT)
    return shm, calls, server, args, first


def test_a_second_copy_refuses_and_leaves_the_first_alone(tmp_path, host):  # noqa: F811
    path, _ = host
    shm, calls, server, args, first = _first_copy(tmp_path, path)
    second = None
    try:
        wait_until(lambda: "Plugin.Local.register" in [m for m, _ in list(calls)], first)
        assert first.poll() is None, first.stderr.read()
        second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                  cwd=ROOT)
        # it exits, or (as it did) asks xcp-rrdd for the file's path the first one writes
        wait_until(lambda: [m for m, _ in list(calls)].count("Plugin.get_path") > 1, second)
        asked = [m for m, _ in list(calls)].count("Plugin.get_path")
        assert second.poll() == instance_lock.EXIT_ANOTHER_COPY and asked == 1, "a second copy ran on ({} path requests)".format(asked)
        err = second.stderr.read()
        assert "another xapi-numa-rrdd (pid {}) already runs".format(first.pid) in err, err
        assert "Traceback" not in err and err.count("\n") == 1, err
        assert first.poll() is None and os.path.exists(shm)
        methods = [m for m, _ in list(calls)]  # the first copy's one deregistration is before its registration
        assert methods.count("Plugin.Local.deregister") == 1, "the first copy's registration stays: {}".format(methods)
    finally:
        for proc in (second, first):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        server.shutdown()




def test_a_copy_whose_lock_was_removed_stops_once_another_takes_it(tmp_path, host):  # noqa: F811
    """With its lock file removed (rm -rf /run/xapi-numa), a second copy locked a new one and ran beside the
    first (xapi-numad looks at its lock each cycle since 2026-12-06; this plugin did not): both registered
    the uid and wrote the file, and the first one's exit would deregister and remove them under the second.
    The first now stops at its next reading (exit 1, naming the other), leaving the registration and file."""
    path, _ = host
    shm, calls, server, args, first = _first_copy(tmp_path, path)
    lock = os.path.realpath(path) + ".xapi-numa-rrdd.lock"
    other = None
    try:
        wait_until(lambda: "Plugin.Local.register" in [m for m, _ in list(calls)], first)
        os.unlink(lock)
        other = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)  # the other copy's: its own file, locked
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(other, b"4242\n")
        wait_until(lambda: first.poll() is not None)
        assert first.poll() == instance_lock.EXIT_ANOTHER_COPY, "the first copy runs on beside another"
        err = first.stderr.read()
        assert "another xapi-numa-rrdd (pid 4242) holds it now" in err and "Traceback" not in err, err
        methods = [m for m, _ in list(calls)]  # its one deregistration is before its registration
        assert methods.count("Plugin.Local.deregister") == 1 and os.path.exists(shm), methods
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        if other is not None:
            os.close(other)
        server.shutdown()
