"""A place (or release) slow past its owner key's lease wrote on after another caller took
the VM over.

The pool waits PLACE_TIMEOUT for a host's place, then passes the host over and places the
VM on the next one.  A place on host X that was slow but alive (each xapi call may wait
60 s, the place lock 60 s) ran past its owner key's lease (OWNER_TTL); the place on host Y
took the key over as a dead caller's and pinned the VM to Y.  Then X's place went on: it
reserved, wrote its own boot pin over Y's (the VM started on Y with X's pin keys) and
kept its reservation on X until its lease ended.  Nothing checked, before a write, that
the caller still held the key.  Now a caller that lost it writes nothing more to the VM,
gives back what it reserved and fails with NUMA_VM_BUSY saying it was taken over.
"""
import threading
import time
import types

import pytest

from test_place_timeout import within
from xapi_loopback import LoopbackXapi
from xapi_numa.backends import xapi
from xapi_numa.backends.xapi_owner_key import owner_of
from xapi_numa.errors import NumaError, VmBusy
from xapi_numa.ops import pool as pool_ops
from xapi_numa.ops import start_placement, upkeep
from xapi_numa.state.ledger import Ledger

G = 1 << 30


def _pins(session, ref) -> dict:
    return {"other_config": session.xenapi.VM.get_other_config(ref),
            "VCPUs_params": session.xenapi.VM.get_VCPUs_params(ref)}


@pytest.fixture
def short_deadlines(pool, monkeypatch):
    server, reader = pool
    monkeypatch.setattr(xapi, "CALL_TIMEOUT", 5.0)
    monkeypatch.setattr(xapi, "QUERY_TIMEOUT", 10.0)
    monkeypatch.setattr(xapi, "PLACE_TIMEOUT", 1.0)
    monkeypatch.setattr(start_placement, "PLACE_LOCK_WAIT", 0.2)
    # a caller of this process is past its lease as soon as it holds the VM (another
    # host's plugin, a process of its own, takes the key over as a dead caller's)
    monkeypatch.setattr(start_placement, "OWNER_TTL", -5.0)
    session = xapi.login(xapi.Credentials(server.url, "root", "xenroot"), insecure=True)
    return server, session, reader  # (the pool's start, and a session of the test's own)


@pytest.mark.parametrize("slow", ["not_placed_elsewhere", "place_sized"])
def test_a_place_slow_past_its_lease_writes_nothing_after_another_hosts_place_took_the_vm(
        short_deadlines, monkeypatch, slow):
    """Host X's place stalls (before it reserves, or after) until host Y's place, asked by
    the pool once X's place timed out, has pinned the VM; then X's place goes on."""
    from xapi_numa.plugin import functions

    server, session, reader = short_deadlines
    ref, uuid = server.add_vm("web", 2, G)
    x = pool_ops.candidates(session, uuid)[0][1]  # the host the start asks to place first
    for key, value in server.plugin_env(x).items():  # X's place and release run in this process
        monkeypatch.setenv(key, value)
    go, done, box = threading.Event(), threading.Event(), {}

    real_step = getattr(start_placement, slow)

    def stalls(*args, **kwargs):
        if slow == "place_sized":
            answer = real_step(*args, **kwargs)
            go.wait(30)
            return answer
        if owner_of(args[1]["other_config"], start_placement.OWNER_KEY):  # the place's, holding the VM (not check_place's)
            go.wait(30)
        return real_step(*args, **kwargs)
    monkeypatch.setattr(start_placement, slow, stalls)
    reserved = []
    if slow == "not_placed_elsewhere":  # taken over before it reserves: it reserves nothing
        real_reserve = start_placement.place_sized
        monkeypatch.setattr(start_placement, "place_sized",
                            lambda *args, **kwargs: reserved.append(args) or real_reserve(*args, **kwargs))

    real_call = LoopbackXapi.host_call_plugin

    def call_plugin(self, session_id, host, plugin, fn, args):
        if host == x and fn in ("place", "release") and not args.get("dry_run"):
            try:  # in this process, as X's plugin
                box[fn] = functions.FUNCTIONS[fn](functions.Context(session_id), dict(args))
            except NumaError as err:
                box[fn] = err
            finally:
                if fn == "place":
                    done.set()
            return "{}"  # (the pool has long stopped waiting for X's place)
        answer = real_call(self, session_id, host, plugin, fn, args)
        if fn == "place" and not args.get("dry_run"):  # Y has placed (and pinned): X goes on now
            box["after Y"] = _pins(reader, ref)
            go.set()
            done.wait(30)
            box["after X"] = _pins(reader, ref)
        return answer
    monkeypatch.setattr(server, "host_call_plugin", types.MethodType(call_plugin, server))

    started = within(lambda: pool_ops.vm_start(session, uuid))
    go.set()
    y = started["host_uuid"]
    assert y != server.hosts[x]["uuid"] and started["attempts"] == 2
    assert isinstance(box["release"], VmBusy)  # the pool's release of X: X's place held the VM then
    assert box["after Y"]["other_config"]["numa_placed_host"] == y
    assert box["after X"] == box["after Y"]  # X wrote nothing over Y's pin
    err = box["place"]
    assert isinstance(err, VmBusy) and err.code == "NUMA_VM_BUSY", err
    assert "took it over" in err.message and err.params == ("vm", uuid, "taken over")
    assert Ledger(server.ledgers[x]).reservations() == [] and reserved == []  # nothing of X's left reserved
    assert reader.xenapi.VM.get_power_state(ref) == "Running"


