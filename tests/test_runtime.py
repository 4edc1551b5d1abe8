"""xapi-numad's hardening: it outlives failures, stops cleanly, runs alone, spares
debug key 'u', and keeps its xapi link alive (issue: daemon faults)."""
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time

import attrs
import pytest

from xapi_numa import daemon
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.xapi import XapiError
from xapi_numa.core.topology import Topology
from xapi_numa.ops.runtime import LOG, Runtime, Settings
from xapi_numa.ops.xapi_link import XapiLink
from xapi_numa.state.db import Database
from xapi_numa.core.homing import PinRecord
from xapi_numa.state.pins import PinJournal
from xapi_numa.core.actions import MoveMemory
from xapi_numa.state.moves import DONE, RUNNING, MoveJournal

from test_daemon import swapped_host

TOPO_N0 = frozenset(range(4))  # node 0 of swapped_host's 2 x 4 host


def pinned_over_xapi(tmp_path, read_records, logins=None):
    """swapped_host with a temporary pin of ours on A's vCPU 0, and a runtime whose xapi link
    reads the VMs' records with ``read_records`` (``logins``: a list each login is noted in).
    (sim, A's domid, the runtime, A's hard affinity before the pin.)"""
    import types

    from xapi_numa.core.actions import PinTemporarily

    sim, a, _ = swapped_host(str(tmp_path / "h.json"))
    session = types.SimpleNamespace(xenapi=types.SimpleNamespace(VM=types.SimpleNamespace(
        get_all_records=read_records)))
    link = XapiLink(lambda: (logins.append(sim.clock()) if logins is not None else None) or session, sim.clock)
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings(), policy_of=link.policy_of,
                 opted_out=link.rebalance_opted_out, backend_opt_out=link.backend_affinity_off,
                 guest_cpus=link.guest_cpus)
    uuid = next(d.uuid for d in sim.domains() if d.domid == a)
    all_hard = sim.vcpus(a)[0].hard
    rt.executor.apply([PinTemporarily(a, uuid, 0, TOPO_N0, all_hard, "displaced")])
    return sim, a, rt, all_hard


class Flaky:
    """A hypervisor view that fails in ways that are not NumaErrors, a few times."""

    def __init__(self, hv, failures):
        self.hv, self.failures = hv, list(failures)

    def __getattr__(self, name):
        return getattr(self.hv, name)

    def domains(self):
        if self.failures:
            raise self.failures.pop(0)
        return self.hv.domains()


def test_the_loop_outlives_cycles_that_fail_in_any_way(tmp_path, caplog):
    sim, a, c = swapped_host(str(tmp_path / "h.json"))
    flaky = Flaky(sim, [ConnectionRefusedError(111, "xapi went away"), RuntimeError("a bug")])
    rt = Runtime(flaky, Database(str(tmp_path / "l.db")))
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        daemon.run_loop(rt, period=0.01, cycles=5, stop={"now": False})
    assert rt.cycles == 5
    failed = [r for r in caplog.records if r.getMessage() == "cycle failed"]
    assert len(failed) == 2 and "ConnectionRefusedError" in failed[0].fields["error"]


def test_a_failing_upkeep_step_is_logged_once_and_the_others_still_run(tmp_path, caplog, monkeypatch):
    sim, a, c = swapped_host(str(tmp_path / "h.json"))
    rt = Runtime(sim, Database(str(tmp_path / "l.db")))

    def full_disk():
        raise sqlite3.OperationalError("database or disk is full")
    monkeypatch.setattr(rt.ledger, "expire", full_disk)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        reports = [rt.cycle() for _ in range(3)]
    assert all("reconciled" in r and "recovered" in r and "expired" not in r for r in reports)
    assert len([r for r in caplog.records if r.getMessage() == "upkeep step failed"]) == 1


