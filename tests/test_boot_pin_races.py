"""The boot pin against races, cut-short writes and odd records: place, release, settle
and xapi-numad's auto-settle through the loopback pool, as xapi runs them."""
import logging
import time

import pytest

from test_plugin import err, ok, run, xapi_refuses_once

from xapi_numa.backends import xapi
from xapi_numa.ops.start_placement import OWNER_TTL, owner_token_stale
from xapi_numa.state.ledger import Ledger

ADMIN = "0,1,2,3,4,5,6,7"


@pytest.fixture
def one(pool):
    server, session = pool
    return server, session, session.xenapi.host.get_all()[0], session._session


@pytest.fixture
def in_process(one, monkeypatch):
    """The plugin's functions called in this process (to interleave callers exactly)."""
    from xapi_numa.plugin import functions

    server, session, host, sid = one
    for key, value in server.plugin_env(host).items():
        monkeypatch.setenv(key, value)
    return lambda fn, args: functions.FUNCTIONS[fn](functions.Context(sid), args)


def test_a_release_between_places_first_read_and_its_hold_does_not_lose_the_admins_mask(one, in_process,
                                                                                        monkeypatch):
    """place read the record, then waited for the VM while a release ran: it pinned from
    that stale record, believed the admin's mask already saved, and saved nothing; the
    next release left the VM pinned to the boot node for good."""
    server, session, host, sid = one
    ref, uuid = server.add_vm("vm", 2, 1 << 30, vcpus_params={"mask": ADMIN})
    ok(run(server, host, sid, "place", {"vm": uuid}))
    real, reads = xapi.vm_record, []

    def release_meanwhile(session_, vm):
        record = real(session_, vm)
        if not reads:
            ok(run(server, host, sid, "release", {"vm": uuid}))  # done before place holds the VM
        reads.append(record)
        return record
    monkeypatch.setattr(xapi, "vm_record", release_meanwhile)
    in_process("place", {"vm": uuid})
    monkeypatch.setattr(xapi, "vm_record", real)
    assert session.xenapi.VM.get_other_config(ref)["numa_saved_mask"] == ADMIN
    assert ok(run(server, host, sid, "release", {"vm": uuid}))["boot_pin"] == "restored"
    assert session.xenapi.VM.get_VCPUs_params(ref) == {"mask": ADMIN}
    assert session.xenapi.VM.get_other_config(ref) == {}


def test_a_restore_cut_short_leaves_a_state_the_next_place_and_release_read_right(one):
    """The saved mask goes last: a restore cut short before it leaves the admin's mask in
    place and a saved copy beside no pin key, which a later place must not take for the
    admin's (the admin may have changed the mask since)."""
    server, session, host, sid = one
    ref, uuid = server.add_vm("vm", 2, 1 << 30, vcpus_params={"mask": ADMIN})
    ok(run(server, host, sid, "place", {"vm": uuid}))
    with xapi_refuses_once(server, "VM_remove_from_other_config", key="numa_saved_mask"):
        assert err(run(server, host, sid, "release", {"vm": uuid}))[0] == "OTHER_OPERATION_IN_PROGRESS"
    assert session.xenapi.VM.get_VCPUs_params(ref) == {"mask": ADMIN}  # the mask went back first
    assert set(session.xenapi.VM.get_other_config(ref)) == {"numa_saved_mask"}
    session.xenapi.VM.remove_from_VCPUs_params(ref, "mask")
    session.xenapi.VM.add_to_VCPUs_params(ref, "mask", "4,5")  # the admin's new mask
    assert ok(run(server, host, sid, "place", {"vm": uuid}))["nodes"] == [1]
    assert ok(run(server, host, sid, "release", {"vm": uuid}))["boot_pin"] == "restored"
    assert session.xenapi.VM.get_VCPUs_params(ref) == {"mask": "4,5"}
    assert session.xenapi.VM.get_other_config(ref) == {}


def _settler(server, host, session, clock):
    from xapi_numa.ops.settle import settle
    from xapi_numa.ops.xapi_link import PlacedSettler, XapiLink

    sim, ledger = server.sims[host], Ledger(server.ledgers[host])
    link = XapiLink(lambda: session, clock)
    return PlacedSettler(link, lambda s, uuid: settle(sim, s, ledger, uuid),
                         lambda: [(d.uuid, d.domid) for d in sim.domains()], clock)


