"""vm-start of a VM placed earlier by a host that is now down starts it elsewhere.

vm-start releases an earlier place of the VM on its own host first; with that host down
(xapi answers HOST_OFFLINE) the release failed quietly, and the pin it left refused a place
on every other host (NUMA_VM_BUSY "placed by host ..."): the VM could not be started
through the pool until someone ran the plugin's release with force=true by hand (review
22).  vm-start now undoes that pin from the pool master (force=true) when xapi says the
placing host is offline, and starts the VM on a live host."""
import json

import pytest

from xapi_loopback import Failure
from xapi_numa.errors import NumaError
from xapi_numa.ops import pool as pool_ops

G = 1 << 30


def _placed_by(server, session, index):
    host = list(server.hosts)[index]
    ref, uuid = server.add_vm("web", 2, G)
    json.loads(session.xenapi.host.call_plugin(host, "numa", "place", {"vm": uuid}))
    assert server.vms[ref]["other_config"]["numa_placed_host"] == server.hosts[host]["uuid"]
    return host, ref, uuid


def test_a_vm_placed_by_a_host_now_down_starts_on_a_live_one(pool):
    server, session = pool
    dead, ref, uuid = _placed_by(server, session, 1)
    server.offline.add(dead)
    started = pool_ops.vm_start(session, uuid)
    assert started["host_uuid"] != server.hosts[dead]["uuid"] and started["settle_error"] is None
    assert server.vms[ref]["power_state"] == "Running"
    assert "numa_placed_host" not in server.vms[ref]["other_config"]


def test_a_placing_host_that_is_up_but_not_answering_keeps_its_pin(pool, monkeypatch):
    server, session = pool
    placer, ref, uuid = _placed_by(server, session, 1)
    real = server.host_call_plugin

    def missing(session_id, host, plugin, fn, args):
        if host == placer:
            raise Failure("XENAPI_MISSING_PLUGIN", plugin)
        return real(session_id, host, plugin, fn, args)
    monkeypatch.setattr(server, "host_call_plugin", missing)
    with pytest.raises(NumaError) as err:  # (the place's refusal, said in vm-start's words: a VmBusy of its own)
        pool_ops.vm_start(session, uuid)
    assert err.value.code == "NUMA_VM_BUSY"  # not xapi's word that it is down: its pin is not undone
    assert server.vms[ref]["other_config"]["numa_placed_host"] == server.hosts[placer]["uuid"]