def test_a_cycle_whose_actions_fail_still_does_its_upkeep(tmp_path, monkeypatch):
    """Upkeep unpauses what a dead page mover left paused: no failure before it may skip it."""
    from xapi_numa.state.ledger import Ledger
    sim, a, c = swapped_host(str(tmp_path / "h.json"))
    db = Database(str(tmp_path / "l.db"))
    rt = Runtime(sim, db)
    Ledger(db=db).reserve("vm-x", {0: 1 << 20}, 0.001, lambda: {0: 1 << 30})
    time.sleep(0.01)

    def broken(actions):
        raise RuntimeError("a bug in an action")
    monkeypatch.setattr(rt.executor, "apply", broken)
    with pytest.raises(RuntimeError):
        rt.cycle()
    with db.read() as conn:  # expired rows are deleted by upkeep only
        assert conn.execute("SELECT COUNT(*) FROM reservation").fetchone()[0] == 0


def test_what_the_daemon_keeps_per_vm_goes_with_the_vm(tmp_path):
    sim, a, c = swapped_host(str(tmp_path / "h.json"))
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings(rebalancing=False))
    for i in range(5):
        d = sim.create("vm{}".format(i), 1, 64 << 20, uuid="dddddddd-0000-4000-8000-00000000000{}".format(i))
        sim.run(0.2)
        rt.cycle()
        sim.destroy(d)
    rt.cycle()
    alive = {d.uuid for d in sim.domains()}
    assert set(rt.outside) <= alive and set(rt.restored_at) <= alive
    assert {u for u, _ in rt.repicked_at} <= alive and set(rt.demand_rose_at) <= {d.domid for d in sim.domains()}


def test_a_vm_started_again_is_not_taken_for_re_picked(tmp_path):
    """Its new domain's displaced vCPUs are re-picked: the mark was its last domain's
    (it was kept by UUID, so a VM rebooted within the bounce window was left to the balancer)."""
    sim, a, c = swapped_host(str(tmp_path / "h.json"))
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings(rebalancing=False))
    uuid = "dddddddd-0000-4000-8000-00000000000f"
    first = sim.create("again", 1, 64 << 20, uuid=uuid)
    rt.repicked_at[(uuid, first)] = sim.clock()
    rt.forget_the_gone(rt.snapshot())
    assert (uuid, first) in rt.repicked_at
    sim.destroy(first)
    second = sim.create("again", 1, 64 << 20, uuid=uuid)
    assert second != first
    rt.forget_the_gone(rt.snapshot())
    assert rt.repicked_at == {}


def _daemon(path, *extra):
    # this interpreter's xapi-numad (an installed script may import another checkout's)
    argv = [sys.executable, "-m", "xapi_numa.daemon", "--backend", "sim:" + path, "--period", "0.1", "--threshold", "0"]
    return subprocess.Popen(argv + ["--no-xapi"] + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)


def test_sigterm_restores_every_temporary_pin_and_a_second_daemon_is_refused(tmp_path):
    path = str(tmp_path / "h.json")
    sim, a, c = swapped_host(path)
    first = _daemon(path, "--period", "3600")  # one cycle at start, then it waits
    db = Database(path + ".ledger.db")
    journal = PinJournal(db)
    try:
        # "started" comes after its start-up restore, which would take the pin recorded below
        started = first.stderr.readline()
        assert '"started"' in started, started
        time.sleep(1.0)  # its one cycle
        # a temporary pin of the daemon's, not undone yet (as a cycle leaves it while the vCPU travels)
        uuid = next(d.uuid for d in sim.domains() if d.domid == a)
        journal.record(PinRecord(uuid, 1, a, TOPO_N0, sim.topology().all_cpus, sim.clock()))
        sim.set_vcpu_affinity(a, 1, hard=TOPO_N0)
        second = _daemon(path)
        out, err = second.communicate(timeout=30)
        assert second.returncode == daemon.EXIT_ANOTHER_COPY and "Traceback" not in err
        # who holds it, and how to stop it: a simulated host's daemon is someone's process, not systemd's
        assert "another xapi-numad (pid {}) already runs".format(first.pid) in err, err
        assert "(kill {})".format(first.pid) in err and "systemctl" not in err, err
        # nor is the host replaced under it: a new host deletes the database the daemon holds
        cli = os.path.join(os.path.dirname(sys.executable), "xapi-numa")
        init = subprocess.run([cli, "sim", "init", path, "--force", "--nodes", "2", "--cpus-per-node", "2",
                               "--memory-per-node", "1G"], capture_output=True, text=True, timeout=60)
        assert init.returncode != 0 and "xapi-numad runs for the simulated host" in init.stderr, init.stderr
        assert "Traceback" not in init.stderr and journal.entries()
    finally:
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=30)
        err = started + err
    assert first.returncode == 0, err
    events = [json.loads(line) for line in err.splitlines()]
    assert events[-1]["event"] == "stopped", events
    stop = [e for e in events if e["event"] == "temporary pins restored" and e["why"] == "stop"]
    assert stop and stop[0]["restored"] >= 1 and stop[0]["left"] == 0, events
    assert journal.entries() == []
    assert all(v.hard == sim.topology().all_cpus for d in (a, c) for v in sim.vcpus(d))