def test_a_pin_key_beside_no_saved_mask_is_settled_inside_the_admins_mask_and_cleared(one):
    """An older version's record, or one edited by hand: settle used to free the vCPUs of
    the admin's mask (hard "all") and keep the pin key, so xapi-numad settled it again
    at every cycle."""
    server, session, host, sid = one
    hu = session.xenapi.host.get_uuid(host)
    ref, uuid = server.add_vm("half", 2, 512 << 20, domain_type="pvh", vcpus_params={"mask": "4,5"},
                              other_config={"numa_placed_nodes": "1", "numa_placed_host": hu})
    session.xenapi.VM.start_on(ref, host, False, False)
    settled = ok(run(server, host, sid, "settle", {"vm": uuid}))
    assert settled["hard"] == "4-5"
    assert session.xenapi.VM.get_other_config(ref) == {} and session.xenapi.VM.get_VCPUs_params(ref) == {"mask": "4,5"}
    assert _settler(server, host, session, time.monotonic)() == []


def test_a_bad_stored_policy_is_settled_with_the_default_and_said_and_the_others_are_settled(one, caplog):
    """One VM whose numa_mode was mistyped after place: settle refused before it undid the
    boot pin, and xapi-numad's auto-settle stopped at it, every cycle, for every VM."""
    server, session, host, sid = one
    vms = []
    for i in range(3):
        ref, uuid = server.add_vm("v{}".format(i), 1, 256 << 20, domain_type="pvh")
        ok(run(server, host, sid, "place", {"vm": uuid}))
        vms.append((ref, uuid))
    session.xenapi.VM.add_to_other_config(vms[0][0], "numa_mode", "stirct")
    for ref, _ in vms:
        session.xenapi.VM.start_on(ref, host, False, False)
    settled = ok(run(server, host, sid, "settle", {"vm": vms[0][1]}))
    assert "numa_mode" in settled["policy_error"] and settled["hard"] == "all"
    assert "mask" not in session.xenapi.VM.get_VCPUs_params(vms[0][0])
    assert sorted(_settler(server, host, session, time.monotonic)()) == sorted(u for _, u in vms[1:])
    for ref, _ in vms:
        assert "mask" not in session.xenapi.VM.get_VCPUs_params(ref)


def test_auto_settle_reads_only_the_records_of_new_domains_and_waits_for_a_start_to_finish(one):
    """Every host's xapi-numad read the whole pool's VM records every cycle."""
    server, session, host, sid = one
    now = [0.0]
    settler = _settler(server, host, session, lambda: now[0])
    ref, uuid = server.add_vm("vm", 2, 512 << 20, domain_type="pvh")
    ok(run(server, host, sid, "place", {"vm": uuid}))
    server.calls.clear()
    for _ in range(10):
        assert settler() == []
    assert server.calls["VM.get_all_records"] == 0
    assert server.calls["VM.get_by_uuid"] == 1  # dom0's, once (xapi of this loopback does not list it)
    # the domain is built while xapi still says Halted: looked at again, after a back-off
    domid = server.sims[host].create("vm", 2, 512 << 20, uuid=uuid, auto_numa=False)
    assert settler() == [] and server.calls["VM.get_record"] == 1
    assert settler() == [] and server.calls["VM.get_record"] == 1  # not before its back-off
    with server.lock:
        record = next(r for r in server.vms.values() if r["uuid"] == uuid)
        record.update(power_state="Running", resident_on=host, domid=str(domid))
    now[0] += 1.0
    assert settler() == [uuid]
    assert "numa_placed_nodes" not in session.xenapi.VM.get_other_config(ref)
    now[0] += 100.0
    calls = sum(server.calls.values())
    assert settler() == [] and sum(server.calls.values()) == calls  # settled once, then never looked at again
    assert server.calls["VM.get_all_records"] == 0


def _placed_and_started(server, session, host, sid):
    """A VM placed and started on ``host``: its UUID."""
    ref, uuid = server.add_vm("vm", 2, 512 << 20, domain_type="pvh")
    ok(run(server, host, sid, "place", {"vm": uuid}))
    session.xenapi.VM.start_on(ref, host, False, False)
    return uuid


