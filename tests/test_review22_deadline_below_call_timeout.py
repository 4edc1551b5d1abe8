"""A pool start's deadline cuts a host's plugin call short even below the session's CALL_TIMEOUT.

``host.call_plugin`` waited ``max(the session's own timeout, what the start had left)``:
the session's transport waits CALL_TIMEOUT (60 s) per call, and the plugin's wait could only
lengthen it, so ``vm-start --deadline 5`` with a host whose plugin hangs waited a whole
minute on that host's dry run before failing NUMA_START_TIMEOUT (review 22).  A plugin call
now waits exactly the time it is given, shorter or longer than the session's own.
"""
import threading
import time
import types

import pytest

from xapi_loopback import LoopbackXapi
from xapi_numa.backends import xapi
from xapi_numa.errors import StartTimeout
from xapi_numa.ops import pool as pool_ops

G = 1 << 30
CALL_TIMEOUT = 12.0  # the session's own wait per call: far beyond the start's deadline
DEADLINE = 2.0


def test_a_hung_dry_run_ends_at_the_start_deadline_not_the_sessions_call_timeout(pool, monkeypatch):
    server, _ = pool
    monkeypatch.setattr(xapi, "CALL_TIMEOUT", CALL_TIMEOUT)
    session = xapi.login(xapi.Credentials(server.url, "root", "xenroot"), insecure=True)
    ref, uuid = server.add_vm("web", 2, G)
    release = threading.Event()
    real = LoopbackXapi.host_call_plugin

    def call_plugin(self, session_id, host, plugin, fn, args):
        if fn == "place" and host == server.master:
            release.wait(60)
        return real(self, session_id, host, plugin, fn, args)
    monkeypatch.setattr(server, "host_call_plugin", types.MethodType(call_plugin, server))
    started = time.monotonic()
    try:
        with pytest.raises(StartTimeout) as err:
            pool_ops.vm_start(session, uuid, deadline=DEADLINE)
    finally:
        release.set()
        xapi.logout(session)
    took = time.monotonic() - started
    assert took < CALL_TIMEOUT - 4, (took, err.value.message)
    assert "the dry-run place on host host0" in err.value.message, err.value.message
    assert server.vms[ref]["power_state"] == "Halted"