@pytest.fixture
def on_x(pool, monkeypatch):
    """The plugin's functions of the pool's first host (X), called in this process, and
    a VM X has placed; X's next caller is past its lease as soon as it holds the VM."""
    from xapi_numa.plugin import functions

    server, session = pool
    x = session.xenapi.host.get_all()[0]
    for key, value in server.plugin_env(x).items():
        monkeypatch.setenv(key, value)
    ref, uuid = server.add_vm("web", 2, G)
    call = lambda fn, args: functions.FUNCTIONS[fn](functions.Context(session._session), args)  # noqa: E731
    call("place", {"vm": uuid})
    monkeypatch.setattr(start_placement, "OWNER_TTL", -5.0)
    return server, session, Ledger(server.ledgers[x]), ref, uuid, call


def _take_over(session, ref, pin=None) -> None:
    """What another caller's takeover does: its key over the dead one's, and its writes."""
    for name in [k for k in session.xenapi.VM.get_other_config(ref) if k.startswith(start_placement.OWNER_KEY)]:
        session.xenapi.VM.remove_from_other_config(ref, name)
    session.xenapi.VM.add_to_other_config(ref, start_placement.OWNER_KEY + ".1",
                                          "new-owner/{:.0f}".format(time.time() + 100))
    for key, value in (pin or {}).items():
        session.xenapi.VM.remove_from_other_config(ref, key)
        session.xenapi.VM.add_to_other_config(ref, key, value)
    if pin:
        session.xenapi.VM.remove_from_VCPUs_params(ref, "mask")
        session.xenapi.VM.add_to_VCPUs_params(ref, "mask", "4,5,6,7")


def test_a_place_taken_over_during_its_last_write_gives_its_reservation_back_and_fails(on_x, monkeypatch):
    server, session, ledger, ref, uuid, call = on_x
    real = xapi.set_vcpus_param

    def takeover_meanwhile(session_, vm, key, value):
        real(session_, vm, key, value)
        _take_over(session, ref)
    monkeypatch.setattr(xapi, "set_vcpus_param", takeover_meanwhile)
    with pytest.raises(VmBusy) as err:
        call("place", {"vm": uuid})
    monkeypatch.setattr(xapi, "set_vcpus_param", real)
    assert err.value.params == ("vm", uuid, "taken over")
    assert ledger.reservations() == []
    assert start_placement.OWNER_KEY + ".1" in session.xenapi.VM.get_other_config(ref)  # the new owner's, kept


def test_a_release_slow_past_its_lease_leaves_the_pin_of_the_caller_that_took_the_vm(on_x, monkeypatch):
    """X's release read the record (X's pin), then stalled; meanwhile another caller took
    the VM over and pinned it anew.  X's release restored the pin it had read: it wiped
    the new one (the VM would start unpinned, its reservation elsewhere for nothing)."""
    server, session, ledger, ref, uuid, call = on_x
    pin = {"numa_saved_mask": "-", "numa_placed_nodes": "1", "numa_placed_host": "another-host"}
    real = upkeep.release_asked

    def takeover_meanwhile(*args):
        answer = real(*args)
        _take_over(session, ref, pin)
        return answer
    monkeypatch.setattr(upkeep, "release_asked", takeover_meanwhile)
    with pytest.raises(VmBusy) as err:
        call("release", {"vm": uuid})
    assert err.value.params == ("vm", uuid, "taken over")
    config = session.xenapi.VM.get_other_config(ref)
    assert {k: config.get(k) for k in pin} == pin
    assert session.xenapi.VM.get_VCPUs_params(ref) == {"mask": "4,5,6,7"}
    assert ledger.reservations() == []  # (X's own: a release gives it back before it writes)
