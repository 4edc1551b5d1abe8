"""A VM's owner keys travel with copies of it: xapi copies other_config whole into a clone,
a copy and a snapshot (and from a snapshot into a VM made of it, or back by a revert).

A clone taken while a pool vm-start held its VM (``numa_start_owner``) carried a copy of that
live token: the clone, a VM nobody was starting, was refused every vm-start with NUMA_VM_BUSY
until the token's time ran out (the start's deadline and 60 s: 41 minutes by default), and a
clone taken during a place (``numa_place_owner``) refused its places for up to 120 s.  A token
now names the VM it was written for, and one written for another VM holds nothing: the
clone's first start or place takes it over at once (and removes it).  A revert puts back a
token written for the same VM: it is judged as a start that died (its time, its process).
"""
import time

import pytest

from test_pool_start_held import _in_thread, _second_session, _start_held_at_start_on
from xapi_numa.backends import process_identity, xapi
from xapi_numa.core import owner_token
from xapi_numa.core.owner_token import Holder
from xapi_numa.errors import NumaError
from xapi_numa.ops import pool as pool_ops
from xapi_numa.ops import start_hold, start_placement
from xapi_numa.state.ledger import Ledger

G = 1 << 30


def _keys(server, ref, key):
    return sorted(k for k in server.vms[ref]["other_config"] if k == key or k.startswith(key + "."))


def _clone(session, ref, how):
    """A new VM made of ``ref`` as an admin makes one: ``clone`` (xe vm-clone), or a VM installed
    from a snapshot (xe vm-snapshot, then xe snapshot-clone and vm-install: a clone of the
    snapshot, no longer a template)."""
    if how == "clone":
        return session.xenapi.VM.clone(ref, "web-clone")
    return session.xenapi.VM.clone(session.xenapi.VM.snapshot(ref, "web-snap", []), "from-snap")


@pytest.fixture
def start_at_start_on(pool, monkeypatch):
    """Start A of a VM, waiting (its hold taken, its place made) on its way to VM.start_on;
    ``finish()`` lets it go on and answers its outcome."""
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G)
    there, go = _start_held_at_start_on(server, monkeypatch)
    first = _second_session(server)
    thread, outcome = _in_thread(pool_ops.vm_start, first, uuid)

    def finish() -> dict:
        go.set()
        thread.join(120)
        return outcome
    try:
        assert there.wait(60), outcome
        assert _keys(server, ref, start_hold.START_KEY) == [start_hold.START_KEY]
        yield server, session, ref, finish
    finally:
        finish()
        xapi.logout(first)


@pytest.mark.parametrize("how", ["clone", "from a snapshot"])
def test_a_vm_copied_while_a_start_holds_the_original_starts_at_once(start_at_start_on, how):
    server, session, ref, finish = start_at_start_on
    made = _clone(session, ref, how)
    server.vms[made]["is_a_template"] = False  # (xe vm-install of a snapshot's clone does so)
    copied = server.vms[made]["other_config"][start_hold.START_KEY]  # xapi copied the live token
    assert copied == server.vms[ref]["other_config"][start_hold.START_KEY]
    started = pool_ops.vm_start(session, server.vms[made]["uuid"])  # before: NUMA_VM_BUSY for 41 minutes
    assert server.vms[made]["power_state"] == "Running" and started["settle_error"] is None, started
    assert _keys(server, made, start_hold.START_KEY) == []  # the copy is gone with the clone's own hold
    # the original's start is untouched: its hold is there until it ends
    assert server.vms[ref]["other_config"][start_hold.START_KEY] == copied
    assert "error" not in finish() and server.vms[ref]["power_state"] == "Running"


def test_a_vm_cloned_while_a_place_holds_the_original_is_placed_at_once(pool):
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G)
    host = session.xenapi.host.get_all()[0]
    with start_placement.owning(Ledger(server.ledgers[host]), session, ref, uuid) as token:
        clone = session.xenapi.VM.clone(ref, "web-clone")
        assert server.vms[clone]["other_config"][start_placement.OWNER_KEY] == token
        # the place runs in a process of its own on this machine: this one, the holder, lives
        answer = session.xenapi.host.call_plugin(host, "numa", "place", {"vm": server.vms[clone]["uuid"]})
        assert _keys(server, clone, start_placement.OWNER_KEY) == []
        assert xapi.PLACED_KEY in server.vms[clone]["other_config"], answer
        assert server.vms[ref]["other_config"][start_placement.OWNER_KEY] == token  # the original's, still held
    assert _keys(server, ref, start_placement.OWNER_KEY) == []


def test_a_revert_puts_back_a_start_hold_judged_as_a_start_that_died(start_at_start_on, monkeypatch):
    """A snapshot taken during a start keeps its token; a revert after the start ended puts it
    back on the same VM.  Nothing tells it from a start that died: on the machine it names,
    its process gone, the next start takes it over at once; elsewhere it waits for its time."""
    server, session, ref, finish = start_at_start_on
    uuid = server.vms[ref]["uuid"]
    snap = session.xenapi.VM.snapshot(ref, "during-the-start", [])
    outcome = finish()
    assert "error" not in outcome and _keys(server, ref, start_hold.START_KEY) == [], outcome
    session.xenapi.VM.hard_shutdown(ref)
    session.xenapi.VM.revert(snap)
    token = server.vms[ref]["other_config"][start_hold.START_KEY]
    assert owner_token.vm_of(token) == uuid
    with pytest.raises(NumaError) as err:  # its process (this one) lives, and its time is not up
        pool_ops.vm_start(session, uuid)
    assert err.value.code == "NUMA_VM_BUSY", err.value
    monkeypatch.setattr(process_identity, "gone", lambda holder: True)  # as a CLI's process, once it ended
    pool_ops.vm_start(session, uuid)
    assert server.vms[ref]["power_state"] == "Running" and _keys(server, ref, start_hold.START_KEY) == []


def test_a_token_names_its_vm_and_one_naming_none_is_judged_as_before():
    vm, other = "6f1c1c9e-0a4e-4c1e-9d7e-3c2f1a0b9e11", "0d8e5a52-7a55-4b34-8a3e-0e4b7c1f2a10"
    now, alive = time.time(), Holder("another-boot", 4242, 77)
    token = owner_token.make("u", now + 60, alive, vm=vm.upper(), machine="box")
    assert owner_token.vm_of(token) == vm and owner_token.machine_of(token) == "box"
    assert not owner_token.stale(token, now, 120, lambda holder: False, vm)
    assert owner_token.stale(token, now, 120, lambda holder: False, other)  # a copy's: no hold
    for older in ("u@box/another-boot:4242:77/{:.0f}".format(now + 60), "u/{:.0f}".format(now + 60)):
        assert owner_token.vm_of(older) is None
        assert not owner_token.stale(older, now, 120, lambda holder: False, other), older  # by time, as before
    assert not start_placement.owner_token_stale(start_placement.owner_token(now, vm=vm), now, vm=vm)
    assert start_placement.owner_token_stale(start_placement.owner_token(now, vm=vm), now, vm=other)
    assert start_hold.stale(start_hold.start_token(now, 600, vm), now, other)
    assert not start_hold.stale(start_hold.start_token(now, 600, vm), now, vm)
