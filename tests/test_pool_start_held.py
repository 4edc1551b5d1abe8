"""Two pool vm-starts of one VM at once: the second never undoes the first one's place.

A pool start releases "an earlier place" of the VM before it places it afresh.  Between
start A's place and its VM.start_on (the call on its way to xapi, not yet one of the VM's
current operations), start B saw A's place as such an earlier one and released it: A's
VM.start_on then built the VM without its reservation and boot pin.  Now a pool start
holds the VM (its start key in other_config) from before that release until its
VM.start_on has answered, and a second start is refused with NUMA_VM_BUSY naming the
holder, changing nothing.
"""
import os
import re
import threading
import time

import pytest

from xapi_loopback import Failure
from xapi_numa.backends import boot, process_identity, xapi
from xapi_numa.core import owner_token
from xapi_numa.core.owner_token import Holder
from xapi_numa.errors import NumaError
from xapi_numa.ops import pool as pool_ops
from xapi_numa.ops import start_hold
from xapi_numa.state.ledger import Ledger

G = 1 << 30


def _second_session(server):
    return xapi.login(xapi.Credentials(server.url, "root", "xenroot"), insecure=True)


def _start_held_at_start_on(server, monkeypatch):
    """Start A's VM.start_on waits (on its way to xapi) until ``go`` is set; ``there`` is set once it is."""
    there, go = threading.Event(), threading.Event()
    real = server.VM_start_on
    calls = []

    def start_on(*args):
        calls.append(args)
        if len(calls) == 1:
            there.set()
            assert go.wait(60)
        return real(*args)
    monkeypatch.setattr(server, "VM_start_on", start_on)
    return there, go


def _in_thread(fn, *args):
    outcome = {}

    def run():
        try:
            outcome["result"] = fn(*args)
        except BaseException as err:  # noqa: BLE001 - reported to the test
            outcome["error"] = err
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_second_start_while_the_first_is_between_place_and_start_on_is_refused_and_undoes_nothing(
        pool, monkeypatch):
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G)
    there, go = _start_held_at_start_on(server, monkeypatch)
    first = _second_session(server)
    try:
        thread, outcome = _in_thread(pool_ops.vm_start, first, uuid)
        assert there.wait(60), outcome
        placed = dict(server.vms[ref]["other_config"]), dict(server.vms[ref]["VCPUs_params"])
        assert xapi.PLACED_HOST_KEY in placed[0] and "mask" in placed[1]
        with pytest.raises(NumaError) as err:
            pool_ops.vm_start(session, uuid)
        assert (dict(server.vms[ref]["other_config"]), dict(server.vms[ref]["VCPUs_params"])) == placed
        go.set()
        thread.join(120)
    finally:
        go.set()
        xapi.logout(first)
    assert err.value.code == "NUMA_VM_BUSY", err.value
    said = err.value.message
    assert "another vm-start (process {} on machine {!r})".format(os.getpid(), start_hold.machine_name()) in said
    assert "try again after " in said and "other-config:numa_start_owner" in said, said
    assert "error" not in outcome, outcome
    started = outcome["result"]
    record = server.vms[ref]
    assert record["power_state"] == "Running" and record["resident_on"] != "OpaqueRef:NULL"
    host = record["resident_on"]
    assert started["host_uuid"] == server.hosts[host]["uuid"]
    # built with A's boot pin: its memory on the nodes A placed it on
    pages = server.sims[host].node_pages(int(record["domid"]))
    assert sorted(n for n, p in pages.items() if p) == started["placement"]["nodes"]
    assert not [k for k in record["other_config"] if k.startswith(start_hold.START_KEY)]
    assert all(Ledger(path).reservations() == [] for path in server.ledgers.values())


def _token(expires: float, holder=None, machine: str = "admin-box") -> str:
    return owner_token.make("0a1b@" + machine, expires, holder)


@pytest.mark.parametrize("left", ["out of time", "its process gone here", "no time", "an older version's"])
def test_a_hold_left_by_a_start_that_died_is_taken_over(pool, left):
    """A start killed mid-way (Ctrl-C before its finally, a lost laptop) leaves its key:
    the next start passes it over once its time is up, or at once on the same machine
    when the process is gone (another start time for this pid: not this process)."""
    server, session = pool
    now = time.time()
    dead = {"out of time": _token(now - 10, process_identity.this_process()),
            "its process gone here": _token(now + 2000, Holder(boot.boot_id(), os.getpid(), 1)),
            "no time": "0a1b@admin-box/by-hand", "an older version's": "0a1b/{:.0f}".format(now - 10)}[left]
    ref, uuid = server.add_vm("web", 2, G, other_config={start_hold.START_KEY: dead})
    started = pool_ops.vm_start(session, uuid)
    assert started["settle_error"] is None and server.vms[ref]["power_state"] == "Running"
    assert not [k for k in server.vms[ref]["other_config"] if k.startswith(start_hold.START_KEY)]


