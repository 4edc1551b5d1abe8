"""The numa plugin through xapi's real convention: a subprocess, argv[1], stdout."""
import contextlib
import hashlib
import json
import os
import subprocess
import time

import pytest
from conftest import PLUGIN_DIR
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from xapi_numa.plugin import protocol as proto
from xapi_numa.ops import start_placement
from xapi_numa.ops.start_placement import OWNER_TTL, owner_token
from xapi_numa.plugin.functions import FUNCTIONS
from xapi_numa.state.ledger import Ledger

PLUGIN = os.path.join(PLUGIN_DIR, "numa")


# what xapi says of a plugin that crashed or answered what it cannot read
XAPI_PLUGIN_STATUSES = ("non-zero exit", "signal: ", "task stopped", "timeout", "failed to parse plugin output",
                        "fault")


def run(server, host, session, fn, args):
    """Run the plugin as xapi does (the loopback's runner, which reads its answer as xapi
    reads it); returns the result struct xapi's answer carries.  A plugin that crashed,
    or answered what xapi cannot read, fails the test."""
    from xapi_loopback import Failure

    try:
        return {"Status": "Success", "Value": server.run_plugin(host, session, fn, args)}
    except Failure as failure:
        details = failure.details
    assert details[0] != "INTERNAL_ERROR", details
    assert not (details[0] == proto.PLUGIN_FAILURE and details[1].startswith(XAPI_PLUGIN_STATUSES)), details
    return {"Status": "Failure", "ErrorDescription": details}


def ok(result):
    assert result["Status"] == "Success", result
    return json.loads(result["Value"])


def err(result):
    assert result["Status"] == "Failure", result
    return result["ErrorDescription"]


def test_host_topology(ctx):
    server, session, host, sid = ctx
    topo = ok(run(server, host, sid, "host_topology", {}))
    assert [n["cpus"] for n in topo["nodes"]] == ["0-3", "4-7"]
    assert topo["distances"] == [[10, 21], [21, 10]] and topo["scheduler"] == "credit2"
    assert {"memory_total", "memory_free", "memory_reserved", "memory_claimable"} <= set(topo["nodes"][0])
    assert topo["features"]["node_pages"] == "native"


