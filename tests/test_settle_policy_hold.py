"""Settle and set_policy hold the VM (its owner key) as place and release do.

* settle read the VM's record and reservation, then undid the boot pin, holding
  nothing: a VM that stopped meanwhile and was placed again had its new pin wiped
  (and the new reservation released) by the settle of its old domain.  Now settle
  holds the VM: the new place waits for it (or is refused), and a settle slow past
  its hold writes nothing more once another caller took the VM over.
* set_policy held the key but never checked it again: slow past its hold and taken
  over, it still wrote the policy under the new owner.
"""
import pytest

from test_place_takeover import _take_over
from xapi_numa.backends import xapi, xapi_owner_key
from xapi_numa.core import reservation, settling
from xapi_numa.errors import NumaError, VmBusy
from xapi_numa.ops import start_placement
from xapi_numa.state.ledger import Ledger

G = 1 << 30
ADMIN = "0,1,2,3,4,5,6,7"
NEW_PIN = {"numa_saved_mask": "-", "numa_placed_nodes": "1", "numa_placed_host": "another-host"}


@pytest.fixture
def running_on_x(pool, monkeypatch):
    """A VM placed on the pool's first host (X) and started there with its boot pin; the
    plugin's functions of X, called in this process (to interleave callers exactly)."""
    from xapi_numa.plugin import functions

    server, session = pool
    x = session.xenapi.host.get_all()[0]
    for key, value in server.plugin_env(x).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(start_placement, "PLACE_LOCK_WAIT", 0.2)
    ref, uuid = server.add_vm("web", 2, G, vcpus_params={"mask": ADMIN})
    call = lambda fn, args: functions.FUNCTIONS[fn](functions.Context(session._session), args)  # noqa: E731
    call("place", {"vm": uuid})
    session.xenapi.VM.start_on(ref, x, False, False)
    return server, session, Ledger(server.ledgers[x]), ref, uuid, call


def _pin(session, ref) -> dict:
    config = session.xenapi.VM.get_other_config(ref)
    return {key: config[key] for key in NEW_PIN if key in config}


def test_a_place_after_the_vm_stopped_during_its_settle_keeps_its_pin_and_reservation(running_on_x, monkeypatch):
    """Settle has read the running VM; the VM stops and is placed again; settle goes on."""
    server, session, ledger, ref, uuid, call = running_on_x
    real, box = settling.plan, {}

    def stop_and_place_meanwhile(*args, **kwargs):
        answer = real(*args, **kwargs)
        if not box:
            session.xenapi.VM.hard_shutdown(ref)
            try:
                box["place"] = call("place", {"vm": uuid})
            except NumaError as err:
                box["place"] = err
            box["pin"] = _pin(session, ref)
        return answer
    monkeypatch.setattr(settling, "plan", stop_and_place_meanwhile)
    call("settle", {"vm": uuid})
    monkeypatch.setattr(settling, "plan", real)
    if not isinstance(box["place"], NumaError):  # the new place answered: its pin and reservation are the VM's
        assert box["pin"] and _pin(session, ref) == box["pin"]
        assert session.xenapi.VM.get_VCPUs_params(ref)["mask"] != ADMIN
        assert [r.vm for r in ledger.reservations()] == [uuid]
    # it waited for the settle, then was refused: nothing of its own is left behind
    assert isinstance(box["place"], VmBusy) and box["place"].params == ("vm", uuid, "place lock")
    assert _pin(session, ref) == {} and ledger.reservations() == []
    assert session.xenapi.VM.get_VCPUs_params(ref) == {"mask": ADMIN}
    assert call("place", {"vm": uuid})["reserved"]  # placed again once the settle is done


@pytest.mark.parametrize("when", ["before its first write", "between restore's read and its writes"])
def test_a_settle_slow_past_its_hold_leaves_the_pin_of_the_caller_that_took_the_vm(running_on_x, monkeypatch,
                                                                                    when):
    server, session, ledger, ref, uuid, call = running_on_x
    monkeypatch.setattr(start_placement, "OWNER_TTL", -5.0)  # past its lease as soon as it holds the VM
    reads = []
    if when == "before its first write":
        real = reservation.plan_settled_release

        def takeover_meanwhile(*args):
            _take_over(session, ref, NEW_PIN)
            return real(*args)
        monkeypatch.setattr(reservation, "plan_settled_release", takeover_meanwhile)
    else:
        real = xapi.vm_record

        def takeover_meanwhile(*args):
            record = real(*args)
            reads.append(record)
            if len(reads) == 2:  # restore_boot's own read of the record
                _take_over(session, ref, NEW_PIN)
            return record
        monkeypatch.setattr(xapi, "vm_record", takeover_meanwhile)
    with pytest.raises(VmBusy) as err:
        call("settle", {"vm": uuid})
    assert err.value.params == ("vm", uuid, "taken over")
    assert _pin(session, ref) == NEW_PIN and session.xenapi.VM.get_VCPUs_params(ref) == {"mask": "4,5,6,7"}
    assert start_placement.OWNER_KEY + ".1" in session.xenapi.VM.get_other_config(ref)  # the new owner's, kept


def test_set_policy_taken_over_before_it_writes_writes_nothing(running_on_x, monkeypatch):
    """set_policy holds the VM, then is slow past its hold: a place takes the VM over."""
    server, session, ledger, ref, uuid, call = running_on_x
    monkeypatch.setattr(start_placement, "OWNER_TTL", -5.0)
    real = xapi_owner_key.claim_other_config_key

    def takeover_after_the_claim(*args, **kwargs):
        owns = real(*args, **kwargs)
        _take_over(session, ref)
        return owns
    monkeypatch.setattr(xapi_owner_key, "claim_other_config_key", takeover_after_the_claim)
    with pytest.raises(VmBusy) as err:
        call("set_policy", {"vm": uuid, "mode": "strict", "nodes": "1"})
    assert err.value.params == ("vm", uuid, "taken over")
    config = session.xenapi.VM.get_other_config(ref)
    assert not {"numa_mode", "numa_nodes", "numa_on_exhaust"} & set(config)
    assert start_placement.OWNER_KEY + ".1" in config


def test_set_policy_still_stores_the_policy_while_it_holds_the_vm(running_on_x):
    server, session, ledger, ref, uuid, call = running_on_x
    assert call("set_policy", {"vm": uuid, "mode": "strict", "nodes": "1"})["mode"] == "strict"
    config = session.xenapi.VM.get_other_config(ref)
    assert config["numa_mode"] == "strict" and config["numa_nodes"] == "1"
    assert not [k for k in config if k.startswith(start_placement.OWNER_KEY)]