def test_a_live_hold_from_another_machine_refuses_the_start_and_names_it(pool):
    server, session = pool
    elsewhere = Holder("another-boot", 4242, 77)
    held = _token(time.time() + 600, elsewhere, machine="admin-box")
    ref, uuid = server.add_vm("web", 2, G, other_config={start_hold.START_KEY: held})
    before = dict(server.vms[ref]["other_config"]), dict(server.vms[ref]["VCPUs_params"])
    with pytest.raises(NumaError) as err:
        pool_ops.vm_start(session, uuid)
    assert err.value.code == "NUMA_VM_BUSY" and "process 4242 on machine 'admin-box'" in err.value.message
    assert re.search(r"try again after .* UTC \(the pool master's clock, in (59[89]|60[01]) s\)", err.value.message)
    assert (dict(server.vms[ref]["other_config"]), dict(server.vms[ref]["VCPUs_params"])) == before
    assert server.vms[ref]["power_state"] == "Halted"
    assert all(Ledger(path).reservations() == [] for path in server.ledgers.values())


def test_a_start_that_fails_lets_go_of_the_vm(pool):
    server, session = pool
    ref, uuid = server.add_vm("huge", 2, 64 * G)  # no host has room
    with pytest.raises(NumaError) as err:
        pool_ops.vm_start(session, uuid)
    assert err.value.code in ("NUMA_NO_CAPACITY", "NUMA_NO_HOST"), err.value
    assert start_hold.START_KEY not in server.vms[ref]["other_config"]


def test_a_start_that_read_the_vm_halted_before_another_start_ended_refuses_once_it_holds_it(pool, monkeypatch):
    """B reads the VM Halted; A's whole start runs and lets go; then B takes the hold. B must
    go by the state it reads while holding the VM: refused in the command's words, asking
    no host (it dry-ran every host, then a plugin refused its place of a Running VM)."""
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G)
    first = _second_session(server)
    real = start_hold.holding

    def after_another_start(*args):
        monkeypatch.setattr(start_hold, "holding", real)
        pool_ops.vm_start(first, uuid)  # A: the whole start, between B's look at the VM and its hold
        calls.clear()
        return real(*args)
    calls = []
    monkeypatch.setattr(start_hold, "holding", after_another_start)
    plugin = server.host_call_plugin
    monkeypatch.setattr(server, "host_call_plugin", lambda *args: calls.append(args[3]) or plugin(*args))
    try:
        with pytest.raises(NumaError) as err:
            pool_ops.vm_start(session, uuid)
    finally:
        xapi.logout(first)
    assert err.value.code == "NUMA_INVALID_ARGUMENT" and "is Running: vm-start starts a halted VM" in str(err.value)
    assert calls == [], calls
    assert server.vms[ref]["power_state"] == "Running"
    assert start_hold.START_KEY not in server.vms[ref]["other_config"]


def test_the_cli_says_the_refusal_in_one_line_and_exits_1(pool, tmp_path, capsys):
    from xapi_numa.cli.main import main

    server, _ = pool
    held = _token(time.time() + 600, Holder("another-boot", 4242, 77), machine="admin-box")
    ref, uuid = server.add_vm("web", 2, G, other_config={start_hold.START_KEY: held})
    secret = tmp_path / "password"
    secret.write_text("xenroot\n")
    secret.chmod(0o600)
    capsys.readouterr()
    code = main(["--insecure", "--pool", server.url, "--user", "root", "--password-file", str(secret),
                 "vm-start", "web"])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and "Traceback" not in err, (code, out, err)
    assert err.count("\n") == 1, err
    assert "is being started by another vm-start (process 4242 on machine 'admin-box')" in err, err
    assert server.vms[ref]["other_config"] == {start_hold.START_KEY: held}


def test_a_hold_whose_claim_failed_halfway_is_let_go(pool, monkeypatch):
    """xapi added this start's key, then failed its read back (a hiccup of the master): the start
    fails, and its key must not stay to refuse every start of the VM until its time is up."""
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G)
    real, reads = server.VM_get_other_config, []

    def read_back_fails(session_id, vm):
        if start_hold.START_KEY in server.vms[vm]["other_config"]:
            reads.append(vm)
            if len(reads) == 1:
                raise Failure("INTERNAL_ERROR", "database hiccup")
        return real(session_id, vm)
    monkeypatch.setattr(server, "VM_get_other_config", read_back_fails)
    with pytest.raises(xapi.XapiError) as err:
        pool_ops.vm_start(session, uuid)
    assert err.value.code == "INTERNAL_ERROR"
    assert start_hold.START_KEY not in server.vms[ref]["other_config"]
    assert pool_ops.vm_start(session, uuid)["settle_error"] is None


def test_the_refusal_names_the_holding_machine_whole():
    """A machine's name is most often its FQDN: the refusal cut it at 19 characters ('admin-laptop-of-a-v...'),
    and machines of one domain looked alike.  Whole up to the 64 characters a token carries; a longer one
    (a key edited by hand) is still cut."""
    machine = "admin-laptop-of-a-very-long-name.corp.example.com"
    said = start_hold.busy("u", _token(time.time() + 600, Holder("b", 4242, 7), machine=machine), time.time()).message
    assert "(process 4242 on machine '{}')".format(machine) in said, said
    said = start_hold.busy("u", _token(time.time() + 600, machine="x" * 5000), time.time()).message
    assert len(said) < 600 and "'xxxxx" in said, said


def test_vm_start_help_says_the_start_holds_the_vm_and_how_long_a_killed_one_does(capsys):
    """The refusal says "try again after" a time 41 minutes on (the default deadline and 60 s) for a
    start killed elsewhere, and --deadline's help said nothing of a hold: it says it now."""
    from xapi_numa.cli.main import main

    assert main(["vm-start", "--help"]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "NUMA_VM_BUSY" in said and "until its deadline and 60 s more" in said, said