def test_policy_round_trip_and_validation(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    assert ok(run(server, host, sid, "set_policy", {"vm": uuid, "mode": "preferred", "nodes": "1,0",
                                                    "on_exhaust": "fail"}))["nodes"] == "1,0"
    assert session.xenapi.VM.get_other_config(ref) == {"numa_mode": "preferred", "numa_nodes": "1,0",
                                                       "numa_on_exhaust": "fail"}
    assert ok(run(server, host, sid, "get_policy", {"vm": uuid}))["mode"] == "preferred"
    before = session.xenapi.VM.get_other_config(ref)
    for args, field in [({"vm": uuid, "mode": "loose"}, "mode"), ({"vm": uuid, "mode": "strict", "nodes": "7"}, "nodes"),
                        ({"vm": "not-a-uuid", "mode": "strict"}, "vm"), ({"vm": uuid}, "mode"),
                        ({"vm": uuid, "mode": "strict", "colour": "red"}, "colour"),
                        # given empty: refused, not taken for the default (best_effort, fallback)
                        ({"vm": uuid, "mode": ""}, "mode"), ({"vm": uuid, "mode": "strict", "on_exhaust": " "},
                                                              "on_exhaust")]:
        details = err(run(server, host, sid, "set_policy", args))
        assert details[:2] == ["NUMA_INVALID_ARGUMENT", field] and "allowed" in details[2]
    assert session.xenapi.VM.get_other_config(ref) == before  # nothing changed on failure
    details = err(run(server, host, sid, "get_policy", {"vm": "01234567-89ab-cdef-0123-456789abcdef"}))
    # the message names the field and what may be given instead
    assert details == ["NUMA_UNKNOWN_VM", "01234567-89ab-cdef-0123-456789abcdef",
                       "vm: no such VM or domain: 01234567-89ab-cdef-0123-456789abcdef (allowed: the UUID of a VM of "
                       "this pool (xe vm-list))"]


def test_place_settle_release(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 1 << 30, vcpus_params={"mask": "0,1,2,3,4,5,6,7", "weight": "512"})
    what_if = ok(run(server, host, sid, "place", {"vcpus": "2", "memory": "1G"}))
    assert len(what_if["nodes"]) == 1 and what_if["reserved"] is False
    details = err(run(server, host, sid, "place", {"vcpus": "2", "memory": "1G", "mode": ""}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "mode"] and "is empty" in details[2], details
    placed = ok(run(server, host, sid, "place", {"vm": uuid}))
    assert placed["reserved"] and len(placed["nodes"]) == 1
    node = placed["nodes"][0]
    assert session.xenapi.VM.get_VCPUs_params(ref)["mask"] == ",".join(str(c) for c in range(4 * node, 4 * node + 4))
    # vm_memory and settle want a running domain
    assert err(run(server, host, sid, "vm_memory", {"vm": uuid}))[0] == "NUMA_NOT_RUNNING"
    session.xenapi.VM.start_on(ref, host, False, False)
    settled = ok(run(server, host, sid, "settle", {"vm": uuid}))
    assert settled["memory_nodes"] == [node] and settled["nodes"] == [node]
    # the admin's mask is back, the boot pin is gone, the reservation released
    assert session.xenapi.VM.get_VCPUs_params(ref) == {"mask": "0,1,2,3,4,5,6,7", "weight": "512"}
    assert "numa_saved_mask" not in session.xenapi.VM.get_other_config(ref)
    rows = ok(run(server, host, sid, "vcpus", {"vm": uuid}))
    assert {r["soft"] for r in rows} == {f"{4 * node}-{4 * node + 3}"} and {r["hard"] for r in rows} == {"all"}
    mem = ok(run(server, host, sid, "vm_memory", {"vm": uuid}))
    assert mem["local_share"] == 1.0 and mem["total"] == 1 << 30
    assert ok(run(server, host, sid, "release", {"vm": uuid})) == {"vm": uuid, "released": False, "boot_pin": "none"}


def test_a_vm_running_on_another_host_is_not_running_here_and_the_answer_names_that_host(ctx):
    """xapi says where the VM runs: each call that wants the local domain says so (the
    code stays NUMA_NOT_RUNNING, the VM's uuid first); a halted VM keeps the plain answer."""
    server, session, host, sid = ctx
    other_host = session.xenapi.host.get_all()[1]
    there = session.xenapi.host.get_record(other_host)
    ref, uuid = server.add_vm("elsewhere", 2, 512 << 20, domain_type="pvh")
    for fn, args in [("vm_memory", {"vm": uuid}), ("settle", {"vm": uuid}), ("vcpus", {"vm": uuid}),
                     ("move_memory", {"vm": uuid, "to": "1"})]:
        assert err(run(server, host, sid, fn, args)) == ["NUMA_NOT_RUNNING", uuid], fn  # halted
    session.xenapi.VM.start_on(ref, other_host, False, False)
    for fn, args in [("vm_memory", {"vm": uuid}), ("settle", {"vm": uuid}), ("vcpus", {"vm": uuid}),
                     ("move_memory", {"vm": uuid, "to": "1"}), ("migrate_memory", {"vm": uuid, "to": "1"})]:
        details = err(run(server, host, sid, fn, args))
        assert details[:3] == ["NUMA_NOT_RUNNING", uuid, there["uuid"]], (fn, details)
        assert there["name_label"] in details[3] and there["uuid"] in details[3], (fn, details)
    assert ok(run(server, other_host, sid, "vm_memory", {"vm": uuid}))["total"] == 512 << 20  # there it answers
    ref, uuid = server.add_vm("paused-elsewhere", 1, 256 << 20)
    session.xenapi.VM.start_on(ref, other_host, True, False)
    details = err(run(server, host, sid, "vm_memory", {"vm": uuid}))
    assert details[:3] == ["NUMA_NOT_RUNNING", uuid, there["uuid"]] and "paused on host" in details[3]


def test_text_beyond_ascii_in_and_out_under_the_locale_xapi_gives(ctx):
    """xapi runs a plugin with PATH alone: dom0's Python 3.6 reads argv and writes stdout
    as ASCII there.  An argument or a host name beyond ASCII made the plugin exit with a
    traceback (xapi hands it to the caller as XENAPI_PLUGIN_FAILURE), or called a bad
    argument a bad call."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 512 << 20)
    details = err(run(server, host, sid, "set_policy", {"vm": uuid, "mode": "str\u00edct"}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "mode"] and "str\u00edct" in details[2], details
    assert session.xenapi.VM.get_other_config(ref) == {}
    other_host = session.xenapi.host.get_all()[1]
    session.xenapi.host.set_name_label(other_host, "K\u00fcche \u53a8\u623f")
    session.xenapi.VM.start_on(ref, other_host, False, False)
    details = err(run(server, host, sid, "vm_memory", {"vm": uuid}))
    assert details[0] == "NUMA_NOT_RUNNING" and "K\u00fcche \u53a8\u623f" in details[3], details


def test_a_failure_asking_xapi_where_the_vm_runs_keeps_the_plain_answer():
    """Improving a NUMA_NOT_RUNNING message asks xapi; xapi restarting mid-answer (an
    expat error from a cut reply) escaped the plugin as a traceback."""
    import xml.parsers.expat
    from xapi_numa.errors import NotRunning
    from xapi_numa.plugin import boundary
    from xapi_numa.plugin.functions import Context

    class CutReply:
        def __getattr__(self, name):
            raise xml.parsers.expat.ExpatError("no element found: line 1, column 0")

    class Session:
        xenapi = CutReply()

    assert Context("OpaqueRef:x", session=Session()).located(NotRunning("vm-1")).host_uuid is None
    response = proto.parse_response(boundary.respond(["numa", "<not a call"]))
    assert response["ErrorDescription"][:2] == ["XENAPI_PLUGIN_FAILURE", "bad call"]


def test_place_keeps_to_the_hosts_guest_mask(ctx):
    """xapi narrows every VM's mask to the host's guest_VCPUs_params:mask at a start:
    place ignored it and pinned the boot to a node the VM could not run on."""
    server, session, host, sid = ctx
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "4,5,6,7"})  # node 1's CPUs
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    # the vNUMA plan follows where place would put it (it named node 0)
    assert [v["pnode"] for v in ok(run(server, host, sid, "vnuma_plan", {"vm": uuid}))["vnodes"]] == [1]
    placed = ok(run(server, host, sid, "place", {"vm": uuid}))
    assert placed["nodes"] == [1], placed
    assert set(map(int, session.xenapi.VM.get_VCPUs_params(ref)["mask"].split(","))) <= {4, 5, 6, 7}
    session.xenapi.VM.start_on(ref, host, False, False)
    assert ok(run(server, host, sid, "vm_memory", {"vm": uuid}))["local_share"] == 1.0
    # settled, the boot pin gives way to the policy's affinity: within the host mask still
    # (it wrote hard affinity "all", and the VM ran on CPUs the admin kept from guests)
    settled = ok(run(server, host, sid, "settle", {"vm": uuid}))
    assert settled["hard"] == "4-7", settled
    domid = int(session.xenapi.VM.get_domid(ref))
    assert all(v.hard == frozenset({4, 5, 6, 7}) for v in server.sims[host].vcpus(domid))
    ref, uuid = server.add_vm("pinned", 1, 256 << 20, vcpus_params={"mask": "0,1"})
    details = err(run(server, host, sid, "place", {"vm": uuid}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "host guest_VCPUs_params:mask"], details
    assert session.xenapi.VM.get_VCPUs_params(ref) == {"mask": "0,1"}


def test_release_restores_a_failed_start(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    ok(run(server, host, sid, "place", {"vm": uuid}))
    assert "mask" in session.xenapi.VM.get_VCPUs_params(ref)
    assert ok(run(server, host, sid, "release", {"vm": uuid}))["released"] is True
    assert session.xenapi.VM.get_VCPUs_params(ref) == {}
    assert session.xenapi.VM.get_other_config(ref) == {}


def test_release_on_another_host_keeps_the_boot_pin_of_the_host_that_placed_it(ctx):
    """A release on host B must not undo host A's place: A still holds the reservation
    the pin goes with, and the VM would boot on A without its placement."""
    server, session, host, sid = ctx
    other_host = session.xenapi.host.get_all()[1]
    ref, uuid = server.add_vm("vm", 2, 1 << 30, vcpus_params={"mask": "0,1,2,3,4,5,6,7"})
    placed = ok(run(server, host, sid, "place", {"vm": uuid}))
    pinned = session.xenapi.VM.get_VCPUs_params(ref)
    host_uuid = session.xenapi.host.get_record(host)["uuid"]
    assert session.xenapi.VM.get_other_config(ref)["numa_placed_host"] == host_uuid
    answer = ok(run(server, other_host, sid, "release", {"vm": uuid}))
    assert answer == {"vm": uuid, "released": False, "boot_pin": "kept", "placed_on": host_uuid}
    assert session.xenapi.VM.get_VCPUs_params(ref) == pinned  # the pin is untouched
    assert [r.vm for r in Ledger(server.ledgers[host]).reservations()] == [uuid]
    # the placing host's release undoes both
    assert ok(run(server, host, sid, "release", {"vm": uuid})) == {"vm": uuid, "released": True,
                                                                    "boot_pin": "restored"}
    assert session.xenapi.VM.get_VCPUs_params(ref) == {"mask": "0,1,2,3,4,5,6,7"}
    assert session.xenapi.VM.get_other_config(ref) == {}
    assert placed["reserved"]


def test_release_elsewhere_undoes_the_pin_when_forced_or_when_its_host_left_the_pool(ctx):
    server, session, host, sid = ctx
    other_host = session.xenapi.host.get_all()[1]
    for case in ("force", "gone"):
        ref, uuid = server.add_vm("vm-" + case, 2, 1 << 30)
        ok(run(server, host, sid, "place", {"vm": uuid}))
        args = {"vm": uuid}
        if case == "force":
            args["force"] = "true"
        else:  # placed by a host since ejected or reinstalled (a UUID the pool no longer has)
            session.xenapi.VM.remove_from_other_config(ref, "numa_placed_host")
            session.xenapi.VM.add_to_other_config(ref, "numa_placed_host", "99999999-2222-4333-8444-555555555555")
        assert ok(run(server, other_host, sid, "release", args))["boot_pin"] == "restored", case
        assert session.xenapi.VM.get_VCPUs_params(ref) == {} and session.xenapi.VM.get_other_config(ref) == {}
        Ledger(server.ledgers[host]).release(uuid)


def test_a_host_key_beside_no_pin_names_nothing(ctx):
    """An older version's settle clears the pin's keys but not ours: that leftover
    must not stop another host's release from undoing a later pin."""
    server, session, host, sid = ctx
    other_host = session.xenapi.host.get_all()[1]
    leftover = session.xenapi.host.get_record(other_host)["uuid"]  # a live host of the pool
    ref, uuid = server.add_vm("vm", 2, 1 << 30, other_config={"numa_placed_host": leftover})
    assert ok(run(server, host, sid, "release", {"vm": uuid}))["boot_pin"] == "none"
    assert session.xenapi.VM.get_other_config(ref) == {}  # the leftover is gone too


def test_release_refuses_while_another_caller_places_the_vm_and_changes_nothing(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    ok(run(server, host, sid, "place", {"vm": uuid}))
    in_flight = owner_token(time.time())  # a place in flight elsewhere
    session.xenapi.VM.add_to_other_config(ref, "numa_place_owner", in_flight)
    before = (session.xenapi.VM.get_VCPUs_params(ref), session.xenapi.VM.get_other_config(ref))
    for fn, args in (("release", {"vm": uuid}), ("release", {"vm": uuid, "force": "true"}),
                     ("set_policy", {"vm": uuid, "mode": "strict"})):
        details = err(run(server, host, sid, fn, args))
        assert details[0] == "NUMA_VM_BUSY" and "by another caller" in details[1], details
    assert (session.xenapi.VM.get_VCPUs_params(ref), session.xenapi.VM.get_other_config(ref)) == before
    assert [r.vm for r in Ledger(server.ledgers[host]).reservations()] == [uuid]


def test_a_caller_killed_mid_place_holds_the_vm_only_until_its_time_is_up(ctx):
    """A place killed after it claimed the VM leaves its owner key: once the key's
    time has passed (or it has none: an older version's), the next caller takes over."""
    server, session, host, sid = ctx
    # 5 s past its time: the pool master's clock, which judges it, counts whole seconds
    for dead in (owner_token(time.time() - OWNER_TTL - 5), "a-token-with-no-time"):
        ref, uuid = server.add_vm("vm", 2, 1 << 30, other_config={"numa_place_owner": dead})
        placed = ok(run(server, host, sid, "place", {"vm": uuid}))
        assert placed["reserved"] and "numa_place_owner" not in session.xenapi.VM.get_other_config(ref)
        assert ok(run(server, host, sid, "release", {"vm": uuid}))["boot_pin"] == "restored"


@pytest.mark.parametrize("master_off", [-130.0, 250.0, 1000.0])
def test_the_owner_keys_time_is_the_pool_masters_not_a_hosts(ctx, master_off):
    """A member whose clock is minutes off (xapi alerts only past 5) must not take a live
    caller's key for a dead one's: the key's time is the pool master's, for every host."""
    server, session, host, sid = ctx
    other = session.xenapi.host.get_all()[1]
    server.clock_skew[server.master] = master_off  # this process's and the plugins' clocks stay right
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    with start_placement.owning(Ledger(server.ledgers[host]), session, ref, uuid) as token:
        expires = float(token.rpartition("/")[2])
        assert abs(expires - (time.time() + master_off + OWNER_TTL)) < 5  # the master's time, not ours
        details = err(run(server, other, sid, "set_policy", {"vm": uuid, "mode": "strict", "nodes": "1"}))
        assert details[0] == "NUMA_VM_BUSY", details
        assert session.xenapi.VM.get_other_config(ref)["numa_place_owner"] == token
    assert "numa_place_owner" not in session.xenapi.VM.get_other_config(ref)


def test_release_of_a_vm_xapi_does_not_know_changes_nothing(ctx):
    server, session, host, sid = ctx
    stranger = "11111111-2222-4333-8444-555555555555"
    ledger = Ledger(server.ledgers[host])
    ledger.reserve(stranger, {0: 1 << 20}, 300, lambda: {0: 1 << 30})
    assert err(run(server, host, sid, "release", {"vm": stranger}))[0] == "NUMA_UNKNOWN_VM"
    assert [r.vm for r in ledger.reservations()] == [stranger]
    ledger.close()


def test_strict_on_a_full_node_is_no_capacity(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("big", 2, 5 << 30, other_config={"numa_mode": "strict", "numa_nodes": "0",
                                                               "numa_on_exhaust": "fail"})
    details = err(run(server, host, sid, "place", {"vm": uuid}))
    assert details[0] == "NUMA_NO_CAPACITY" and "node 0 has" in details[1]
    assert session.xenapi.VM.get_VCPUs_params(ref) == {}


def test_unknown_function_and_bad_calls(ctx):
    server, session, host, sid = ctx
    assert err(run(server, host, sid, "reboot_host", {}))[:2] == ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "reboot_host"]
    for argv in (["garbage"], ["<methodCall><methodName>x</methodName></methodCall>"], []):
        done = subprocess.run([PLUGIN, *argv], capture_output=True, text=True, timeout=60, env=server.plugin_env(host))
        result = proto.parse_response(done.stdout)
        assert result["Status"] == "Failure" and result["ErrorDescription"][0] == "XENAPI_PLUGIN_FAILURE"


def test_place_with_nothing_says_what_it_takes_and_a_node_is_read_as_ascii(ctx):
    server, session, host, sid = ctx
    details = err(run(server, host, sid, "place", {}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "vm"] and "vcpus= and memory=" in details[2]
    ref, uuid = server.add_vm("vm", 1, 256 << 20)
    for bad in ("\u00b2", "\u0661", "node:\u00b2"):
        details = err(run(server, host, sid, "move_memory", {"vm": uuid, "to": bad}))
        assert details[:2] == ["NUMA_INVALID_ARGUMENT", "to"] and "ASCII" in details[2]
    details = err(run(server, host, sid, "move_memory", {"vm": uuid, "to": "1", "rate": "1e3"}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "rate"]


def test_through_host_call_plugin(ctx):
    import XenAPI

    server, session, host, sid = ctx
    value = session.xenapi.host.call_plugin(host, "numa", "host_topology", {})
    assert json.loads(value)["distances"] == [[10, 21], [21, 10]]
    with pytest.raises(XenAPI.Failure) as e:
        session.xenapi.host.call_plugin(host, "numa", "set_policy", {"vm": "x", "mode": "strict"})
    assert e.value.details[:2] == ["NUMA_INVALID_ARGUMENT", "vm"]
    with pytest.raises(XenAPI.Failure) as e:
        session.xenapi.host.call_plugin(host, "nope", "x", {})
    assert e.value.details == ["XENAPI_MISSING_PLUGIN", "nope"]


@pytest.fixture
def plain(pool):
    """Plain values only: hypothesis must not touch a XenAPI session (any attribute is a remote call)."""
    server, session = pool
    ref, _ = server.add_vm("fuzzed", 2, 1 << 30)
    # the state database exists before the first call, as on a host where the plugin has run:
    # its creation by whichever fuzzed call comes first is set-up, not a change that call made
    for path in server.ledgers.values():
        Ledger(path).close()
    return server, session.xenapi.host.get_all()[0], session._session


def _session(server):
    import XenAPI

    session = XenAPI.Session(server.url)
    session.xenapi.login_with_password("root", "xenroot", "2.21", "fuzz")
    return session


def _state(server, session):
    digest = hashlib.sha256()
    for path in sorted(list(server.ledgers.values()) + [s.path for s in server.sims.values()]):
        if os.path.exists(path):
            digest.update(open(path, "rb").read())
    return digest.hexdigest(), json.dumps(session.xenapi.VM.get_all_records(), sort_keys=True)


names = st.one_of(st.sampled_from(sorted(FUNCTIONS)), st.text(min_size=1, max_size=20))
keys = st.one_of(st.sampled_from(["vm", "mode", "nodes", "on_exhaust", "dry_run", "vcpus", "memory"]),
                 st.text(max_size=8))
values = st.one_of(st.sampled_from(["true", "false", "strict", "1,0", "nearest", "4", "1G", "-1", "x" * 2000]),
                   st.text(max_size=30))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fn=names, args=st.dictionaries(keys, values, max_size=4))
def test_fuzz_exactly_one_response_nothing_changed_on_failure(plain, fn, args):
    server, host, sid = plain
    if "vm" in args and not args["vm"].strip():
        args["vm"] = "01234567-89ab-cdef-0123-456789abcdef"
    session = _session(server)
    before = _state(server, session)
    call = proto.build_call(fn, sid, args)
    assume("\x00" not in call)  # no process can receive a NUL byte in argv, from xapi or anyone
    done = subprocess.run([PLUGIN, call], capture_output=True, text=True, timeout=120, env=server.plugin_env(host))
    assert done.returncode == 0
    assert done.stdout.count("<methodResponse>") == 1 and "Traceback" not in done.stdout
    result = proto.parse_response(done.stdout)
    if result["Status"] == "Failure":
        details = result["ErrorDescription"]
        if details[0] == "XENAPI_PLUGIN_FAILURE":  # only for calls xapi could not have made, never a crash
            assert details[1] in ("bad call", "usage"), result
        assert _state(server, session) == before


@pytest.mark.parametrize("rate", [None, "1000000"])
def test_migrate_memory_runs_in_the_background(ctx, rate):
    """With a rate of a million MiB/s (allowed) the mover was handed ``--rate 1e+06``,
    refused it, and died with its journal row saying it was still running."""
    import time

    server, session, host, sid = ctx
    ref, uuid = server.add_vm("mover", 2, 512 << 20, domain_type="pvh")  # HVM guests are refused
    session.xenapi.VM.start_on(ref, host, False, False)
    before = ok(run(server, host, sid, "vm_memory", {"vm": uuid}))
    source = max(before["nodes"], key=lambda n: before["nodes"][n])
    target = str(1 - int(source))
    assert ok(run(server, host, sid, "migration_status", {"vm": uuid}))["state"] == "none"
    args = {"vm": uuid, "to": f"node:{target}"}
    args.update({"rate": rate} if rate else {})
    started = ok(run(server, host, sid, "migrate_memory", args))
    assert started["state"] == "running" and started["pid"] > 0
    deadline = time.monotonic() + 120
    while True:
        status = ok(run(server, host, sid, "migration_status", {"vm": uuid}))
        if status["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status["state"] == "done", status
    assert status["moved_pages"] == status["planned_pages"] > 0
    after = ok(run(server, host, sid, "vm_memory", {"vm": uuid}))
    assert after["nodes"][target] > 0.99 * after["total"]


def test_migrate_memory_refusals(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("pv-guest", 1, 256 << 20, domain_type="pv")
    session.xenapi.VM.start_on(ref, host, False, False)
    assert err(run(server, host, sid, "migrate_memory", {"vm": uuid, "to": "1"}))[0] == "NUMA_NOT_MOVABLE"
    ref, uuid = server.add_vm("gpu", 1, 256 << 20)
    session.xenapi.VM.start_on(ref, host, False, False)
    with server.lock:
        server.vms[ref]["attached_PCIs"] = ["OpaqueRef:pci"]
    details = err(run(server, host, sid, "migrate_memory", {"vm": uuid, "to": "1"}))
    assert details[0] == "NUMA_NOT_MOVABLE" and "passed through" in details[2]
    with server.lock:
        server.vms[ref]["attached_PCIs"] = []
        server.vms[ref]["current_operations"] = {"task": "migrate_send"}
    assert "migrate_send" in err(run(server, host, sid, "migrate_memory", {"vm": uuid, "to": "1"}))[2]
    with server.lock:  # ballooning could take the frames a move releases
        server.vms[ref]["current_operations"] = {"task": "changing_dynamic_range"}
    assert "changing_dynamic_range" in err(run(server, host, sid, "migrate_memory", {"vm": uuid, "to": "1"}))[2]
    with server.lock:
        server.vms[ref]["current_operations"] = {}
    for args, field in [({"vm": uuid, "to": "9"}, "to"), ({"vm": uuid, "to": "1", "rate": "fast"}, "rate"),
                        ({"vm": uuid, "to": "1", "max": "x"}, "max"), ({"vm": uuid}, "to")]:
        details = err(run(server, host, sid, "migrate_memory", args))
        assert details[:2] == ["NUMA_INVALID_ARGUMENT", field], details
    assert ok(run(server, host, sid, "migration_status", {"vm": uuid}))["state"] == "none"


@contextlib.contextmanager
def xapi_refuses_once(server, method, key=None):
    """The loopback's map write ``method`` refuses its first write (of ``key``, if given)
    as xapi does while another operation runs; later writes (an undo) go through."""
    from xapi_loopback import Failure
    real = getattr(server, method)
    refused = []

    def refused_first(session_id, self_ref, k, *value):
        if not refused and key in (None, k):
            refused.append(k)
            raise Failure("OTHER_OPERATION_IN_PROGRESS", "VM", self_ref, "clean_shutdown")
        return real(session_id, self_ref, k, *value)

    # the loopback checks a call's parameter count against its method's own arguments
    def refuse(session_id, self_ref, k, value, _self=None):
        return refused_first(session_id, self_ref, k, value)

    def refuse_removal(session_id, self_ref, k, _self=None):
        return refused_first(session_id, self_ref, k)
    if "_remove_from_" in method:
        refuse = refuse_removal
    setattr(server, method, refuse)
    try:
        yield
    finally:
        setattr(server, method, real)
    assert refused, "the refusal never happened: the test did not test it"


def test_a_place_whose_pin_xapi_refuses_leaves_the_vm_as_it_was(ctx):
    """xapi refuses the mask write (another operation in progress): the reservation
    goes, and so does whatever of the pin was written; the admin's mask stays."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 1 << 30, vcpus_params={"mask": "0,1,2,3,4,5,6,7"})
    before = (session.xenapi.VM.get_VCPUs_params(ref), session.xenapi.VM.get_other_config(ref))

    with xapi_refuses_once(server, "VM_add_to_VCPUs_params"):
        assert err(run(server, host, sid, "place", {"vm": uuid}))[0] == "OTHER_OPERATION_IN_PROGRESS"
    assert (session.xenapi.VM.get_VCPUs_params(ref), session.xenapi.VM.get_other_config(ref)) == before
    assert Ledger(server.ledgers[host]).reservations() == []


def test_templates_are_not_placed_and_dom0_is_not_settled(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("tmpl", 2, 1 << 30)
    with server.lock:
        server.vms[ref]["is_a_template"] = True
    details = err(run(server, host, sid, "place", {"vm": uuid}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "vm"] and "is a template" in details[2]
    assert ok(run(server, host, sid, "place", {"vm": uuid, "dry_run": "true"}))["reserved"] is False
    assert session.xenapi.VM.get_VCPUs_params(ref) == {} and session.xenapi.VM.get_other_config(ref) == {}
    ref, uuid = server.add_vm("dom0-record", 1, 1 << 30)
    with server.lock:
        server.vms[ref]["is_control_domain"] = True
    details = err(run(server, host, sid, "set_policy", {"vm": uuid, "mode": "strict"}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "vm"] and "control domain" in details[2]


def test_the_boot_pin_keeps_each_vcpus_own_mask():
    """Per-vCPU admin masks: each vCPU's boot pin is its own mask's CPUs on the chosen
    nodes (the mask's other CPUs there if its own has none there)."""
    from xapi_numa.core.topology import Topology
    from xapi_numa.core.vcpu_mask import format_mask
    from xapi_numa.ops.start_placement import boot_mask

    topo = Topology.uniform(2, 4, 4 << 30)
    assert format_mask(boot_mask({"VCPUs_params": {"mask": "0;1"}}, topo, [0])) == "0;1"
    assert format_mask(boot_mask({"VCPUs_params": {"mask": "0,1;4,5"}}, topo, [0])) == "0,1"
    assert format_mask(boot_mask({"VCPUs_params": {"mask": "0,1;4,5"}}, topo, [0, 1])) == "0,1;4,5"
    assert format_mask(boot_mask({"VCPUs_params": {}}, topo, [1])) == "4,5,6,7"


def test_a_place_on_another_host_than_the_one_that_placed_the_vm_is_refused_and_changes_nothing(ctx):
    """The placing host holds the VM's reservation: a second place elsewhere used to
    take the pin over and leave that reservation holding the first host's memory."""
    server, session, host, sid = ctx
    other_host = session.xenapi.host.get_all()[1]
    other_uuid = session.xenapi.host.get_uuid(other_host)
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    ok(run(server, other_host, sid, "place", {"vm": uuid}))
    before = (session.xenapi.VM.get_VCPUs_params(ref), session.xenapi.VM.get_other_config(ref))
    details = err(run(server, host, sid, "place", {"vm": uuid}))
    assert details[0] == "NUMA_VM_BUSY" and details[2:] == ["vm", uuid, other_uuid] and "release it there first" in details[1]
    assert (session.xenapi.VM.get_VCPUs_params(ref), session.xenapi.VM.get_other_config(ref)) == before
    assert Ledger(server.ledgers[host]).reservations() == []
    assert [r.vm for r in Ledger(server.ledgers[other_host]).reservations()] == [uuid]
    ok(run(server, other_host, sid, "release", {"vm": uuid}))  # released there, it can go here
    assert ok(run(server, host, sid, "place", {"vm": uuid}))["reserved"] is True


def test_a_failed_place_puts_back_the_earlier_pin_of_the_same_host(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 1 << 30, vcpus_params={"mask": "0,1,2,3,4,5,6,7"})
    ok(run(server, host, sid, "set_policy", {"vm": uuid, "mode": "strict", "nodes": "0"}))
    assert ok(run(server, host, sid, "place", {"vm": uuid}))["nodes"] == [0]
    ok(run(server, host, sid, "set_policy", {"vm": uuid, "mode": "strict", "nodes": "1"}))
    before = (session.xenapi.VM.get_VCPUs_params(ref), session.xenapi.VM.get_other_config(ref))
    with xapi_refuses_once(server, "VM_add_to_VCPUs_params"):  # the new pin's last write
        assert err(run(server, host, sid, "place", {"vm": uuid}))[0] == "OTHER_OPERATION_IN_PROGRESS"
    assert (session.xenapi.VM.get_VCPUs_params(ref), session.xenapi.VM.get_other_config(ref)) == before
    ok(run(server, host, sid, "release", {"vm": uuid}))
    assert session.xenapi.VM.get_VCPUs_params(ref) == {"mask": "0,1,2,3,4,5,6,7"}


def test_an_admin_mask_bounds_the_nodes_and_keeps_the_vms_own_policy():
    """The mask is a bound handed to the engine: the policy the VM has (here
    preferred 2,nearest) is still the one that decides, and the one reported."""
    from xapi_numa.core.topology import Topology
    from xapi_numa.ops.place_request import request_for

    chain = [[10, 21, 31, 41], [21, 10, 21, 31], [31, 21, 10, 21], [41, 31, 21, 10]]
    topo = Topology.from_arrays([c // 4 for c in range(16)], chain, [8 << 30] * 4)
    record = {"VCPUs_max": "4", "memory_static_max": str(12 << 30), "domain_type": "pvh",
              "VCPUs_params": {"mask": ",".join(map(str, range(12)))}, "other_config": {"numa_mode": "preferred", "numa_nodes": "2,nearest"}}
    request = request_for(record, topo)
    assert request.within == frozenset({0, 1, 2})
    assert (request.policy.mode, request.policy.nodes, request.policy.nearest) == ("preferred", (2,), True)
    record["VCPUs_params"] = {"mask": ",".join(map(str, range(16)))}
    assert request_for(record, topo).within is None


def test_release_after_a_build_that_failed_once_its_reservation_became_claims(ctx):
    """place, a start whose build the daemon turned into claims, the build fails and its
    domain goes: release was refused (NUMA_VM_BUSY, claimed row) and left the boot pin."""
    from xapi_numa.ops import upkeep
    from xapi_numa.ops.executor import Executor
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    ok(run(server, host, sid, "place", {"vm": uuid}))
    sim, ledger = server.sims[host], Ledger(server.ledgers[host])
    domid = sim.create("vm", 2, 512 << 20, uuid=uuid, paused=True, auto_numa=False)  # the build, half way
    sim.set_max_memory(domid, 1 << 30)  # (at its maximum it would be over: released, not claimed)
    assert upkeep.reservation_changes(upkeep.reconcile(sim, ledger, Executor(sim, ledger.db))) == {uuid: "claimed"}
    sim.destroy(domid)  # the start fails: xapi tears the domain down, the VM is Halted again
    assert ok(run(server, host, sid, "release", {"vm": uuid})) == {"vm": uuid, "released": False,
                                                                   "boot_pin": "restored"}
    assert session.xenapi.VM.get_VCPUs_params(ref) == {} and session.xenapi.VM.get_other_config(ref) == {}
    assert ledger.reservations() == []


def test_a_vnode_move_keeps_to_the_hosts_guest_mask(ctx):
    """The plugin's vnode move ignored the host's guest_VCPUs_params:mask: a vnode went to a
    node its vCPUs may not run on.  Refused now, naming ``to``; to a node the mask leaves one
    CPU of, its vCPU's soft affinity is that CPU (as the rebalancer's vnode moves)."""
    from xapi_numa.core import vnuma

    server, session, host, sid = ctx
    ref, uuid = server.add_vm("numa", 2, 512 << 20, domain_type="pvh")
    session.xenapi.VM.start_on(ref, host, False, False)
    sim, domid = server.sims[host], int(session.xenapi.VM.get_domid(ref))
    plan = vnuma.plan_follow(sim.topology(), vnuma.GuestSpec("pvh", 2, 512 << 20), [0, 1])
    sim.set_vnuma(domid, plan, vnuma.memory_ranges(plan))
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "4,5,6,7"})  # node 1's CPUs
    details = err(run(server, host, sid, "move_memory", {"vm": uuid, "to": "0", "vnode": "1"}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "to"] and "allowed: nodes 1" in details[2], details
    assert sim.vnuma(domid).pnodes == (0, 1)
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "3,4,5,6,7"})
    assert ok(run(server, host, sid, "move_memory", {"vm": uuid, "to": "0", "vnode": "1"}))["state"] == "running"
    deadline = time.monotonic() + 120
    while ok(run(server, host, sid, "memory_move_status", {"vm": uuid}))["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert sim.vnuma(domid).pnodes == (0, 0)
    assert sim.vcpus(domid)[1].soft == frozenset({3})


def test_homing_leaves_alone_the_vms_xapi_numad_leaves_alone(ctx):
    """The plugin's homing (xapi-numad's dry run) read no VM's policy: it planned soft-affinity
    writes for ``strict``, ``any`` and unreadable-policy VMs that xapi-numad never makes, and
    ignored the host's guest mask.  It now reads them from xapi as the daemon does."""
    server, session, host, sid = ctx
    sim = server.sims[host]  # 2 nodes x 4 CPUs
    n0, n1 = sim.topology().cpus_of_nodes([0]), sim.topology().cpus_of_nodes([1])
    domids = {}
    for name, other in [("plain", {}), ("strict", {"numa_mode": "strict"}), ("any", {"numa_mode": "any"}),
                        ("typo", {"numa_mode": "strict", "numa_nodes": "1,x"})]:
        _, uuid = server.add_vm(name, 2, 256 << 20, other_config=other, domain_type="pvh")
        domids[name] = sim.create(name, 2, 256 << 20, uuid=uuid, soft=n0, dtype="pvh", load="idle")
        for v in range(2):  # its memory on node 0, its soft affinity node 1: the fix-up's case
            sim.set_vcpu_affinity(domids[name], v, soft=n1)
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "1,2,3,4,5,6,7"})  # CPU 0 is not for guests
    actions = ok(run(server, host, sid, "homing", {}))["actions"]
    assert {a["domid"] for a in actions} == {domids["plain"]}, actions
    assert [a["soft"] for a in actions] == [[1, 2, 3]] * 2, actions  # inside the mask


def test_a_whole_vms_memory_move_keeps_to_the_hosts_guest_mask(ctx):
    """The plugin's move of a whole VM's memory ignored the host's guest_VCPUs_params:mask
    (a vnode's move keeps to it): the memory went to a node its vCPUs may not run on, and
    their soft affinity onto CPUs guests may not use.  Refused now, naming ``to``; to a node
    the mask leaves one CPU of, the soft affinity is that CPU."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("whole", 2, 256 << 20, domain_type="pvh")
    session.xenapi.VM.start_on(ref, host, False, False)
    sim, domid = server.sims[host], int(session.xenapi.VM.get_domid(ref))
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "4,5,6,7"})  # node 1's CPUs
    before = sim.node_pages(domid)
    details = err(run(server, host, sid, "move_memory", {"vm": uuid, "to": "0"}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "to"] and "allowed: nodes 1" in details[2], details
    assert sim.node_pages(domid) == before
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "3,4,5,6,7"})
    assert ok(run(server, host, sid, "move_memory", {"vm": uuid, "to": "0"}))["state"] == "running"
    deadline = time.monotonic() + 120
    while ok(run(server, host, sid, "memory_move_status", {"vm": uuid}))["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert ok(run(server, host, sid, "memory_move_status", {"vm": uuid}))["state"] == "done"
    assert all(v.soft == frozenset({3}) for v in sim.vcpus(domid))


def test_homing_answers_xapis_failure_not_a_plan_made_without_it(ctx):
    """The plugin's homing read the VMs' policies through xapi-numad's link, which carries on
    without xapi: over a session xapi no longer honours it answered Success, with every VM
    taken for ``best_effort`` (a ``strict`` VM's soft affinity moved).  xapi's failure is the
    answer, as every other function gives it."""
    import uuid as uuidlib

    server, session, host, sid = ctx
    sim = server.sims[host]
    n0, n1 = sim.topology().cpus_of_nodes([0]), sim.topology().cpus_of_nodes([1])
    _, uuid = server.add_vm("strict", 2, 256 << 20, other_config={"numa_mode": "strict"}, domain_type="pvh")
    domid = sim.create("strict", 2, 256 << 20, uuid=uuid, soft=n0, dtype="pvh", load="idle")
    for v in range(2):  # its memory on node 0, its soft affinity node 1: the fix-up's case, were it best_effort
        sim.set_vcpu_affinity(domid, v, soft=n1)
    assert ok(run(server, host, sid, "homing", {}))["actions"] == []
    details = err(run(server, host, "OpaqueRef:" + str(uuidlib.uuid4()), "homing", {}))
    assert details[0] == "SESSION_INVALID", details
