"""xapi refuses a VM a host cannot hold before any plugin is asked: assert_can_boot_here
(and VM.start_on) answer HOST_NOT_ENOUGH_FREE_MEMORY, or HOST_NOT_ENOUGH_PCPUS.  That
is the pool lacking capacity (NUMA_NO_CAPACITY), not the VM being unable to boot
anywhere for other reasons (NUMA_NO_HOST)."""
import pytest

from xapi_numa.errors import NoCapacity
from xapi_numa.ops import pool as pool_ops

G = 1 << 30


@pytest.mark.parametrize("vcpus, memory, refusal", [(2, 9 * G, "HOST_NOT_ENOUGH_FREE_MEMORY"),
                                                     (9, G, "HOST_NOT_ENOUGH_PCPUS")])
def test_a_vm_no_host_can_hold_is_a_lack_of_capacity(pool, vcpus, memory, refusal):
    server, session = pool
    ref, uuid = server.add_vm("too-big", vcpus, memory)
    for find in (lambda: pool_ops.candidates(session, uuid), lambda: pool_ops.vm_start(session, uuid)):
        with pytest.raises(NoCapacity) as err:
            find()
        assert err.value.code == "NUMA_NO_CAPACITY"
        assert "host0: " + refusal in err.value.message and "host2: " + refusal in err.value.message
    assert session.xenapi.VM.get_power_state(ref) == "Halted" and server.plugin_calls == 0


def test_hosts_filled_between_the_dry_run_and_the_start_are_a_lack_of_capacity(pool, monkeypatch):
    """Other starts took each chosen host's memory between its dry run and VM.start_on:
    xapi's HOST_NOT_ENOUGH_FREE_MEMORY there ranks the hosts again (the next asks xapi
    first, which refuses the full ones); the pool filled up: NUMA_NO_CAPACITY."""
    import types

    server, session = pool
    ref, uuid = server.add_vm("vm", 2, G)
    real_start_on = server.VM_start_on
    filled = []

    def start_on(self, session_id, vm, host, paused, force):
        sim = server.sims[host]
        for m in sim.node_memory():  # another VM takes the room first
            sim.create("other-{}-{}".format(len(filled), m.node), 1, m.free - (64 << 20), load="idle", auto_numa=False,
                       hard=sim.topology().cpus_of_nodes([m.node]))
        filled.append(host)
        return real_start_on(session_id, vm, host, paused, force)
    monkeypatch.setattr(server, "VM_start_on", types.MethodType(start_on, server))
    with pytest.raises(NoCapacity) as err:
        pool_ops.vm_start(session, uuid)
    assert err.value.code == "NUMA_NO_CAPACITY"
    assert sorted(filled) == sorted(server.hosts) and session.xenapi.VM.get_power_state(ref) == "Halted"
    assert all(not ledger_reservations(p) for p in server.ledgers.values())


def ledger_reservations(path):
    from xapi_numa.state.ledger import Ledger

    return Ledger(path).reservations()