class DebugKeyHost:
    """The simulator, dressed as stock Xen: pages per node only through debug key 'u'."""

    def __init__(self, sim, memory=None):
        self.sim, self.scans, self.memory = sim, 0, memory

    def __getattr__(self, name):
        return getattr(self.sim, name)

    def capabilities(self):
        caps = self.sim.capabilities()
        return attrs.evolve(caps, features=dict(caps.features, node_pages="fallback"), node_claims=False)

    def node_pages(self, domid):
        self.scans += 1
        return self.sim.node_pages(domid)

    def topology(self):
        topo = self.sim.topology()
        if self.memory is None:
            return topo
        return Topology.uniform(len(topo.nodes), len(topo.nodes[0].cpus), self.memory // len(topo.nodes))


def test_debug_key_scans_are_rare_and_off_on_big_hosts(tmp_path):
    sim, a, c = swapped_host(str(tmp_path / "h.json"))
    host = DebugKeyHost(sim)
    rt = Runtime(host, Database(str(tmp_path / "l.db")), Settings(page_scan_interval=10.0))
    for _ in range(25):  # 25 cycles over 12.5 simulated seconds
        rt.cycle()
        sim.run(0.5)
    guests = len([d for d in sim.domains() if d.domid != 0])
    assert host.scans == 2 * guests  # at the start and 10 s later, every guest from the same dump
    big = DebugKeyHost(sim, memory=4 << 40)
    rt = Runtime(big, Database(str(tmp_path / "l2.db")), Settings(page_scan_max_memory=1 << 40))
    for _ in range(5):
        rt.cycle()
    assert big.scans == 0


def test_a_reading_taken_while_our_mover_works_does_not_replace_the_model(tmp_path):
    """On stock Xen a 'u' reading taken mid-move stood until the next scan after the move
    ended: the rebalancer then started a second memory-follow step for memory already
    local (seen on real Xen, 2026-12-03)."""
    sim, a, c = swapped_host(str(tmp_path / "h.json"))
    host = DebugKeyHost(sim)
    rt = Runtime(host, Database(str(tmp_path / "l.db")), Settings(page_scan_interval=10.0))
    rt.cycle()
    d = next(x for x in sim.domains() if x.domid == a)
    read_before = dict(rt.readings.pages[d.uuid])
    assert read_before.get(1, 0) == 0
    journal = MoveJournal(rt.db)
    lock = journal.begin(d, 1, {"state": RUNNING})  # our mover, taking A's memory to node 1
    rt.readings.account_move(MoveMemory(a, d.uuid, 1))
    model = dict(rt.readings.pages[d.uuid])
    assert model.get(1) == sum(read_before.values())
    sim.run(11.0)
    rt.cycle()  # a scan while it moves: Xen still has the pages on node 0
    assert host.scans >= 4 and rt.readings.pages[d.uuid] == model
    journal.finish(d.uuid, DONE, {"state": DONE})
    lock.release()
    sim.run(11.0)
    rt.cycle()  # the first scan after the move is believed again
    assert rt.readings.pages[d.uuid] == dict(sim.node_pages(a))


class FakeSession:
    def __init__(self, fail_with=None):
        self.fail_with = fail_with


def test_the_xapi_link_logs_in_again_with_back_off(caplog):
    now = [0.0]
    logins = []

    def login():
        logins.append(now[0])
        if len(logins) <= 2:
            raise ConnectionRefusedError(111, "connection refused")
        return FakeSession()

    link = XapiLink(login, lambda: now[0])
    calls = []

    def use(session):
        calls.append(session)
        if len(calls) == 1:
            raise XapiError(["SESSION_INVALID", "OpaqueRef:x"])
        return "ok"

    with caplog.at_level(logging.WARNING):
        assert link.use(use) is None        # refused
        now[0] = 0.5
        assert link.use(use) is None        # backing off: no login tried
        now[0] = 1.0
        assert link.use(use) is None        # refused again (delay doubles to 2 s)
        now[0] = 3.0
        assert link.use(use) is None        # logged in; the session was invalid: dropped
        now[0] = 4.0
        assert link.use(use) is None        # still the same outage: backing off (4 s), not 1 s
        now[0] = 7.0
        assert link.use(use) == "ok"        # logged in again
    assert logins == [0.0, 1.0, 3.0, 7.0]
    # logged once per outage (a login that works does not end it: a call that works does),
    # not once per try, naming what was unreachable
    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(down) == 1 and down[0].fields["xapi"] in ("unix:/var/lib/xcp/xapi",
                                                          os.environ.get("XAPI_NUMA_XENAPI_URL"))
    with pytest.raises(XapiError):          # other xapi failures are not "xapi is away"
        link.use(lambda s: (_ for _ in ()).throw(XapiError(["HANDLE_INVALID", "VM"])))


def test_xapi_answering_with_errors_fails_no_cycle_and_temporary_pins_still_go(tmp_path, caplog):
    """xapi up but refusing every call (a pool member whose master is gone, emergency mode):
    the VMs' records read raised out of every cycle, before the restores, so a pin of
    homing's stayed for good.  The last records stand, the read backs off, logged once."""
    reads = []

    def refuse():
        reads.append(sim.clock())
        raise XapiError(["HOST_IN_EMERGENCY_MODE"])
    sim, a, rt, all_hard = pinned_over_xapi(tmp_path, refuse)
    with caplog.at_level(logging.WARNING):
        for _ in range(40):
            sim.run(1.0)
            rt.cycle()  # raised XapiError at every cycle before
    assert rt.pins.entries() == [] and sim.vcpus(a)[0].hard == all_hard
    assert len(reads) <= 7  # 1, 2, 4, ... s apart, not several per cycle
    assert len([r for r in caplog.records if "refused the VMs' records" in r.getMessage()]) == 1


def test_a_stop_restores_pins_of_a_domain_the_executor_was_backing_off_from(tmp_path):
    """One refused write to a domain (EBUSY on its node affinity) put it in a back-off; a
    SIGTERM then deferred its pin's restore and the stop left the pin for good."""
    import errno

    from xapi_numa import daemon
    from xapi_numa.core.actions import PinTemporarily, SetNodeAffinity
    from xapi_numa.errors import HypervisorError
    sim, a, c = swapped_host(str(tmp_path / "h.json"))
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings())
    uuid = next(d.uuid for d in sim.domains() if d.domid == a)
    all_hard = sim.vcpus(a)[0].hard
    rt.executor.apply([PinTemporarily(a, uuid, 0, TOPO_N0, all_hard, "displaced")])
    real = sim.set_node_affinity
    sim.set_node_affinity = lambda *args: (_ for _ in ()).throw(HypervisorError(errno.EBUSY, "set node affinity"))
    rt.executor.apply([SetNodeAffinity(a, uuid, frozenset([1]), "a rebalancer write")])
    sim.set_node_affinity = real
    assert daemon.restore_at_stop(rt)
    assert rt.pins.entries() == [] and sim.vcpus(a)[0].hard == all_hard


