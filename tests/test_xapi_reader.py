"""xapi-numad reads xapi off its cycle (ops/xapi_reader.py).

Every XenAPI call of xapi-numad waits at most 20 s, but its reads were made in
the cycle: a wedged xapi (it takes the connection and never answers) held up
homing, pin restores and the recovery of dead page movers for a deadline at a
time.  Here xapi is the loopback server, whose ``wedged`` calls are held until
it stops: a cycle that returns while the server still holds the call did not
wait on it.  Handshakes are the server's count of calls as they arrive and the
reader's rounds; the guard only keeps a broken build from hanging the suite.
"""
import logging
import queue
import threading
import time
import types

from test_daemon import place_then_plain_start, swapped_host

from xapi_numa import daemon
from xapi_numa.ops import xapi_link
from xapi_numa.ops.runtime import LOG
from xapi_numa.ops.xapi_link import XapiLink, local_login
from xapi_numa.ops.xapi_reader import XapiReader
from xapi_numa.state.ledger import Ledger

GUARD = 30.0  # seconds past which a wait counts as hung
HELD = 4 * GUARD  # a wedged call's deadline here: longer than any wait of a test


def arrives(server, method, count=1):
    """Wait for ``count`` calls of ``method`` to have reached the server (it counts a call as
    it arrives, before a wedge holds it)."""
    deadline = time.monotonic() + GUARD
    while server.calls[method] < count:
        assert time.monotonic() < deadline, "{} never reached xapi".format(method)
        time.sleep(0.01)


class Worker:
    """One thread that runs what it is given, in order: the daemon's runtime is built and
    cycled in it (its SQLite connection is that thread's), while the test watches xapi."""

    def __init__(self):
        self.jobs = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            fn, done, box = self.jobs.get()
            try:
                box["value"] = fn()
            except BaseException as err:  # noqa: BLE001 - handed back to the test
                box["error"] = err
            done.set()

    def submit(self, fn):
        """The Event set once ``fn`` has run, and its result."""
        done, box = threading.Event(), {}
        self.jobs.put((fn, done, box))
        return done, box

    def call(self, fn):
        done, box = self.submit(fn)
        assert done.wait(GUARD), "hung"
        if "error" in box:
            raise box["error"]
        return box["value"]


def to_xapi(server, monkeypatch, inventory):
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", server.url)
    monkeypatch.setenv("XAPI_NUMA_POOL_PASSWORD", server.password)
    monkeypatch.setenv("XAPI_NUMA_INVENTORY", inventory)


def daemon_on(tmp_path, monkeypatch, server, worker, sim, path, inventory=None, ledger=None):
    """xapi-numad's runtime over ``sim`` (its state at ``path``), built in ``worker`` as the daemon
    builds it, talking to ``server`` (a wedged call is held for HELD seconds); and what it
    closes at stop."""
    to_xapi(server, monkeypatch, inventory or str(tmp_path / "no-inventory"))
    monkeypatch.setattr(daemon, "local_login", lambda: local_login(timeout=HELD))
    spec = "sim:" + path
    args = daemon.parse_args(["--backend", spec, "--ledger", ledger or str(tmp_path / "l.db")])
    return worker.call(lambda: daemon.build_runtime(args, spec, sim))


