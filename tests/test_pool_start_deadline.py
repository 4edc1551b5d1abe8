"""The pool's vm-start has one overall deadline, whatever its hosts do.

Each call of a pool start had a deadline of its own, but the start as a whole had none:
a dry run on every host, a place, VM.start_on, a settle, for up to MAX_ATTEMPTS rounds, so
a host slow in each of them held the caller for their sum.  ``vm_start(..., deadline=S)``
(``--deadline``) now fails with NUMA_START_TIMEOUT once S seconds are gone, naming the
step that ran into it, and releases a place made by then.

The hosts here stall for good (a plugin call that is never answered while the test runs),
and each call's own deadline is set far above the start's, so that only the start's
deadline can end the wait.  The start's clock stands still but for the stall: a call that
stalls moves it on by the whole deadline as it begins, so that what runs into the deadline
is that call, however fast or slow this machine runs the rest (the stalled call is still
cut off by a real socket timeout, the budget that was left).
"""
import threading
import time
import types

import pytest

from hung_calls import pool_with_a_hang, within
from xapi_loopback import LoopbackXapi
from xapi_numa.backends import xapi
from xapi_numa.cli.main import main
from xapi_numa.errors import InvalidArgument, StartTimeout
from xapi_numa.ops import pool as pool_ops, start_deadline

G = 1 << 30
DEADLINE = 2.0
OWN = 30.0  # each call's own deadline here: far beyond the start's


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def stall(self) -> bool:
        self.now += DEADLINE
        return True


@pytest.fixture
def stalls(pool, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(start_deadline, "time", types.SimpleNamespace(monotonic=clock))
    with pool_with_a_hang(pool, monkeypatch) as (server, session, hang):
        for name in ("QUERY_TIMEOUT", "PLACE_TIMEOUT", "LONG_CALL_TIMEOUT"):
            monkeypatch.setattr(xapi, name, OWN)
        yield server, session, lambda when: hang(lambda *call: when(*call) and clock.stall()), clock


def _timed_out(session, uuid):
    started = time.monotonic()
    with pytest.raises(StartTimeout) as err:
        within(lambda: pool_ops.vm_start(session, uuid, deadline=DEADLINE), seconds=OWN - 5)
    return err.value, time.monotonic() - started


def test_dry_runs_that_never_answer_end_at_the_deadline(stalls):
    server, session, hang, _ = stalls
    ref, uuid = server.add_vm("web", 2, G)
    hang(lambda host, fn, args: fn == "place" and args.get("dry_run") == "true")
    err, took = _timed_out(session, uuid)
    assert err.code == "NUMA_START_TIMEOUT" and took < OWN / 2, (took, err.message)
    assert "deadline of 2 s" in err.message and "the dry-run place on host host0" in err.message, err.message
    assert session.xenapi.VM.get_power_state(ref) == "Halted"


def test_a_place_that_never_answers_ends_at_the_deadline_and_is_released(stalls, monkeypatch):
    server, session, hang, _ = stalls
    ref, uuid = server.add_vm("web", 2, G)
    hang(lambda host, fn, args: fn == "place" and args.get("dry_run") != "true")
    released = []
    real = server.host_call_plugin

    def call_plugin(self, session_id, host, plugin, fn, args):
        if fn == "release":
            released.append(host)
        return real(session_id, host, plugin, fn, args)
    monkeypatch.setattr(server, "host_call_plugin", types.MethodType(call_plugin, server))
    err, took = _timed_out(session, uuid)
    assert took < OWN / 2, (took, err.message)
    assert "the place on host host" in err.message and "nothing it placed is kept" in err.message, err.message
    assert len(released) == 1, released  # the stalled place, undone in case it lands
    assert session.xenapi.VM.get_power_state(ref) == "Halted"


def test_a_start_on_that_never_answers_keeps_the_placement_and_says_so(stalls, monkeypatch):
    server, session, _, clock = stalls
    ref, uuid = server.add_vm("web", 2, G)
    gate = threading.Event()
    real = LoopbackXapi.VM_start_on

    def start_on(self, *args):
        clock.stall()
        gate.wait(OWN + 10)
        return real(self, *args)
    monkeypatch.setattr(server, "VM_start_on", types.MethodType(start_on, server))
    try:
        err, took = _timed_out(session, uuid)
    finally:
        gate.set()
    assert took < OWN / 2, (took, err.message)
    assert "VM.start_on on host host" in err.message and "may still be starting" in err.message, err.message


def test_a_deadline_that_is_no_number_of_seconds_is_refused_naming_the_field(pool):
    server, session = pool
    _, uuid = server.add_vm("web", 2, G)
    for bad in (0, -1, float("nan"), float("inf"), "60"):
        with pytest.raises(InvalidArgument) as err:
            pool_ops.vm_start(session, uuid, deadline=bad)
        assert err.value.params[0] == "deadline" and "seconds above 0" in err.value.message


def test_the_cli_refuses_a_bad_deadline_before_logging_in(capsys):
    assert main(["--pool", "http://127.0.0.1:9", "vm-start", "web", "--deadline", "0"]) == 2
    out = capsys.readouterr()
    assert "--deadline" in out.err and "at most 86400 seconds" in out.err, out