def test_a_vm_not_read_in_a_page_scan_keeps_its_last_reading(tmp_path):
    """On stock Xen (pages from debug key 'u', scanned every page_scan_interval), a VM
    whose vCPUs could not be read during the scan lost its pages until the next scan:
    not movable, no memory following, no fix-up, for ten minutes by default."""
    import errno

    from xapi_numa.errors import HypervisorError
    from xapi_numa.ports.hypervisor import Capabilities
    sim, a, c = swapped_host(str(tmp_path / "h.json"))
    caps = sim.capabilities()
    sim.capabilities = lambda: Capabilities(caps.scheduler, False, dict(caps.features, node_pages="fallback"), True)
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings(page_scan_interval=5))
    uuid = next(d.uuid for d in sim.domains() if d.domid == a)
    sim.run(1.0)
    rt.cycle()
    before = dict(rt.readings.pages[uuid])
    real = sim.vcpus
    sim.vcpus = lambda domid: (_ for _ in ()).throw(HypervisorError(errno.EIO, "vcpus")) if domid == a \
        else real(domid)
    scans = rt.readings.last_scan
    while rt.readings.last_scan == scans:  # up to the next scan, busy0 unreadable through it
        sim.run(1.0)
        rt.cycle()
    sim.vcpus = real
    assert rt.readings.pages.get(uuid) == before and rt.readings.of_domid.get(uuid) == a
    # its pages (not its vCPUs) unreadable in the scan: the same
    real_pages = sim.node_pages
    sim.node_pages = lambda domid: (_ for _ in ()).throw(HypervisorError(errno.EIO, "pages")) if domid == a \
        else real_pages(domid)
    scans = rt.readings.last_scan
    while rt.readings.last_scan == scans:
        sim.run(1.0)
        rt.cycle()
    sim.node_pages = real_pages
    assert rt.readings.pages.get(uuid) == before and rt.readings.of_domid.get(uuid) == a


