"""The owner key when the pool master's clock is stepped (an NTP correction).

The key's time is the master's (``host.get_servertime``), and it is judged on the same
clock: a key whose time is up is a dead caller's.  Stepped back an hour, that clock would
leave a key written before the step an hour more to run: one left by a caller that was
killed would hold the VM (every place, release, settle or policy change refused with
NUMA_VM_BUSY) for that hour.  It does not: a time further ahead than any caller's hold
(twice OWNER_TTL) counts as up, so after any step back a dead caller's key holds the VM
at most 2 * OWNER_TTL on the master's clock.  The price is a live caller's: its key, far
ahead of the stepped clock too (or behind one stepped forward), may be taken over; it sees
so at its next check and stops, writing nothing more (NUMA_VM_BUSY "taken over"), so two
callers never both go on writing the VM."""
import time

import pytest
import XenAPI

from xapi_numa.errors import VmBusy
from xapi_numa.ops.start_placement import OWNER_KEY, OWNER_TTL, owner_token, owning, still_owning
from xapi_numa.state.ledger import Ledger

T0 = 1_800_000_000.0  # the master's clock when the first caller claims the VM
HOUR = 3600.0


class _Master:
    """One VM's other_config (each call atomic, as under xapi's database lock) and the pool
    master's clock, which the test sets."""

    def __init__(self):
        self.config, self.now = {}, T0

    def get_other_config(self, vm):
        return dict(self.config)

    def add_to_other_config(self, vm, key, value):
        if key in self.config:
            raise XenAPI.Failure(["MAP_DUPLICATE_KEY", "VM", "other_config", key])
        self.config[key] = value

    def remove_from_other_config(self, vm, key):
        self.config.pop(key, None)

    def get_all(self):
        return ["OpaqueRef:pool"]

    def get_master(self, pool):
        return "OpaqueRef:master"

    def get_servertime(self, host):
        return time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime(self.now))


class _Session:
    def __init__(self, master):
        self.xenapi = type("X", (), {"VM": master, "pool": master, "host": master})()


def _another_hosts(ledger, session):
    """A caller on another host (it cannot see whether the holder's process lives: by time)."""
    return owning(ledger, session, "OpaqueRef:vm", "vm-uuid", gone=lambda holder: False)


@pytest.fixture
def pool(tmp_path):
    master = _Master()
    return master, _Session(master), Ledger(str(tmp_path / "a.db")), Ledger(str(tmp_path / "b.db"))


def _killed_holding(master):
    """A caller that claimed the VM at T0 on the master's clock and was killed: its key stays."""
    master.config[OWNER_KEY] = owner_token(T0)


def test_a_dead_callers_key_does_not_hold_the_vm_for_the_hour_the_clock_went_back(pool):
    master, session, ledger_a, ledger_b = pool
    _killed_holding(master)
    master.now = T0 + 5 - HOUR
    with _another_hosts(ledger_b, session) as token:
        assert master.config == {OWNER_KEY + ".1": token}


@pytest.mark.parametrize("back", [10.0, 60.0, OWNER_TTL - 1])
def test_after_a_step_back_a_dead_callers_key_holds_the_vm_at_most_twice_the_hold(pool, back):
    master, session, ledger_a, ledger_b = pool
    _killed_holding(master)
    stepped = T0 + 1 - back
    master.now = stepped
    with pytest.raises(VmBusy):  # (its time, T0 + OWNER_TTL, is not up yet on the stepped clock)
        with _another_hosts(ledger_b, session):
            pass
    master.now = T0 + OWNER_TTL + 1
    assert master.now - stepped <= 2 * OWNER_TTL
    with _another_hosts(ledger_b, session):
        pass


@pytest.mark.parametrize("step", [-HOUR, -2 * OWNER_TTL, 2 * OWNER_TTL, HOUR])
def test_a_live_caller_taken_over_after_a_step_stops_writing(pool, step):
    master, session, ledger_a, ledger_b = pool
    with _another_hosts(ledger_a, session) as first:
        master.now = T0 + 1 + step
        with _another_hosts(ledger_b, session) as second:
            with pytest.raises(VmBusy) as err:
                still_owning(session, "OpaqueRef:vm", "vm-uuid", first, gone=lambda holder: False)
            assert "taken over" in err.value.params
            still_owning(session, "OpaqueRef:vm", "vm-uuid", second, gone=lambda holder: False)  # no VmBusy
