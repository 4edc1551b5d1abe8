"""A place the pool gave up on finished later and left its pin and reservation.

The pool waits PLACE_TIMEOUT (300 s) for a host's place, then passes the host over
(NUMA_HOST_TIMEOUT) and asks it to release the VM; but the place's own bounded waits
(the place lock's 60 s, each xapi call's 60 s, hypervisor calls) add up past 300 s,
and the release is refused while the place still holds the VM.  With no other place
taking the VM over, the place went on, pinned the VM to that host and kept its
reservation there until its lease ended.  Now a place has a budget of its own
(PLACE_BUDGET, below PLACE_TIMEOUT): past it, it writes nothing more, gives back what
it reserved, puts back what it wrote and fails with NUMA_HOST_TIMEOUT, which a pool
start that still waits passes over like a host that timed out.
"""
import json
import threading
import time
import types

import pytest

from hung_calls import within
from xapi_loopback import Failure, LoopbackXapi
from xapi_numa.backends import xapi
from xapi_numa.errors import HostTimeout, NoHost, NumaError, VmBusy, failure_details
from xapi_numa.ops import pool as pool_ops
from xapi_numa.ops import start_placement
from xapi_numa.state.ledger import Ledger

G = 1 << 30


def test_a_places_budget_ends_before_the_pool_stops_waiting_and_outlasts_its_lock_wait():
    assert start_placement.PLACE_LOCK_WAIT < start_placement.PLACE_BUDGET <= start_placement.OWNER_TTL
    assert start_placement.PLACE_BUDGET + xapi.CALL_TIMEOUT < xapi.PLACE_TIMEOUT


@pytest.fixture
def slow_place_on_x(pool, monkeypatch):
    """A pool start's session, a VM, and the first host it asks to place (X): X's place
    and release run in this process, its place slowed after it reserved by ``stall``
    (set by the test); the others run as xapi runs them."""
    from xapi_numa.plugin import functions

    server, reader = pool
    monkeypatch.setattr(xapi, "CALL_TIMEOUT", 2.0)  # (a plugin call waits at least as long)
    monkeypatch.setattr(start_placement, "PLACE_LOCK_WAIT", 0.2)
    monkeypatch.setattr(start_placement, "PLACE_BUDGET", 0.3, raising=False)
    session = xapi.login(xapi.Credentials(server.url, "root", "xenroot"), insecure=True)
    ref, uuid = server.add_vm("web", 2, G)
    x = pool_ops.candidates(session, uuid)[0][1]
    for key, value in server.plugin_env(x).items():
        monkeypatch.setenv(key, value)
    box, done, stall = {}, threading.Event(), []
    real_reserve = start_placement.place_sized

    def reserve_then_stall(*args, **kwargs):
        answer = real_reserve(*args, **kwargs)
        box["reserved"] = Ledger(server.ledgers[x]).reservations()
        stall[0]()
        return answer
    monkeypatch.setattr(start_placement, "place_sized", reserve_then_stall)
    real_call = LoopbackXapi.host_call_plugin

    def call_plugin(self, session_id, host, plugin, fn, args):
        if host != x or fn not in ("place", "release") or args.get("dry_run"):
            return real_call(self, session_id, host, plugin, fn, args)
        try:  # as X's plugin, laid out as its boundary lays out a failure
            return json.dumps(functions.FUNCTIONS[fn](functions.Context(session_id), dict(args)))
        except NumaError as err:
            box[fn] = err
            raise Failure(*failure_details(err)) from None
        finally:
            if fn == "place":
                done.set()
    monkeypatch.setattr(server, "host_call_plugin", types.MethodType(call_plugin, server))
    return server, session, reader, ref, uuid, x, box, done, stall


def test_a_place_the_pool_gave_up_on_leaves_neither_pin_nor_reservation(slow_place_on_x, monkeypatch):
    """The pool (asked to start on X only) stops waiting for X's place, is refused its
    release (the place holds the VM) and fails; only then does X's place go on."""
    server, session, reader, ref, uuid, x, box, done, stall = slow_place_on_x
    monkeypatch.setattr(xapi, "PLACE_TIMEOUT", 2.0)
    go = threading.Event()
    stall.append(lambda: go.wait(30))
    with pytest.raises(NoHost) as err:
        within(lambda: pool_ops.vm_start(session, uuid, only_host=server.hosts[x]["uuid"]))
    assert pool_ops.HOST_TIMEOUT in err.value.message
    assert isinstance(box["release"], VmBusy)  # X's place held the VM then
    go.set()
    assert done.wait(30)
    assert box["reserved"] and [r.vm for r in box["reserved"]] == [uuid]  # it had reserved before the stall
    assert Ledger(server.ledgers[x]).reservations() == []
    assert reader.xenapi.VM.get_other_config(ref) == {} and reader.xenapi.VM.get_VCPUs_params(ref) == {}
    place = box["place"]
    assert isinstance(place, HostTimeout) and place.code == "NUMA_HOST_TIMEOUT", place
    assert place.params == ("vm", uuid, "place budget") and "0.3 s budget" in place.message


def test_a_place_out_of_budget_in_time_is_passed_over_like_a_host_that_timed_out(slow_place_on_x):
    server, session, reader, ref, uuid, x, box, done, stall = slow_place_on_x
    stall.append(lambda: time.sleep(0.6))
    started = within(lambda: pool_ops.vm_start(session, uuid))
    assert isinstance(box["place"], HostTimeout)
    assert started["host_uuid"] != server.hosts[x]["uuid"] and started["attempts"] == 2
    assert Ledger(server.ledgers[x]).reservations() == []
    assert reader.xenapi.VM.get_power_state(ref) == "Running"