def _failing_settler(server, session, host, now, failures: int, error):
    """An auto-settler whose settle raises ``error`` ``failures`` times, then succeeds; and its tries."""
    from xapi_numa.ops.xapi_link import PlacedSettler, XapiLink

    sim, tries = server.sims[host], []

    def settle_one(s, u):
        tries.append(u)
        if len(tries) <= failures:
            raise error
        return {}
    return PlacedSettler(XapiLink(lambda: session, lambda: now[0]), settle_one,
                         lambda: [(d.uuid, d.domid) for d in sim.domains()], lambda: now[0]), tries


def test_a_failing_settle_is_said_once_and_tried_again_later(one, caplog):
    from xapi_numa.errors import StateError

    server, session, host, sid = one
    uuid, now = _placed_and_started(server, session, host, sid), [0.0]
    settler, tries = _failing_settler(server, session, host, now, 2, StateError("cannot write the state database"))
    caplog.set_level(logging.INFO, logger="xapi-numad")
    assert settler() == [] and settler() == []  # the second is before its back-off
    now[0] += 1.0
    assert settler() == []
    now[0] += 2.0
    assert settler() == [uuid] and len(tries) == 3
    assert [r.getMessage() for r in caplog.records].count("settle failed") == 1


def test_a_settle_behind_a_busy_vm_is_no_warning(one, caplog):
    """xapi-numad's auto-settle takes the VM only if no other caller holds it (a pool start's
    own settle, say): found busy, it looks again later, and says so at info level, not as a
    failure an admin is warned of."""
    from xapi_numa.errors import VmBusy

    server, session, host, sid = one
    uuid, now = _placed_and_started(server, session, host, sid), [0.0]
    busy = VmBusy("VM {}: did not wait for the place lock".format(uuid), ("vm", uuid, "place lock"))
    settler, tries = _failing_settler(server, session, host, now, 1, busy)
    caplog.set_level(logging.INFO, logger="xapi-numad")
    assert settler() == []
    now[0] += 1.0
    assert settler() == [uuid] and len(tries) == 2
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.INFO, "settle deferred: the VM is busy") in said
    assert not [m for level, m in said if level >= logging.WARNING], said


def test_release_of_a_placed_vm_that_already_runs_keeps_the_pin_for_settle(one):
    """The start happened: undoing the pin in xapi's record left the domain pinned to the
    boot nodes with nothing that would ever settle it."""
    server, session, host, sid = one
    ref, uuid = server.add_vm("vm", 2, 1 << 30, domain_type="pvh")
    ok(run(server, host, sid, "place", {"vm": uuid}))
    session.xenapi.VM.start_on(ref, host, False, False)
    answer = ok(run(server, host, sid, "release", {"vm": uuid}))
    assert answer["boot_pin"] == "kept" and answer["running_on"] == session.xenapi.host.get_uuid(host)
    assert _settler(server, host, session, time.monotonic)() == [uuid]
    rows = ok(run(server, host, sid, "vcpus", {"vm": uuid}))
    assert {r["hard"] for r in rows} == {"all"}


def test_owner_tokens_whose_time_never_comes_are_stale():
    now = 1000.0
    assert not owner_token_stale("a/{:.0f}".format(now + OWNER_TTL), now)
    for expires in ("nan", "inf", "1e400", "{:.0f}".format(now + 3 * OWNER_TTL), "{:.0f}".format(now - 1)):
        assert owner_token_stale("a/" + expires, now), expires


def test_a_host_whose_plugin_cannot_open_its_hypervisor_is_passed_over(one, monkeypatch):
    from xapi_numa.ops import pool, pool_queries

    server, session, host, sid = one
    real = server.plugin_env
    monkeypatch.setattr(server, "plugin_env", lambda h: dict(real(h), XAPI_NUMA_BACKEND="xen") if h == host
                        else real(h))
    assert err(run(server, host, sid, "host_topology", {}))[0] == "NUMA_BACKEND_UNAVAILABLE"
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    started = pool.vm_start(session, uuid)
    assert started["host"] != session.xenapi.host.get_name_label(host)
    answers = pool_queries.per_host(session, "host_topology")
    assert answers[session.xenapi.host.get_uuid(host)]["error"][0] == "NUMA_BACKEND_UNAVAILABLE"


