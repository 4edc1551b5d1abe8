"""A caller killed while it holds a VM is passed over at once on its own host.

xapi kills a plugin (``xe-toolstack-restart``, a SIGKILL) in the middle of a place:
its owner key stays in the VM's other_config, and every place, release or settle of
the VM was refused with NUMA_VM_BUSY until the key's time was up (OWNER_TTL, 120 s),
an admin's ``xe vm-start`` retried at once included.  The token now names the process
that holds it (boot id, pid, start time): a caller on the same machine and boot sees
that the process is gone and takes the VM over at once.  Everyone else goes by the
time as before: a live holder (however slow), another host's (another boot id), an
older version's token (no process), and the caller itself as it checks its own key.
"""
import os
import subprocess
import sys
import time
import uuid as uuidlib

import pytest
from conftest import REPO

from test_plugin import err, ok, run
from test_review18_owner_key_old_read import NOW, _Session
from xapi_numa.backends import boot, process_identity
from xapi_numa.core import owner_token as tokens
from xapi_numa.errors import VmBusy
from xapi_numa.ops.start_placement import OWNER_KEY, OWNER_TTL, owner_token, owner_token_stale, still_owning

G = 1 << 30
OTHER_BOOT = "00000000-1111-4222-8333-444444444444"  # another host's, or this one's before a reboot

# Holds a VM as a place does (its lock here, then the owner key), says its token, and waits to be killed.
HOLDER = """
import sys, time
import XenAPI
from xapi_numa.ops import start_placement
from xapi_numa.state.ledger import Ledger
url, ledger, uuid = sys.argv[1:4]
session = XenAPI.Session(url)
session.xenapi.login_with_password("root", "xenroot", "2.21", "holder")
with start_placement.owning(Ledger(ledger), session, session.xenapi.VM.get_by_uuid(uuid), uuid) as token:
    print(token, flush=True)
    time.sleep(600)
"""


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    return env