def test_the_daemon_logs_its_xapi_session_out_when_it_stops(pool, tmp_path, monkeypatch):
    """Every restart (rpm -U, Restart=on-failure) once left one more session on xapi."""
    server, session = pool
    host = next(iter(server.hosts))
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", server.url)
    monkeypatch.setenv("XAPI_NUMA_POOL_PASSWORD", "xenroot")
    monkeypatch.setenv("XAPI_NUMA_RUN_DIR", str(tmp_path))
    before = len(server.sessions)
    for _ in range(2):
        assert daemon.main(["--backend", "sim:" + server.sims[host].path, "--cycles", "2", "--period", "0.05",
                            "--ledger", str(tmp_path / "l.db")]) == 0
    assert len(server.sessions) == before


def test_every_log_line_carries_the_wall_clock_as_time():
    """The cycle line once carried the host clock (monotonic on Xen) under "time"."""
    record = logging.LogRecord("xapi-numad", logging.INFO, __file__, 1, "cycle", None, None)
    record.fields = {"time": 13.0, "pinned": 2}
    line = json.loads(daemon.JsonFormatter().format(record))
    assert abs(line["time"] - time.time()) < 60 and line["pinned"] == 2 and line["event"] == "cycle"


class UnreadableVcpus:
    """A hypervisor view on which one domain's vCPUs cannot be read for a while (an error
    other than the domain being gone)."""

    def __init__(self, hv, domid):
        self.hv, self.domid, self.failing = hv, domid, False

    def __getattr__(self, name):
        return getattr(self.hv, name)

    def vcpus(self, domid):
        from xapi_numa.errors import HypervisorError
        if self.failing and domid == self.domid:
            raise HypervisorError(5, "reading the vCPUs of domain {}".format(domid))  # EIO
        return self.hv.vcpus(domid)