@pytest.mark.parametrize("at", ["place", "start"])
def test_a_pool_start_interrupted_after_place_leaves_neither_pin_nor_reservation(one, monkeypatch, at):
    """Ctrl-C during `xapi-numa --pool vm-start` between place and VM.start_on left the
    halted VM boot-pinned (a plain start later would boot it pinned) and the placing
    host's reservation behind."""
    from xapi_numa.ops import pool

    server, session, host, sid = one
    ref, uuid = server.add_vm("vm", 2, 1 << 30, vcpus_params={"mask": ADMIN})
    real_result, real_call = pool.plugin_result, xapi.call

    def interrupted_place(session_, host_, fn, args, *seconds):
        answer = real_result(session_, host_, fn, args, *seconds)
        if fn == "place" and args.get("dry_run") is None:
            raise KeyboardInterrupt  # the host placed it; the answer never arrived
        return answer

    def interrupted_start(method, *args):
        if "VM.start_on" in repr(method):
            raise KeyboardInterrupt
        return real_call(method, *args)
    if at == "place":
        monkeypatch.setattr(pool, "plugin_result", interrupted_place)
    else:
        monkeypatch.setattr(xapi, "call", interrupted_start)
    with pytest.raises(KeyboardInterrupt):
        pool.vm_start(session, uuid)
    monkeypatch.undo()
    assert session.xenapi.VM.get_power_state(ref) == "Halted"
    assert session.xenapi.VM.get_VCPUs_params(ref) == {"mask": ADMIN}
    assert session.xenapi.VM.get_other_config(ref) == {}
    assert all(Ledger(path).reservations() == [] for path in server.ledgers.values())


def test_a_settle_that_fails_midway_is_done_again_by_the_next_look(one, monkeypatch, caplog):
    """The pin keys go last: a settle that failed after undoing them (a hypervisor read
    refused once) was never looked at again, and the VM stayed hard-pinned."""
    from xapi_numa.errors import HypervisorError

    server, session, host, sid = one
    ref, uuid = server.add_vm("vm", 2, 512 << 20, domain_type="pvh")
    ok(run(server, host, sid, "place", {"vm": uuid}))
    session.xenapi.VM.start_on(ref, host, False, False)
    sim, now = server.sims[host], [0.0]
    real, calls = type(sim).node_pages, []

    def refused_once(self, domid):
        calls.append(domid)
        if len(calls) == 1:
            raise HypervisorError(16, "pages per node")  # EBUSY
        return real(self, domid)
    monkeypatch.setattr(type(sim), "node_pages", refused_once)
    settler = _settler(server, host, session, lambda: now[0])
    assert settler() == []
    assert "numa_placed_nodes" in session.xenapi.VM.get_other_config(ref)  # still there to be done again
    now[0] += 1.0
    assert settler() == [uuid]
    assert session.xenapi.VM.get_other_config(ref) == {} and "mask" not in session.xenapi.VM.get_VCPUs_params(ref)
    assert {r["hard"] for r in ok(run(server, host, sid, "vcpus", {"vm": uuid}))} == {"all"}


def test_auto_settle_says_when_a_stored_policy_is_invalid_and_survives_any_failure(one, caplog):
    from xapi_numa.ops.xapi_link import PlacedSettler, XapiLink

    server, session, host, sid = one
    ref, uuid = server.add_vm("vm", 1, 256 << 20, domain_type="pvh")
    ok(run(server, host, sid, "place", {"vm": uuid}))
    session.xenapi.VM.add_to_other_config(ref, "numa_mode", "stirct")
    session.xenapi.VM.start_on(ref, host, False, False)
    caplog.set_level(logging.INFO, logger="xapi-numad")
    assert _settler(server, host, session, time.monotonic)() == [uuid]
    warned = [r for r in caplog.records if r.getMessage().startswith("settled with the default policy")]
    assert len(warned) == 1 and "numa_mode" in warned[0].fields["error"]
    sim = server.sims[host]

    def broken(s, u):
        raise KeyError("power_state")  # a bug, not a NumaError: still one VM's failure only
    settler = PlacedSettler(XapiLink(lambda: session, time.monotonic), broken,
                            lambda: [(d.uuid, d.domid) for d in sim.domains()], time.monotonic)
    ref2, uuid2 = server.add_vm("vm2", 1, 256 << 20, domain_type="pvh")
    ok(run(server, host, sid, "place", {"vm": uuid2}))
    session.xenapi.VM.start_on(ref2, host, False, False)
    assert settler() == []  # logged, backed off, no exception


