"""xapi's failures about the VM or the caller end a pool start; they are not one host's refusal.

``candidates`` and ``vm_start`` took any xapi failure that was not the plugin's own as the
host's: a VM deleted during the start (HANDLE_INVALID VM) was "no host can take the VM"
listing the same HANDLE_INVALID for every host, and a VM started by someone else between
the place and VM.start_on (VM_BAD_POWER_STATE) sent the start round the other hosts, which
ended in an unrelated NUMA_INVALID_ARGUMENT from a place of a running VM (review 22).  Now
such a failure ends the start with xapi's own code, no other host asked.
"""
import pytest

from xapi_loopback import Failure

from xapi_numa.backends import xapi
from xapi_numa.ops import pool as pool_ops

G = 1 << 30


def test_a_vm_deleted_during_the_start_is_xapis_handle_invalid_asking_no_other_host(pool, monkeypatch):
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G)
    real = server.VM_assert_can_boot_here

    def deleted(session_id, vm, host):
        server.vms.pop(vm, None)
        return real(session_id, vm, host)
    monkeypatch.setattr(server, "VM_assert_can_boot_here", deleted)
    with pytest.raises(xapi.XapiError) as err:
        pool_ops.vm_start(session, uuid)
    assert [err.value.code, *err.value.params] == ["HANDLE_INVALID", "VM", ref]
    assert server.calls["VM.assert_can_boot_here"] == 1


def test_an_expired_session_is_not_every_hosts_refusal(pool, monkeypatch):
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G)

    def refuse(session_id, vm, host):  # (the client logs in again on it: here it gave up)
        raise Failure("SESSION_INVALID", session_id)
    monkeypatch.setattr(server, "VM_assert_can_boot_here", refuse)
    with pytest.raises(xapi.XapiError) as err:
        pool_ops.candidates(session, uuid)
    assert err.value.code == "SESSION_INVALID"


def test_a_vm_started_by_someone_else_meanwhile_ends_the_start_with_vm_bad_power_state(pool, monkeypatch):
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G)
    real = server.VM_start_on

    def started_elsewhere_first(session_id, vm, host, paused, force):
        other = [h for h in server.hosts if h != host][0]
        real(session_id, vm, other, False, False)  # an xe vm-start, just before ours
        return real(session_id, vm, host, paused, force)
    monkeypatch.setattr(server, "VM_start_on", started_elsewhere_first)
    with pytest.raises(xapi.XapiError) as err:
        pool_ops.vm_start(session, uuid)
    assert [err.value.code, *err.value.params] == ["VM_BAD_POWER_STATE", ref, "halted", "running"]
    assert "no other host is tried" in err.value.message, err.value.message
    assert server.calls["VM.start_on"] == 1
    assert server.vms[ref]["power_state"] == "Running"  # the other start's