def pinned_then_unreadable(tmp_path):
    """A swapped host after one cycle of the daemon, which pinned A's displaced vCPU home;
    A's vCPUs can then be made unreadable (``view.failing``)."""
    sim, a, _ = swapped_host(str(tmp_path / "h.json"))
    view = UnreadableVcpus(sim, a)
    rt = Runtime(view, Database(str(tmp_path / "l.db")), Settings(threshold=0.0))
    rt.cycle()
    uuid = next(d.uuid for d in sim.domains() if d.domid == a)
    assert any(p.uuid == uuid for p in PinJournal(rt.db).entries())  # homing pinned A's vCPU
    return sim, a, uuid, view, rt


def test_a_vm_whose_vcpus_cannot_be_read_for_a_cycle_is_not_taken_for_gone(tmp_path):
    """A read that failed for another reason than the domain being gone made the VM look
    gone for that cycle: its temporary pin was forgotten ("the VM is gone") and stayed on
    its vCPU for good, and its demand history went with it."""
    sim, a, uuid, view, rt = pinned_then_unreadable(tmp_path)
    assert uuid in {u for u, _ in rt.rebalancer.unit_demand}
    view.failing = True
    sim.run(1.0)
    rt.cycle()
    assert any(p.uuid == uuid for p in PinJournal(rt.db).entries())  # kept, not forgotten
    assert uuid in {u for u, _ in rt.rebalancer.unit_demand}  # its demand history too
    view.failing = False
    for _ in range(4):
        sim.run(1.0)
        rt.cycle()
    assert not any(p.uuid == uuid for p in PinJournal(rt.db).entries())  # undone once home
    assert all(v.hard == sim.topology().all_cpus for v in sim.vcpus(a))


def test_at_stop_the_pins_of_a_vm_not_read_are_kept_for_the_next_start(tmp_path):
    sim, a, uuid, view, rt = pinned_then_unreadable(tmp_path)
    view.failing = True
    rt.restore_all_pins("stop")
    assert any(p.uuid == uuid for p in PinJournal(rt.db).entries())  # not forgotten as "gone"
    view.failing = False
    rt.restore_all_pins("start")
    assert PinJournal(rt.db).entries() == []
    assert all(v.hard == sim.topology().all_cpus for v in sim.vcpus(a))


def test_a_vm_not_read_for_a_cycle_is_no_change_of_demand_for_credit2():
    """One failed read made the VM look stopped: credit2's settling window began (pins
    held longer) and its vCPUs' displaced-since times started again."""
    from xapi_numa.core import demand, homing
    from xapi_numa.core.host import DomainInfo, VcpuInfo
    from xapi_numa.core.snapshot import HostSnapshot
    topo = Topology.uniform(2, 2, 1 << 30)
    doms = (DomainInfo(1, "a", "ua", 2, 1 << 30, 1 << 30, False), DomainInfo(2, "b", "ub", 2, 1 << 30, 1 << 30, False))
    n0, n1 = topo.cpus_of_nodes([0]), topo.cpus_of_nodes([1])
    vcpus = {1: tuple(VcpuInfo(1, i, 2 + i, "running", topo.all_cpus, n0) for i in range(2)),
             2: tuple(VcpuInfo(2, i, i, "running", topo.all_cpus, n1) for i in range(2))}
    full = HostSnapshot(topo, 10.0, doms, vcpus, scheduler="credit2")
    before = demand.demand(full)
    since = homing.displaced_since(full, {})
    partial = HostSnapshot(topo, 11.0, doms[:1], {1: vcpus[1]}, scheduler="credit2", unread={"ub": 2})
    assert not demand.demand_changed(before, demand.demand(partial, before), partial)
    assert homing.displaced_since(partial, since) == since