def test_a_pool_start_after_a_place_on_another_host_releases_that_one_first(one):
    """The pool's start placed afresh on its best host, whose place was refused because
    another host held the VM's pin: the start failed, though any host could take it."""
    from xapi_numa.ops import pool

    server, session, host, sid = one
    hosts = session.xenapi.host.get_all()
    last = max(hosts, key=lambda h: session.xenapi.host.get_name_label(h))
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    ok(run(server, last, sid, "place", {"vm": uuid}))
    pool.vm_start(session, uuid)
    assert session.xenapi.VM.get_power_state(ref) == "Running"
    assert all(Ledger(path).reservations() == [] for path in server.ledgers.values())  # none left behind


def test_release_while_xapi_starts_the_vm_keeps_the_pin_and_the_reservation(one):
    """An interrupted pool start released while xapi's start task still ran: the domain
    was built pinned and nothing would settle it; and with the reservation dropped
    before the build claimed it, another place took the same memory."""
    server, session, host, sid = one
    ref, uuid = server.add_vm("vm", 2, 1 << 30, vcpus_params={"mask": ADMIN})
    ok(run(server, host, sid, "place", {"vm": uuid}))
    with server.lock:
        server.vms[ref]["current_operations"] = {"OpaqueRef:task": "start_on"}
    answer = ok(run(server, host, sid, "release", {"vm": uuid}))
    assert answer["boot_pin"] == "kept" and answer["released"] is False
    assert "numa_placed_nodes" in session.xenapi.VM.get_other_config(ref)
    assert [r.vm for r in Ledger(server.ledgers[host]).reservations()] == [uuid]
    # xapi starting it on another host: this host's reservation is for nothing, it goes;
    # the pin that build reads stays (its settling turns it into the policy's affinity)
    other = next(h for h in session.xenapi.host.get_all() if h != host)
    with server.lock:
        server.vms[ref]["scheduled_to_be_resident_on"] = other
    answer = ok(run(server, host, sid, "release", {"vm": uuid}))
    assert answer["released"] is True and answer["boot_pin"] == "kept", answer
    assert Ledger(server.ledgers[host]).reservations() == []
    assert "numa_placed_nodes" in session.xenapi.VM.get_other_config(ref)


def test_the_daemon_reads_this_hosts_guest_mask(one, monkeypatch):
    """xapi-numad judges admin pins against the host's guest mask: it reads it with the
    VMs' records, from this host's own record."""
    from xapi_numa.ops.xapi_link import XapiLink

    server, session, host, sid = one
    monkeypatch.setenv("XAPI_NUMA_INVENTORY", server.inventories[host])
    now = [0.0]
    link = XapiLink(lambda: session, lambda: now[0])
    assert link.guest_cpus() is None
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "1,2,3,4,5,6,7"})
    now[0] += 31.0  # read again with the records
    assert link.guest_cpus() == frozenset(range(1, 8))


@pytest.mark.parametrize("failure", ["refused", "away"])
def test_a_guest_mask_read_that_fails_keeps_the_last_mask(one, monkeypatch, failure):
    """xapi refusing, or gone, between the records and the mask: the mask was dropped, and
    every VM settled inside it looked pinned by its admin for 30 s."""
    from xapi_numa.backends import xapi
    from xapi_numa.ops.xapi_link import XapiLink

    server, session, host, sid = one
    monkeypatch.setenv("XAPI_NUMA_INVENTORY", server.inventories[host])
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "1,2,3,4,5,6,7"})
    now = [0.0]
    # its own sessions: one it finds broken it logs out
    link = XapiLink(lambda: xapi.login(xapi.Credentials(server.url, "root", "xenroot"), insecure=True),
                    lambda: now[0])
    assert link.guest_cpus() == frozenset(range(1, 8))
    real = xapi.host_guest_cpus

    def failing(session, host_uuid):
        if failure == "away":
            raise ConnectionRefusedError(111, "Connection refused")
        raise xapi.XapiError(["INTERNAL_ERROR", "database busy"])
    monkeypatch.setattr(xapi, "host_guest_cpus", failing)
    now[0] += 31.0
    assert link.guest_cpus() == frozenset(range(1, 8))
    monkeypatch.setattr(xapi, "host_guest_cpus", real)
    session.xenapi.host.set_guest_VCPUs_params(host, {})
    now[0] += 120.0  # past the records' refresh and any back-off
    assert link.guest_cpus() is None  # a host that has no mask now: none