def test_a_wedged_records_read_holds_up_no_cycle_and_homing_goes_on(pool, tmp_path, monkeypatch):
    """The cycle read the VMs' records itself (every 30 s): with xapi wedged on
    VM.get_all_records, it waited there, and C's displaced vCPU stayed away."""
    server, _ = pool
    path = str(tmp_path / "h.json")
    sim, a, c = swapped_host(path)
    server.wedged.add("VM.get_all_records")
    monkeypatch.setattr("xapi_numa.ops.xapi_reader.FIRST_READ_S", 0.1)
    worker = Worker()
    rt, closer = daemon_on(tmp_path, monkeypatch, server, worker, sim, path)
    written, real = [], sim.set_vcpu_affinity
    monkeypatch.setattr(sim, "set_vcpu_affinity", lambda domid, *a, **kw: written.append(domid) or real(domid, *a, **kw))

    def cycles():
        for _ in range(6):
            rt.cycle()
            sim.run(1.0)
    before = server.calls["VM.get_all_records"]
    done, _ = worker.submit(cycles)
    arrives(server, "VM.get_all_records", before + 1)
    try:
        assert done.wait(GUARD), "a cycle waited on the wedged xapi"
        # the read is still held (wedged calls answer only at the server's stop): no other was made
        assert server.calls["VM.get_all_records"] == before + 1
        assert c in written  # C's vCPU was brought home meanwhile
    finally:
        closer.close()


def test_a_wedged_lookup_of_a_new_domain_holds_up_no_cycle(pool, tmp_path, monkeypatch):
    """Auto-settle looked a new domain's VM up in the cycle: with xapi wedged on
    VM.get_by_uuid, the cycle waited.  Now the reader's thread looks it up, the cycle
    goes on, and the VM is settled (in the cycle) once xapi answers."""
    server, session = pool
    host, ref, uuid, _ = place_then_plain_start(pool, monkeypatch)  # xapi-numad settles it
    sim = server.sims[host]
    worker = Worker()
    rt, closer = daemon_on(tmp_path, monkeypatch, server, worker, sim, sim.path,
                           inventory=server.inventories[host], ledger=server.ledgers[host])
    server.wedged.add("VM.get_by_uuid")
    before = server.calls["VM.get_by_uuid"]  # (place's own)
    try:
        done, box = worker.submit(rt.cycle)
        arrives(server, "VM.get_by_uuid", before + 1)
        assert done.wait(GUARD), "the cycle waited on the wedged xapi"
        assert box["value"]["settled"] == 0 and server.calls["VM.get_by_uuid"] == before + 1  # still held
        server.wedged.clear()
        server._unwedged.set()  # xapi answers again (the held call too)
        settled = 0
        for _ in range(20):
            closer.next_round(GUARD)
            settled += worker.call(rt.cycle)["settled"]
            if settled:
                break
        assert settled == 1
        assert "mask" not in session.xenapi.VM.get_VCPUs_params(ref)
        assert Ledger(server.ledgers[host]).reservations() == []
    finally:
        closer.close()


def test_records_refresh_into_policies_and_a_failed_read_keeps_the_last(pool, monkeypatch, caplog):
    server, session = pool
    to_xapi(server, monkeypatch, "/nonexistent-inventory")
    ref, out = server.add_vm("out", 1, 64 << 20, other_config={"numa_rebalance": "false"})
    _, strict = server.add_vm("strict", 1, 64 << 20, other_config={"numa_mode": "strict", "numa_nodes": "1"})
    now = [0.0]
    reader = XapiReader(XapiLink(lambda: local_login(timeout=0.5), lambda: now[0]), lambda: now[0])
    try:
        with caplog.at_level(logging.INFO, logger=LOG.name):
            assert reader.rebalance_opted_out(out) and not reader.rebalance_opted_out(strict)
            assert reader.policy_of(strict).mode == "strict"
            assert reader.rebalance_opted_out("not-listed-yet") and reader.policy_of("not-listed-yet").mode != "strict"
            session.xenapi.VM.remove_from_other_config(ref, "numa_rebalance")
            assert reader.next_round(GUARD) and reader.rebalance_opted_out(out)  # read again after 30 s only
            now[0] += 31.0
            assert reader.next_round(GUARD) and not reader.rebalance_opted_out(out)
            # xapi stops answering in time: the last records stand, said once
            session.xenapi.VM.add_to_other_config(ref, "numa_rebalance", "false")
            server.delays["VM.get_all_records"] = 2.0
            now[0] += 31.0
            assert reader.next_round(GUARD) and not reader.rebalance_opted_out(out)
            assert reader.policy_of(strict).mode == "strict"
            now[0] += 1.0  # past the first back-off: tried again, failing again
            assert reader.next_round(GUARD) and not reader.rebalance_opted_out(out)
            del server.delays["VM.get_all_records"]
            now[0] += 120.0
            assert reader.next_round(GUARD) and reader.rebalance_opted_out(out)
    finally:
        reader.close()
    said = [r.getMessage() for r in caplog.records if "reachable" in r.getMessage()]
    assert said == ["xapi unreachable: running without it", "xapi reachable again"], said