def test_a_vm_started_again_is_not_judged_on_its_last_domains_pages(tmp_path):
    """Stock Xen reads pages per node every 600 s: a VM rebooted onto node 0 kept the reading
    of its previous domain (all on node 1), so moving it to a full node 1 cost nothing and
    passed the room check."""
    import attrs as _attrs
    from xapi_numa.state.homes import HomeMoves

    class StockXen(SimHypervisor):
        def capabilities(self):
            c = super().capabilities()
            return _attrs.evolve(c, features=dict(c.features, node_pages="fallback"))

    topo = Topology.uniform(2, 4, 8 << 30)
    n0, n1 = topo.cpus_of_nodes([0]), topo.cpus_of_nodes([1])
    SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit2", 1, dom0_vcpus=1, dom0_memory=256 << 20)
    sim = StockXen(str(tmp_path / "h.json"))
    uuid = "aaaaaaaa-0000-0000-0000-000000000001"
    a = sim.create("A", 2, 2 << 30, dtype="pvh", soft=n1, load="idle", uuid=uuid)
    for i in range(2):
        sim.create("busy{}".format(i), 2, 2 << 30, dtype="pvh", soft=n0, load="busy")
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings())
    sim.run(1.0)
    rt.cycle()
    assert rt.readings.pages[uuid].get(1) == (2 << 30) >> 12  # read: all on node 1
    sim.destroy(a)
    a = sim.create("A", 2, 2 << 30, dtype="pvh", soft=n0, load="busy", uuid=uuid)
    built_on_1 = sim.node_pages(a).get(1, 0)  # (what node 0's DMA zone sent there at the build)
    room = next(m for m in sim.node_memory() if m.node == 1).claimable
    sim.create("fat", 1, room - (64 << 20), dtype="pvh", soft=n1, hard=n1, load="idle")
    for _ in range(30):
        sim.run(1.0)
        rt.cycle()
    assert uuid not in rt.readings.pages  # unread until the next scan
    assert [m for m in HomeMoves(rt.db).recent() if m.uuid == uuid] == []
    assert sim.node_pages(a).get(1, 0) == built_on_1  # none of it moved there


def daemon_over_records(request, tmp_path, monkeypatch, sim, path, records, *argv):
    """xapi-numad's runtime on the simulated host ``sim`` (at ``path``), built as the daemon builds it
    (daemon.build_runtime), its xapi reader reading ``records`` as every VM's record (its thread
    stopped at the end of the test)."""
    import types

    monkeypatch.setenv("XAPI_NUMA_INVENTORY", str(tmp_path / "no-inventory"))  # no host uuid: no guest mask
    session = types.SimpleNamespace(xenapi=types.SimpleNamespace(VM=types.SimpleNamespace(
        get_all_records=lambda: records)))
    monkeypatch.setattr(daemon, "local_login", lambda: session)
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", "http://127.0.0.1:9")  # a xapi named: one is read
    spec = "sim:" + path
    args = daemon.parse_args(["--backend", spec, "--ledger", str(tmp_path / "l.db")] + list(argv))
    rt, reader = daemon.build_runtime(args, spec, sim)
    request.addfinalizer(reader.close)
    return rt


UNREADABLE_POLICY = {"numa_mode": "strict", "numa_nodes": "1,x"}  # a typo: meant to stay where it is


def test_homing_leaves_a_vm_whose_stored_policy_cannot_be_read_alone_and_says_why_once(request, tmp_path,
                                                                                     monkeypatch, caplog):
    """The rebalancer left such a VM alone; homing took it for best_effort and pinned its
    vCPUs (the admin's ``strict`` may mean another home)."""
    from test_daemon import swapped_host

    path = str(tmp_path / "h.json")
    sim, a, c = swapped_host(path)
    uuid_a = next(d.uuid for d in sim.domains() if d.domid == a)
    uuid_c = next(d.uuid for d in sim.domains() if d.domid == c)
    records = {"OpaqueRef:a": {"uuid": uuid_a, "other_config": dict(UNREADABLE_POLICY)},
               "OpaqueRef:c": {"uuid": uuid_c, "other_config": {}}}
    rt = daemon_over_records(request, tmp_path, monkeypatch, sim, path, records)
    written, real = [], sim.set_vcpu_affinity
    monkeypatch.setattr(sim, "set_vcpu_affinity", lambda domid, *a, **kw: written.append(domid) or real(domid, *a, **kw))
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        for _ in range(6):
            rt.cycle()
            sim.run(1.0)
    assert a not in written and c in written  # C's vCPU was brought home
    said = [r for r in caplog.records if r.getMessage().startswith("VM left alone")]
    assert len(said) == 1 and said[0].fields["vm"] == uuid_a and "other_config:numa_nodes" in said[0].fields["error"]