def test_an_on_off_key_that_is_neither_counts_as_off_and_is_said_once(one, monkeypatch, caplog):
    """other_config:numa_rebalance=flase (a typo of false) counted as on, silently, while a
    bad numa_mode is reported (found by review): now the VM is left alone and the key and
    value are logged once."""
    import logging

    from xapi_numa.ops.xapi_link import XapiLink

    server, session, host, sid = one
    ref, uuid = server.add_vm("typo", 1, 64 << 20, other_config={"numa_rebalance": "flase",
                                                                 "numa_backend_affinity": "On"})
    _, fine = server.add_vm("fine", 1, 64 << 20, other_config={"numa_rebalance": "TRUE"})
    now = [0.0]
    link = XapiLink(lambda: session, lambda: now[0])
    with caplog.at_level(logging.WARNING):
        assert link.rebalance_opted_out(uuid) and not link.backend_affinity_off(uuid)
        assert not link.rebalance_opted_out(fine)
        now[0] += 31.0
        assert link.rebalance_opted_out(uuid)  # read again: said once
    said = [r for r in caplog.records if "neither" in r.getMessage()]
    assert len(said) == 1 and said[0].fields["key"] == "other_config:numa_rebalance", said
    assert said[0].fields["value"] == "flase" and said[0].fields["vm"] == uuid


def test_a_refused_guest_mask_read_is_no_answer_not_no_mask(monkeypatch):
    """guest_cpus_of took xapi refusing the read for "no mask", so a move by hand went
    anywhere; a mask that cannot be read was "no mask" too (review 21): both reach the
    caller of the one reader, host_mask."""
    from xapi_numa.backends import xapi
    from xapi_numa.errors import InvalidArgument
    from xapi_numa.ops.place_request import host_mask

    def refused(session, host_uuid):
        raise xapi.XapiError(["INTERNAL_ERROR", "database busy"])

    def unreadable(session, host_uuid):
        raise InvalidArgument("guest_VCPUs_params:mask", "'x'", "CPU ids")
    monkeypatch.setattr(xapi, "host_guest_cpus", refused)
    with pytest.raises(xapi.XapiError):
        host_mask(object(), "host")
    monkeypatch.setattr(xapi, "host_guest_cpus", unreadable)
    with pytest.raises(InvalidArgument):
        host_mask(object(), "host")


def test_auto_settle_leaves_a_domain_migrating_in_to_the_host_xapi_says_it_runs_on(one, monkeypatch, tmp_path):
    """A live migration into this host makes the domain here while xapi still says the VM
    runs on the source: settled then, its pin keys went, and a migration that failed left
    the VM hard-pinned over there with nothing to settle it (review 15k).  It is settled
    once xapi says it is this host's."""
    server, session, host, sid = one
    others = [h for h in session.xenapi.host.get_all() if h != host]
    if not others:
        pytest.skip("the loopback pool has one host")
    inventory = tmp_path / "xensource-inventory"
    inventory.write_text("INSTALLATION_UUID='{}'\n".format(session.xenapi.host.get_uuid(host)))
    monkeypatch.setenv("XAPI_NUMA_INVENTORY", str(inventory))
    now = [0.0]
    settler = _settler(server, host, session, lambda: now[0])
    ref, uuid = server.add_vm("vm", 2, 512 << 20, domain_type="pvh")
    ok(run(server, host, sid, "place", {"vm": uuid}))
    domid = server.sims[host].create("vm", 2, 512 << 20, uuid=uuid, auto_numa=False)
    with server.lock:  # running, as xapi says, on the other host: the migration's source
        record = next(r for r in server.vms.values() if r["uuid"] == uuid)
        record.update(power_state="Running", resident_on=others[0], domid="7")
    assert settler() == []
    assert "numa_placed_nodes" in session.xenapi.VM.get_other_config(ref)
    with server.lock:  # the migration done: this host's
        record.update(resident_on=host, domid=str(domid))
    now[0] += 100.0
    assert settler() == [uuid]
    assert "numa_placed_nodes" not in session.xenapi.VM.get_other_config(ref)