def _spawn(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c"] + list(args), env=_env(), **kwargs)


def _dead_token(expires_from: float) -> str:
    """The token of a caller of this machine that has exited since (made in a process of its own)."""
    child = _spawn("import sys; from xapi_numa.ops.start_placement import owner_token; "
                   "print(owner_token(float(sys.argv[1])))", str(expires_from), stdout=subprocess.PIPE,
                   universal_newlines=True)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    return out.strip()


def _owner_keys(session, ref) -> dict:
    return {k: v for k, v in session.xenapi.VM.get_other_config(ref).items() if k.startswith(OWNER_KEY)}


@pytest.fixture
def sleeper():
    """A live process of this machine other than the test's own."""
    child = _spawn("import time; time.sleep(600)")
    yield child
    child.kill()
    child.wait()


@pytest.fixture
def holder(ctx):
    """A VM held on the pool's first host by a caller in a process of its own; yields
    (the ctx, the VM's ref and uuid, the process, its token)."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, G)
    child = _spawn(HOLDER, server.url, server.ledgers[host], uuid, stdout=subprocess.PIPE, universal_newlines=True)
    try:
        token = child.stdout.readline().strip()
        assert token and _owner_keys(session, ref) == {OWNER_KEY: token}
        yield ctx, ref, uuid, child, token
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_a_caller_killed_while_it_holds_the_vm_is_passed_over_at_once_on_its_host(holder):
    (server, session, host, sid), ref, uuid, child, token = holder
    child.kill()  # SIGKILL: its key stays, 120 s from expiring
    child.wait()
    assert _owner_keys(session, ref) == {OWNER_KEY: token}
    placed = ok(run(server, host, sid, "place", {"vm": uuid}))  # before: NUMA_VM_BUSY for 120 s
    assert placed["reserved"] and _owner_keys(session, ref) == {}
    assert ok(run(server, host, sid, "release", {"vm": uuid}))["boot_pin"] == "restored"


def test_a_live_caller_of_this_machine_is_not_passed_over(holder):
    """The same machine and boot (the loopback's other host is a plugin of this machine
    too, and need not wait for the holder's lock here): the holder is alive, so its
    key goes by its time, and the refusal says how long a dead one would hold the VM."""
    (server, session, host, sid), ref, uuid, child, token = holder
    other = session.xenapi.host.get_all()[1]
    for fn, args in (("place", {"vm": uuid}), ("release", {"vm": uuid}),
                     ("set_policy", {"vm": uuid, "mode": "strict"})):
        details = err(run(server, other, sid, fn, args))
        assert details[0] == "NUMA_VM_BUSY" and "by another caller" in details[1], details
        assert "at once on its own host" in details[1] and "from another host once its 120 s" in details[1]
    assert child.poll() is None and _owner_keys(session, ref) == {OWNER_KEY: token}


@pytest.mark.parametrize("kind", ["older version's", "another boot's"])
def test_a_token_that_names_no_process_of_this_boot_goes_by_its_time(ctx, kind):
    """A dead process (it exited) named with another boot id, and a token without one:
    refused until the time is up, as before."""
    server, session, host, sid = ctx
    dead = _dead_token(time.time())
    holder = tokens.holder_of(dead)
    assert holder is not None and process_identity.gone(holder)  # as this machine sees it
    if kind == "older version's":
        token = "{}/{}".format(uuidlib.uuid4(), dead.rpartition("/")[2])
    else:
        token = tokens.make(str(uuidlib.uuid4()), float(dead.rpartition("/")[2]),
                            tokens.Holder(OTHER_BOOT, holder.pid, holder.start))
    ref, uuid = server.add_vm("vm", 2, G, other_config={OWNER_KEY: token})
    details = err(run(server, host, sid, "place", {"vm": uuid}))
    assert details[0] == "NUMA_VM_BUSY" and _owner_keys(session, ref) == {OWNER_KEY: token}
    expires = float(token.rpartition("/")[2])
    assert not owner_token_stale(token, expires - 1) and owner_token_stale(token, expires + 1)  # as before


def test_a_token_is_stale_at_once_only_when_its_process_of_this_boot_is_gone(sleeper):
    expires = NOW + OWNER_TTL
    dead = _dead_token(NOW)
    assert owner_token_stale(dead, NOW)  # before: judged by its time alone
    alive = tokens.make("u", expires, process_identity.this_process(pid=sleeper.pid))
    mine = owner_token(NOW)
    for token in (alive, mine):
        assert tokens.holder_of(token) is not None and not owner_token_stale(token, NOW)
        assert owner_token_stale(token, expires + 1)  # a live holder still goes at its time
    for old in ("u/{:.0f}".format(expires), "u/a/b/{:.0f}".format(expires), "u/x:y:2/{:.0f}".format(expires),
                "u/x:0:2/{:.0f}".format(expires), "u/:1:2/{:.0f}".format(expires)):
        assert not owner_token_stale(old, NOW, gone=lambda holder: True), old  # names no process: by time
    for junk in ("a-token-with-no-time", "u/{}:1:2/never".format(boot.boot_id()), "u/x:1:2/inf"):
        assert owner_token_stale(junk, NOW, gone=lambda holder: False), junk  # stale, as before


def test_the_token_names_this_process():
    token = owner_token(NOW)
    assert tokens.holder_of(token) == process_identity.this_process() is not None
    assert tokens.holder_of(token).pid == os.getpid() and float(token.rpartition("/")[2]) == NOW + OWNER_TTL
    nobody = owner_token(NOW, identify=lambda: None)  # /proc unreadable: the older form, by time alone
    assert tokens.holder_of(nobody) is None and len(nobody.split("/")) == 2


STAT = "{} (a) b (c) S 1 {} 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {} 12345 67 18446744073709551615"


def _proc(files: dict):
    def read(path: str):
        value = files.get(path)
        if isinstance(value, OSError):
            raise value
        return value
    return read


def _signal0(answer):
    """A stand-in for os.kill(pid, 0) that raises ``answer`` (or returns, for None)."""
    def signal0(pid):
        if answer is not None:
            raise answer
    return signal0


def test_gone_reads_the_start_time_after_the_last_parenthesis_and_tells_only_what_it_knows():
    me = tokens.Holder(OTHER_BOOT, 42, 9000)
    this_boot = lambda: OTHER_BOOT  # noqa: E731
    stat = "/proc/42/stat"
    assert process_identity.start_time(STAT.format(42, 7, 9000)) == 9000  # comm "a) b (c", field 22
    assert process_identity.this_process(_proc({stat: STAT.format(42, 7, 9000)}), this_boot, pid=42) == me
    assert not process_identity.gone(me, _proc({stat: STAT.format(42, 7, 9000)}), this_boot)  # alive
    assert process_identity.gone(me, _proc({}), this_boot, _signal0(ProcessLookupError(3, "no such process")))
    # absent from /proc but there for the kernel: /proc with hidepid hides another user's process
    assert not process_identity.gone(me, _proc({}), this_boot, _signal0(PermissionError(1, "not permitted")))
    assert not process_identity.gone(me, _proc({}), this_boot, _signal0(None))
    assert process_identity.gone(me, _proc({stat: STAT.format(42, 7, 9001)}), this_boot)  # pid used again
    assert not process_identity.gone(me, _proc({stat: PermissionError(13, "denied")}), this_boot)  # cannot tell
    assert not process_identity.gone(me, _proc({stat: "42 (garbled"}), this_boot)
    assert not process_identity.gone(me, _proc({}), lambda: boot.boot_id() or "x")  # another boot's
    assert not process_identity.gone(me, _proc({}), lambda: "")  # this boot's id unknown
    assert process_identity.this_process(_proc({}), this_boot, pid=42) is None
    assert process_identity.this_process(_proc({stat: STAT.format(42, 7, 9000)}), lambda: "", pid=42) is None


def test_still_owning_keeps_a_live_caller_of_this_machine_below_a_key_above_its_own(sleeper):
    """A key above ours is a takeover only once ours is stale: the caller's own token names
    it, alive, so a caller with an old read (here a live process of this machine) is no
    takeover.  Ours named as gone (``gone``) is stale at once: the key above took it over."""
    mine = owner_token(NOW)
    above = tokens.make("u", NOW + OWNER_TTL, process_identity.this_process(pid=sleeper.pid))
    session = _Session({OWNER_KEY: mine, OWNER_KEY + ".1": above})
    still_owning(session, "vm", "uuid", mine)  # no VmBusy
    with pytest.raises(VmBusy) as caught:
        still_owning(session, "vm", "uuid", mine, gone=lambda holder: holder == tokens.holder_of(mine))
    assert "taken over" in str(caught.value.params)