def test_the_fix_up_leaves_a_vm_whose_stored_policy_cannot_be_read_alone(request, tmp_path, monkeypatch):
    """Its memory on node 0, its soft affinity node 1: the fix-up took it for best_effort and
    pointed it at node 0."""
    path = str(tmp_path / "h.json")
    topo = Topology.uniform(2, 4, 8 << 30)
    sim = SimHypervisor.init(path, topo, "credit2", 1, dom0_vcpus=1, dom0_memory=256 << 20)
    n0, n1 = topo.cpus_of_nodes([0]), topo.cpus_of_nodes([1])
    domid = sim.create("g", 2, 1 << 30, dtype="pvh", soft=n0, load="busy")
    for v in range(2):
        sim.set_vcpu_affinity(domid, v, soft=n1)
    uuid = next(d.uuid for d in sim.domains() if d.domid == domid)
    rt = daemon_over_records(request, tmp_path, monkeypatch, sim, path, {"OpaqueRef:g": {
        "uuid": uuid, "other_config": dict(UNREADABLE_POLICY)}}, "--no-rebalance")
    for _ in range(3):
        rt.cycle()
        sim.run(1.0)
    assert all(v.soft == n1 for v in sim.vcpus(domid)) and rt.writes == 0


def test_the_dry_run_of_a_cycle_sees_the_hosts_guest_mask_as_the_daemon_does(tmp_path):
    """``homing --dry-run`` (Runtime.what_now) took its snapshot without the host's guest
    mask: its fix-up wrote soft affinity on CPUs guests may not use, and a VM settled
    inside the mask looked pinned by an admin, unlike what xapi-numad's cycle does."""
    topo = Topology.uniform(2, 4, 8 << 30)
    sim = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit2", 1, dom0_vcpus=1, dom0_memory=256 << 20)
    mask = frozenset({0, 1, 4, 5, 6, 7})  # CPUs 2 and 3 (node 0) are not for guests
    domid = sim.create("g", 2, 1 << 30, dtype="pvh", soft=topo.cpus_of_nodes([0]), load="busy")
    for v in range(2):
        sim.set_vcpu_affinity(domid, v, hard=mask, soft=topo.cpus_of_nodes([1]))
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings(), guest_cpus=lambda: mask)
    softs = [o.action.soft for o in rt.what_now() if o.action.domid == domid]
    assert softs == [frozenset({0, 1})] * 2, softs


def test_a_link_that_raises_gives_xapis_refusal_not_the_default_view():
    """The plugin's link (``raises``): the records refused, or xapi gone, reach the caller,
    where xapi-numad's link keeps the last view (none yet: the default policy for every VM)."""
    import types

    def refused():
        raise XapiError(["INTERNAL_ERROR", "emergency mode"])

    session = types.SimpleNamespace(xenapi=types.SimpleNamespace(VM=types.SimpleNamespace(
        get_all_records=refused)))
    assert XapiLink(lambda: session, time.monotonic).policy_error("x") is None  # the daemon's carries on
    with pytest.raises(XapiError) as raised:
        XapiLink(lambda: session, time.monotonic, raises=True).policy_of("x")
    assert raised.value.code == "INTERNAL_ERROR"
    with pytest.raises(ConnectionRefusedError):
        XapiLink(lambda: (_ for _ in ()).throw(ConnectionRefusedError(111, "refused")), time.monotonic,
                 raises=True).guest_cpus()