def test_a_failure_in_the_thread_is_said_once_and_backs_off(pool, monkeypatch, caplog):
    """A bug or a record unlike any xapi sends must not end the thread silently: the cycle
    would go on with records that never change again."""
    server, session = pool
    to_xapi(server, monkeypatch, "/nonexistent-inventory")
    ref, out = server.add_vm("out", 1, 64 << 20, other_config={"numa_rebalance": "false"})
    now = [0.0]
    reader = XapiReader(XapiLink(lambda: local_login(timeout=5.0), lambda: now[0]), lambda: now[0])
    real, tries = xapi_link.stored_or_default, []

    def broken(other_config):
        tries.append(now[0])
        raise RuntimeError("a bug")
    try:
        assert reader.rebalance_opted_out(out)
        monkeypatch.setattr(xapi_link, "stored_or_default", broken)
        session.xenapi.VM.remove_from_other_config(ref, "numa_rebalance")
        with caplog.at_level(logging.INFO, logger=LOG.name):
            for _ in range(3):
                now[0] += 31.0
                assert reader.next_round(GUARD)
            assert reader.next_round(GUARD)  # backing off (on the link's clock): not tried
            assert tries == [31.0, 62.0, 93.0] and reader.rebalance_opted_out(out)  # the last records stand
            monkeypatch.setattr(xapi_link, "stored_or_default", real)
            now[0] += 60.0
            assert reader.next_round(GUARD) and not reader.rebalance_opted_out(out)
    finally:
        reader.close()
    said = [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records if "reading xapi" in r.getMessage()]
    assert [m for m, _ in said] == ["reading xapi failed: keeping the last records", "reading xapi works again"]
    assert said[0][1]["error"] == "RuntimeError: a bug"


def test_a_stop_over_a_wedged_xapi_is_prompt_and_logs_nothing_out(pool, monkeypatch):
    """The thread is held in a call to a wedged xapi: the stop does not wait for it (a daemon
    thread, it dies with the process), and no logout is sent over the same wedged xapi; a
    settle the cycle would make meanwhile does not wait behind the held read either."""
    server, _ = pool
    to_xapi(server, monkeypatch, "/nonexistent-inventory")
    server.wedged.add("*")
    reader = XapiReader(XapiLink(lambda: local_login(timeout=HELD), time.monotonic), time.monotonic,
                        first_read=0.1)
    assert reader.guest_cpus() is None and reader.rebalance_opted_out("any")  # nothing read: left alone
    arrives(server, "VM.get_all_records")
    assert reader.use(lambda session: 1 / 0) is None  # busy: tried again next cycle, not waited for
    done, _ = Worker().submit(reader.close)
    assert done.wait(GUARD), "the stop waited on the wedged xapi"
    assert server.calls["VM.get_all_records"] == 1 and server.calls["session.logout"] == 0


def test_the_plugin_and_the_cli_keep_reading_in_their_own_thread():
    """Only xapi-numad reads through a thread: a link reads when asked, and the dry runs'
    view of the VMs (vm_view) is the link's own."""
    calls = []
    session = types.SimpleNamespace(xenapi=types.SimpleNamespace(VM=types.SimpleNamespace(
        get_all_records=lambda: calls.append(threading.current_thread()) or {})))
    link = XapiLink(lambda: session, time.monotonic, raises=True)
    view = xapi_link.vm_view(link)
    assert view["opted_out"]("x") is True
    assert calls == [threading.current_thread()]
