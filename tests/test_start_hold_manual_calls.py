"""A place or release made by hand (xe host-call-plugin ... fn=place/release) while a pool
vm-start holds the VM.

The start holds the VM (other_config:numa_start_owner) from before it releases an earlier
place until VM.start_on is done; only another vm-start checked that hold.  A release by
hand between the start's place and its VM.start_on undid the start's place (its reservation
and boot pin), and the start then built the VM on no reservation, with its memory wherever
it fell; a place by hand there wrote its own over the start's.  Both are now refused with
NUMA_VM_BUSY naming the vm-start, changing nothing; ``release`` with ``force=true`` goes on
and its answer says whose hold it overrode.  The start's own calls carry its token
(``start_owner``), and pass; to a plugin of an earlier version, which knows no such
argument (and checks no hold), the start calls again without it.
"""
import XenAPI
import pytest

from test_owner_key_copies import start_at_start_on  # noqa: F401 - a fixture
from xapi_numa.backends import xapi
from xapi_numa.ops import pool as pool_ops
from xapi_numa.state.ledger import Ledger

G = 1 << 30


def _placer(server, ref):
    """The host whose place holds the VM's pin and reservation."""
    placed = server.vms[ref]["other_config"][xapi.PLACED_HOST_KEY]
    return next(h for h, rec in server.hosts.items() if rec["uuid"] == placed)


def _state(server, ref, host):
    return (dict(server.vms[ref]["other_config"]), dict(server.vms[ref]["VCPUs_params"]),
            [r.vm for r in Ledger(server.ledgers[host]).reservations()])


def _refused(session, host, fn, args):
    with pytest.raises(XenAPI.Failure) as err:
        session.xenapi.host.call_plugin(host, "numa", fn, args)
    return err.value.details


@pytest.mark.parametrize("fn", ["release", "place"])
def test_a_place_or_release_by_hand_during_a_pool_start_is_refused_and_the_start_keeps_its_place(
        start_at_start_on, fn):
    server, session, ref, finish = start_at_start_on
    uuid, host = server.vms[ref]["uuid"], _placer(server, ref)
    nodes = sorted(int(n) for n in server.vms[ref]["other_config"][xapi.PLACED_KEY].split(","))
    before = _state(server, ref, host)
    assert before[1].get("mask") and before[2] == [uuid]
    details = _refused(session, host, fn, {"vm": uuid})  # before: released (or placed again), answered ok
    assert details[0] == "NUMA_VM_BUSY" and "is being started by a pool vm-start (process " in details[1], details
    assert fn == "place" or "force=true" in details[1], details
    assert _state(server, ref, host) == before
    dry = session.xenapi.host.call_plugin(host, "numa", "place", {"vm": uuid, "dry_run": "true"})
    assert dry and _state(server, ref, host) == before  # a dry run changes nothing: still answered
    outcome = finish()
    assert "error" not in outcome, outcome
    pages = server.sims[host].node_pages(int(server.vms[ref]["domid"]))
    assert sorted(n for n, p in pages.items() if p) == nodes  # built with its place's pin


def test_a_forced_release_during_a_pool_start_goes_on_and_says_whose_hold_it_overrode(start_at_start_on):
    server, session, ref, finish = start_at_start_on
    uuid, host = server.vms[ref]["uuid"], _placer(server, ref)
    answer = pool_ops.plugin_result(session, host, "release", {"vm": uuid, "force": "true"})
    assert answer["boot_pin"] == "restored" and answer["released"] is True, answer
    assert answer["start_hold"].startswith("overridden: a pool vm-start (process "), answer
    assert "mask" not in server.vms[ref]["VCPUs_params"] and Ledger(server.ledgers[host]).reservations() == []
    assert "error" not in finish()  # (the admin's choice: it starts without its place)


def test_a_plugin_of_an_earlier_version_is_asked_again_without_the_starts_token(monkeypatch):
    """An earlier version's plugin refuses an argument it does not know, before anything (and
    checks no start's hold): the start's place or release is asked again without its token.
    Any other refusal is the answer."""
    calls = []

    def earlier_version(session, host, fn, args, seconds):
        calls.append(dict(args))
        if set(args) - {"vm", "dry_run", "force"}:
            field = sorted(set(args) - {"vm", "dry_run", "force"})[0]
            raise xapi.XapiError(["NUMA_INVALID_ARGUMENT", field, field + ": unknown argument (allowed: dry_run, vm)"])
        return {"placed": args["vm"]}
    monkeypatch.setattr(pool_ops, "host_call", earlier_version)
    held = {"vm": "u", "start_owner": "t"}
    assert pool_ops.plugin_result(None, "host", "place", held) == {"placed": "u"}
    assert calls == [held, {"vm": "u"}]
    with pytest.raises(xapi.XapiError) as err:
        pool_ops.plugin_result(None, "host", "place", {"vm": "u", "other": "x"})
    assert list(err.value.params[:1]) == ["other"]
