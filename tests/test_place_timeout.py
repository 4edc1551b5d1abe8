"""`place` on a hung host waited up to 1800 s, and the 1800 s were ours.

* The pool's start (`xapi-numa --pool vm-start`) asked the chosen host's plugin to place
  (and, failing that, to release) with LONG_CALL_TIMEOUT, the 30 minutes a VM.start_on may
  take, though a place waits for little there.  xapi gives a plugin no deadline of its
  own.  A member that answered its dry run and then hung held the start for 30 minutes,
  then 30 more for the release, and the start failed as if the pool master were wedged
  (XapiTimeout: "no answer from xapi").  It now waits PLACE_TIMEOUT, and a host that does
  not answer in time (the master still does) is NUMA_HOST_TIMEOUT, passed over.
* On the host, the plugin's place (release, set_policy) waited for the VM's place lock
  with no bound: behind a holder stuck in a hung call it never answered.  It now waits
  PLACE_LOCK_WAIT, then refuses with NUMA_VM_BUSY naming the lock.
"""
import time

import pytest

from hung_calls import pool_with_a_hang, within
from xapi_numa.backends import xapi
from xapi_numa.errors import VmBusy
from xapi_numa.ops import pool as pool_ops
from xapi_numa.ops import start_placement
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.locks import vm_lock

G = 1 << 30


@pytest.fixture
def hangs_after_its_dry_run(pool, monkeypatch):
    """The pool with short deadlines (a place's 1 s), a session, and a way to make one host's
    plugin answer its dry run and then hang (every other call to it)."""
    with pool_with_a_hang(pool, monkeypatch) as (server, session, hang):
        yield server, session, lambda host_ref: hang(lambda host, fn, args: host == host_ref
                                                     and not args.get("dry_run"))


def test_vm_start_passes_over_a_host_whose_place_hangs(hangs_after_its_dry_run):
    server, session, hang = hangs_after_its_dry_run
    ref, uuid = server.add_vm("web", 2, G)
    first = pool_ops.candidates(session, uuid)[0][1]  # the host the start asks to place first
    hang(first)
    began = time.monotonic()
    started = within(lambda: pool_ops.vm_start(session, uuid))
    assert time.monotonic() - began < 10
    assert started["host_uuid"] != server.hosts[first]["uuid"] and started["attempts"] == 2
    assert session.xenapi.VM.get_power_state(ref) == "Running"


def test_a_place_that_hangs_is_named_host_timeout(hangs_after_its_dry_run):
    server, session, hang = hangs_after_its_dry_run
    ref, uuid = server.add_vm("web", 2, G)
    host = list(server.hosts)[1]
    hang(host)
    with pytest.raises(xapi.XapiError) as err:
        within(lambda: pool_ops.plugin_result(session, host, "place", {"vm": uuid}))
    assert err.value.code == pool_ops.HOST_TIMEOUT and "did not answer place within 1 s" in err.value.message
    assert server.hosts[host]["name_label"] in err.value.message


@pytest.fixture
def in_process(pool, monkeypatch):
    """The plugin's functions called in this process, on the pool's first host."""
    from xapi_numa.plugin import functions

    server, session = pool
    host = session.xenapi.host.get_all()[0]
    for key, value in server.plugin_env(host).items():
        monkeypatch.setenv(key, value)
    return server, session, host, lambda fn, args: functions.FUNCTIONS[fn](functions.Context(session._session), args)


@pytest.mark.parametrize("fn", ["place", "release"])
def test_the_plugin_waits_a_bounded_time_for_a_stuck_holder_of_the_vms_place_lock(in_process, monkeypatch, fn):
    server, session, host, call = in_process
    ref, uuid = server.add_vm("web", 2, G)
    monkeypatch.setattr(start_placement, "PLACE_LOCK_WAIT", 0.5, raising=False)
    path = server.ledgers[host]
    stuck = vm_lock(path, "place", uuid)  # held by another place of the VM, stuck in a hung call
    assert stuck.try_acquire()
    try:
        began = time.monotonic()
        with pytest.raises(VmBusy) as err:
            within(lambda: call(fn, {"vm": uuid}))
        assert time.monotonic() - began < 5
    finally:
        stuck.release()
    assert err.value.code == "NUMA_VM_BUSY" and "place lock" in err.value.message and "0.5 s" in err.value.message
    assert err.value.params == ("vm", uuid, "place lock")
    assert Ledger(path).reservations() == [] and session.xenapi.VM.get_other_config(ref) == {}  # nothing changed
    assert call("place", {"vm": uuid})["reserved"]  # the lock free again: placed as ever
