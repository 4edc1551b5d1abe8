"""xapi-numad: homing on the seed scenario, crash safety, faults, SIGTERM, auto-settle."""
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
import types


import attrs
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.demo import TIMELINE, run_scenario
from xapi_numa.core import homing
from xapi_numa.core.policy import Policy
from xapi_numa.core.topology import Topology
from xapi_numa.errors import HypervisorError
from xapi_numa.ops import observe
from xapi_numa.ops.runtime import LOG, Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.pins import PinJournal

LAST = max(t for t, _, _ in TIMELINE)


def swapped_host(path, scheduler="credit"):
    """A 2x4 host where one vCPU of A and one of C have been pushed across nodes and stay there."""
    topo = Topology.uniform(2, 4, 4 << 30)
    sim = SimHypervisor.init(path, topo, scheduler, 3, dom0_vcpus=1, dom0_memory=128 << 20)
    a = sim.create("A", 4, 256 << 20, soft=topo.parse_cpus("node:0"), uuid="aaaaaaaa-0000-4000-8000-000000000001")
    c = sim.create("C", 4, 256 << 20, soft=topo.parse_cpus("node:1"), uuid="cccccccc-0000-4000-8000-000000000003")
    sim.run(0.2)
    # make the swap deterministic, as the real-Xen test does: pin across briefly, then free them
    sim.set_vcpu_affinity(a, 0, hard=frozenset({4}))
    sim.set_vcpu_affinity(c, 0, hard=frozenset({0}))
    sim.run(0.2)
    for dom in (a, c):
        sim.set_vcpu_affinity(dom, 0, hard=topo.all_cpus)
    sim.run(0.5)
    return sim, a, c


def make_daemon(sim, path, policy_of=None, settler=None, **settings):
    return Runtime(sim, Database(path + ".db"), Settings(**settings), policy_of=policy_of, settler=settler)


def pins(d):
    return PinJournal(d.db).entries()


def outside(sim, domid):
    return sum(1 for v in sim.vcpus(domid) if v.cpu not in v.soft)


def test_swap_is_stuck_without_and_fixed_with_the_daemon(tmp_path):
    sim, a, c = swapped_host(str(tmp_path / "h.json"), "credit")
    assert outside(sim, a) == 1 and outside(sim, c) == 1
    sim.run(3.0)
    assert outside(sim, a) == 1 and outside(sim, c) == 1  # Xen alone leaves them
    d = make_daemon(sim, str(tmp_path / "h.json"))
    for _ in range(4):
        d.cycle()
        sim.run(1.0)
    assert outside(sim, a) == 0 and outside(sim, c) == 0
    assert pins(d) == []  # no temporary pin left
    assert all(v.hard == sim.topology().all_cpus for dom in (a, c) for v in sim.vcpus(dom))
    sim.run(5.0)
    assert outside(sim, a) == 0 and outside(sim, c) == 0  # and they stay home


def test_seed_scenario_credit2_the_daemon_pins_both_vms_of_the_pair(tmp_path):
    # Under credit2 the model re-picks a soft-affine run queue when hard affinity is
    # restored (csched2_res_pick), so the forced swap above heals by itself; the
    # natural seed scenario leaves A and C swapped for good (test_seed_scenario).
    stats = {}
    rows = run_scenario(str(tmp_path / "s2.json"), "credit2", 1, daemon=True, stats=stats)
    assert rows[-1]["outside"] == {"A": 0, "B": None, "C": 0}
    assert stats["writes"] - stats["writes_before_last_event"] > 0


def test_seed_scenario_credit2_re_picks_the_unpaused_vm_and_holds_only_the_other_whole(tmp_path):
    # A, unpaused at 8 s, lags in credit2's load averages: its displaced vCPUs are re-picked (one
    # write each, nothing to undo), C alone is held whole (2 x 28 writes); holding both cost 112.
    # All home 0.5 s after the last event; then, until 2.8 s, Xen's balancer pushes one of A's
    # vCPUs out for 0.1-0.2 s at a time between two cycles (bench_daemon reports every seed
    # against the 2 s goal; since the model moves a running vCPU only once its pCPU has chosen
    # the next one, as Xen 4.17 does, seed 1 misses it)
    stats = {}
    rows = run_scenario(str(tmp_path / "s2.json"), "credit2", 1, daemon=True, step=0.1, sample_every=0.1, stats=stats)
    after = [r for r in rows if r["time"] > LAST]
    home = next(r["time"] for r in after if all(not any(x["outside"].values()) for x in after if x["time"] >= r["time"]))
    first_home = next(r["time"] for r in after if not any(r["outside"].values()))
    assert first_home - LAST <= 1.0 and home - LAST <= 3.0
    assert 56 < stats["writes"] - stats["writes_before_last_event"] < 2 * 56


def test_seed_scenario_credit1_home_within_2s_with_at_most_2_writes_each(tmp_path):
    stats = {}
    rows = run_scenario(str(tmp_path / "s.json"), "credit", 1, daemon=True, step=0.1, sample_every=0.1, stats=stats)
    after = [r for r in rows if r["time"] > LAST]
    displaced = [sum(v or 0 for v in r["outside"].values()) for r in after]
    assert max(displaced) > 0
    home = next(r["time"] for r, n in zip(after, displaced) if n == 0)
    assert home - LAST <= 2.0
    assert all(n == 0 for r, n in zip(after, displaced) if r["time"] >= home)
    writes = stats["writes"] - stats["writes_before_last_event"]
    assert writes <= 2 * max(displaced)


def test_killed_between_pin_and_restore_restores_at_next_start(tmp_path):
    path = str(tmp_path / "h.json")
    sim, a, c = swapped_host(path)
    d = make_daemon(sim, path)
    d.cycle()
    sim.run(1.1)
    d.cycle()  # pins made and journalled
    assert pins(d)
    assert any(v.hard != sim.topology().all_cpus for v in sim.vcpus(a))
    del d  # killed: no restore happened
    fresh = make_daemon(sim, path)
    assert fresh.restore_all_pins("start") >= 1
    assert pins(fresh) == []
    assert all(v.hard == sim.topology().all_cpus for dom in (a, c) for v in sim.vcpus(dom))


@pytest.mark.parametrize("after", ["daemon start", "next cycle"])
def test_a_pin_journalled_for_a_vms_previous_domain_never_touches_its_new_one(tmp_path, after):
    """Killed while a pin was held; the VM then rebooted onto a boot pin equal to ours: the
    journal's record is of the old domain, and its "original" must not undo the new pin."""
    path = str(tmp_path / "h.json")
    sim, a, c = swapped_host(path)
    d = make_daemon(sim, path)
    d.cycle()
    sim.run(1.1)
    d.cycle()
    record = next(p for p in pins(d) if p.uuid == "aaaaaaaa-0000-4000-8000-000000000001")
    del d  # killed with the pin journalled
    sim.destroy(a)
    rebooted = sim.create("A", 4, 256 << 20, hard=record.pinned_to, soft=sim.topology().parse_cpus("node:0"),
                          uuid=record.uuid)
    assert rebooted != a
    fresh = make_daemon(sim, path)
    if after == "daemon start":
        fresh.restore_all_pins("start")
    else:
        fresh.cycle()
    assert all(v.hard == record.pinned_to for v in sim.vcpus(rebooted))
    assert not [p for p in pins(fresh) if p.domid == a]


def test_domain_destroyed_mid_repair_is_no_error_loop(tmp_path, caplog):
    path = str(tmp_path / "h.json")
    sim, a, c = swapped_host(path)
    d = make_daemon(sim, path, pin_timeout=100)
    d.cycle()
    sim.run(1.1)
    d.cycle()
    assert {r.uuid for r in pins(d)} & {"cccccccc-0000-4000-8000-000000000003",
                                         "aaaaaaaa-0000-4000-8000-000000000001"}
    sim.destroy(c)
    sim.destroy(a)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        for _ in range(5):
            d.cycle()
            sim.run(1.0)
    assert pins(d) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class Refusing:
    """A hypervisor that refuses affinity writes a few times (EPERM)."""

    def __init__(self, hv, refusals):
        self.hv, self.refusals, self.calls = hv, refusals, 0

    def __getattr__(self, name):
        return getattr(self.hv, name)

    def set_vcpu_affinity(self, *args, **kw):
        self.calls += 1
        if self.refusals > 0:
            self.refusals -= 1
            raise HypervisorError(errno.EPERM, "setting affinity")
        return self.hv.set_vcpu_affinity(*args, **kw)


def test_refusal_is_logged_once_and_retried_with_back_off(tmp_path, caplog):
    path = str(tmp_path / "h.json")
    sim, a, c = swapped_host(path)
    refusing = Refusing(sim, refusals=3)
    d = Runtime(refusing, Database(path + ".db"))
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        for _ in range(12):
            d.cycle()
            sim.run(0.5)
    warnings = [r for r in caplog.records if "refused" in r.getMessage()]
    assert 1 <= len(warnings) <= 2  # once per operation kind (pin), not once per try
    assert refusing.calls < 12 + 4  # backed off instead of hammering
    assert outside(sim, a) == 0 and outside(sim, c) == 0  # and in the end it worked


def test_policy_any_and_strict_are_left_alone(tmp_path):
    path = str(tmp_path / "h.json")
    sim, a, c = swapped_host(path)
    policies = {"aaaaaaaa-0000-4000-8000-000000000001": Policy.parse("any"),
                "cccccccc-0000-4000-8000-000000000003": Policy.parse("strict", "1")}
    d = make_daemon(sim, path, policy_of=lambda uuid: policies.get(uuid, Policy()))
    for _ in range(4):
        d.cycle()
        sim.run(1.0)
    assert d.writes == 0
    snap = observe.take(sim, 0.0)
    assert homing.plan(snap, {}, 0.0, excluded=d.excluded(snap)) == []


XAPI_NUMAD = os.path.join(os.path.dirname(sys.executable), "xapi-numad")


def start_daemon(path):
    """xapi-numad on the simulated host at ``path``, and its first log line: it says the
    daemon runs (its signal handlers are in place by then), not a fixed sleep, which a
    loaded machine can outlast while the interpreter still starts."""
    proc = subprocess.Popen([XAPI_NUMAD, "--backend", f"sim:{path}", "--period", "0.1", "--no-xapi"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    return proc, proc.stderr.readline()


def test_xapi_numad_process_stops_cleanly_on_sigterm(tmp_path):
    path = str(tmp_path / "h.json")
    swapped_host(path)
    proc, first = start_daemon(path)
    time.sleep(0.5)  # a few cycles
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out == "", first + err
    events = [json.loads(line)["event"] for line in (first + err).splitlines()]
    assert events[0] == "started" and events[-1] == "stopped"
    bad = subprocess.run([XAPI_NUMAD, "--backend", f"sim:{path}", "--period", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--period" in bad.stderr and "Traceback" not in bad.stderr


def test_sighup_is_logged_and_the_daemon_runs_on(tmp_path):
    """SIGHUP's default would end the daemon with its pins in place, and systemd's
    Restart=on-failure would not bring it back: it is logged and ignored."""
    path = str(tmp_path / "h.json")
    swapped_host(path)
    proc, first = start_daemon(path)
    proc.send_signal(signal.SIGHUP)
    second = proc.stderr.readline()
    while "SIGHUP" not in second and proc.poll() is None:
        second = proc.stderr.readline()
    assert proc.poll() is None and "nothing to reload" in second, first + second
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and json.loads(err.splitlines()[-1])["event"] == "stopped"


def test_a_refused_start_makes_no_file_and_names_the_problem(tmp_path):
    exe = XAPI_NUMAD
    missing = tmp_path / "typo" / "a" / "h.json"
    done = subprocess.run([exe, "--backend", f"sim:{missing}", "--no-xapi", "--cycles", "1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no simulated host at" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "typo").exists()
    path = str(tmp_path / "h.json")
    swapped_host(path)
    both = subprocess.run([exe, "--backend", f"sim:{path}", "--pin-dom0", "--no-backend-affinity"],
                          capture_output=True, text=True, timeout=60)
    assert both.returncode == 2 and both.stderr.startswith("xapi-numad: error: --pin-dom0: not with "
                                                           "--no-backend-affinity"), both.stderr
    assert not os.path.exists(path + ".ledger.db")


def test_failures_are_logged_without_flooding(caplog):
    from xapi_numa.daemon import FailureLog
    caplog.set_level(logging.INFO, logger=LOG.name)
    log = FailureLog(every=60.0)
    for second in range(30):  # 30 cycles of the same failure in half a minute: one line
        log.failed("no simulated host", float(second))
    log.failed("damaged", 30.0)  # another failure: said at once
    for second in range(31, 100):
        log.failed("damaged", float(second))  # repeated: once more after 60 s, with the count
    log.succeeded()
    log.succeeded()  # said once
    lines = [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records]
    assert [m for m, _ in lines] == ["cycle failed", "cycle failed", "cycle failed", "cycles work again"]
    assert lines[2][1]["repeated"] == 60 and lines[2][1]["failures"] == 91
    assert lines[3][1] == {"failures": 100, "last_error": "damaged"}


def place_then_plain_start(pool, monkeypatch):
    """A VM placed by the plugin's place and started by a plain VM.start_on (no settle: the
    daemon's to do), on the loopback pool's first host: (host, VM ref, its uuid, the placement)."""
    from xapi_numa.plugin.functions import Context, place

    server, session = pool
    host = session.xenapi.host.get_all()[0]
    ref, uuid = server.add_vm("web", 2, 1 << 30)
    for key, value in server.plugin_env(host).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XAPI_NUMA_POOL_PASSWORD", "xenroot")
    placed = place(Context(session._session), {"vm": uuid})
    session.xenapi.VM.start_on(ref, host, False, False)
    return host, ref, uuid, placed


def test_place_then_plain_start_is_settled_by_the_daemon(pool, monkeypatch):
    from xapi_numa.ops.settle import settle
    from xapi_numa.ops.xapi_link import PlacedSettler, XapiLink, local_login

    server, session = pool
    host, ref, uuid, placed = place_then_plain_start(pool, monkeypatch)
    assert "mask" in session.xenapi.VM.get_VCPUs_params(ref)
    sim = server.sims[host]
    ledger = Ledger(server.ledgers[host])
    link = XapiLink(local_login, sim.clock)
    d = Runtime(sim, ledger.db, settler=PlacedSettler(
        link, lambda s, uuid: settle(sim, s, ledger, uuid), lambda: [(x.uuid, x.domid) for x in sim.domains()],
        sim.clock))
    stats = d.cycle()
    assert stats["settled"] == 1
    assert "mask" not in session.xenapi.VM.get_VCPUs_params(ref)
    domid = int(session.xenapi.VM.get_domid(ref))
    assert {v.soft for v in sim.vcpus(domid)} == {sim.topology().cpus_of_nodes(placed["nodes"])}
    assert Ledger(server.ledgers[host]).reservations() == []
    assert d.cycle()["settled"] == 0  # once only


def test_soft_affinity_follows_the_memory(tmp_path):
    path = str(tmp_path / "h.json")
    topo = Topology.uniform(2, 4, 4 << 30)
    sim = SimHypervisor.init(path, topo, "credit", 3, dom0_vcpus=1, dom0_memory=128 << 20)
    # memory built on node 1 (boot pin), then soft affinity set to node 0 and hard freed
    domid = sim.create("vm", 2, 512 << 20, hard=topo.cpus_of_nodes([1]), auto_numa=False)
    for v in range(2):
        sim.set_vcpu_affinity(domid, v, hard=topo.all_cpus, soft=topo.cpus_of_nodes([0]))
    d = make_daemon(sim, path)
    stats = d.cycle()  # the first cycle reads pages per node
    assert stats["soft_moved"] == 1
    assert {v.soft for v in sim.vcpus(domid)} == {topo.cpus_of_nodes([1])}
    assert {v.hard for v in sim.vcpus(domid)} == {topo.all_cpus}  # hard untouched


def test_pins_that_cannot_be_restored_at_stop_are_said_so_in_the_log(caplog):
    from xapi_numa.daemon import restore_at_stop
    from xapi_numa.errors import StateError

    class Unreadable:
        db = types.SimpleNamespace(refused=None, in_memory=False)  # (a database not refused: see test_state_refused_stop)

        def restore_all_pins(self, why):
            raise StateError("cannot read the state database")

    caplog.set_level(logging.INFO, logger=LOG.name)
    assert restore_at_stop(Unreadable()) is False
    [line] = caplog.records
    assert "not restored at stop" in line.getMessage() and line.fields["error"] == "cannot read the state database"


@pytest.mark.parametrize("flag, value, allowed", [("--page-scan-max-memory", "1048577", "0..1048576"),
                                                  ("--cycles", "2147483649", "0..2147483648; 0: until SIGTERM"),
                                                  ("--period", "0.01", "0.05..3600")])
def test_a_range_error_states_the_limits_exactly(flag, value, allowed):
    from xapi_numa import daemon

    args = daemon.parse_args(["--backend", "sim:/nonexistent.json", "--no-xapi", flag, value])
    assert daemon.check_ranges(args) == "{}: {} (allowed: {})".format(flag, value, allowed)


def test_settling_a_claimed_start_cancels_the_builds_leftover_claims(pool, monkeypatch):
    """A start the daemon turned into per-node claims, then settled: the reservation goes
    with its claims (before, settle dropped the row by name and the claims stayed in the
    hypervisor with nothing left to cancel them)."""
    from xapi_numa.ops import upkeep
    from xapi_numa.ops.executor import Executor
    from xapi_numa.ops.settle import settle
    from xapi_numa.plugin.functions import Context, place

    server, session = pool
    host = session.xenapi.host.get_all()[0]
    ref, uuid = server.add_vm("web", 2, 1 << 30)
    for key, value in server.plugin_env(host).items():
        monkeypatch.setenv(key, value)
    place(Context(session._session), {"vm": uuid})
    session.xenapi.VM.start_on(ref, host, True, False)  # paused: the build's reservation becomes claims
    sim = server.sims[host]
    ledger = Ledger(server.ledgers[host])
    domid = int(session.xenapi.VM.get_domid(ref))
    # the loopback builds the whole domain, paused: at its maximum its build is over (the row
    # would go as built); a maximum above it leaves pages to come, which a claim holds
    sim.set_max_memory(domid, 2 << 30)
    outcomes = upkeep.reconcile(sim, ledger, Executor(sim, ledger.db))
    assert upkeep.reservation_changes(outcomes) == {uuid: "claimed"}
    assert sim.claims_outstanding() > 0, ledger.reservations()
    sim.unpause(domid)
    settle(sim, session, ledger, uuid)
    assert ledger.reservations() == []
    assert all(m.claimed == 0 for m in sim.node_memory()) and sim.claims_outstanding() == 0


def test_a_stop_restores_every_pin_past_the_write_budget(tmp_path):
    """Credit2 holds every vCPU of the VMs involved: 320 pins, and the stop restored the
    256 of one write budget, left 64 vCPUs hard-pinned and exited 0."""
    from xapi_numa.core.actions import PinTemporarily
    from xapi_numa.daemon import restore_at_stop
    from xapi_numa.ops.executor import Executor
    from xapi_numa.state.pins import PinJournal
    topo = Topology.uniform(2, 32, 64 << 30)
    sim = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit2", 1, dom0_vcpus=1, dom0_memory=256 << 20)
    db = Database(str(tmp_path / "l.db"))
    pins = []
    for i in range(40):
        home = topo.cpus_of_nodes([i % 2])
        domid = sim.create("vm{}".format(i), 8, 512 << 20, dtype="pvh", soft=home, load="idle")
        uuid = next(d.uuid for d in sim.domains() if d.domid == domid)
        pins += [PinTemporarily(domid, uuid, v, home, topo.all_cpus, "displaced") for v in range(8)]
    Executor(sim, db).apply(pins)
    rt = Runtime(sim, db, Settings())
    assert rt.settings.max_writes < len(pins) == len(PinJournal(db).entries())
    assert restore_at_stop(rt) is True
    assert PinJournal(db).entries() == []
    assert all(v.hard == topo.all_cpus for d in sim.domains() if d.domid for v in sim.vcpus(d.domid))


def test_hand_back_where_the_daemon_never_ran_makes_no_state(tmp_path):
    """The package's removal runs --hand-back even where xapi-numad never ran: it made the
    state folder and an empty database there (/var/lib/xapi-numa on a host)."""
    path = str(tmp_path / "h.json")
    subprocess.run([sys.executable, "-m", "xapi_numa.cli", "sim", "init", path, "--nodes", "2", "--cpus-per-node",
                    "2", "--memory-per-node", "4G"], check=True, stdout=subprocess.PIPE)
    ledger = tmp_path / "state" / "xapi-numa.db"
    done = subprocess.run([XAPI_NUMAD, "--backend", "sim:" + path, "--no-xapi", "--hand-back", "--ledger",
                           str(ledger)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert done.returncode == 0 and "nothing to hand back" in done.stderr, done.stderr
    assert not (tmp_path / "state").exists()


def test_hand_back_puts_guests_backend_work_back_and_runs_no_cycle(tmp_path):
    """The package's removal stops the daemon (which restores its temporary pins) and then
    runs --hand-back: netback/blkback threads and IRQs left on one node's dom0 vCPUs would
    stay there after the code that could undo them is gone."""
    path = str(tmp_path / "h.json")
    cli = [sys.executable, "-m", "xapi_numa.cli", "--backend", "sim:" + path]
    subprocess.run([sys.executable, "-m", "xapi_numa.cli", "sim", "init", path, "--nodes", "2", "--cpus-per-node",
                    "2", "--memory-per-node", "4G"], check=True, capture_output=True)
    subprocess.run(cli + ["sim", "create", path, "g", "--vcpus", "1", "--memory", "512M", "--soft", "node:1",
                          "--type", "pvh"], check=True, capture_output=True)
    daemon = [XAPI_NUMAD, "--backend", "sim:" + path, "--no-xapi"]

    def allowed():
        report = json.loads(subprocess.run(cli + ["backends", "--json"], check=True, capture_output=True,
                                           text=True).stdout)
        return sorted({w["allowed"] for vm in report["vms"] for w in vm["irqs"] + vm["threads"]})

    subprocess.run(daemon + ["--pin-dom0", "--cycles", "3", "--period", "0.1"], check=True, capture_output=True)
    assert allowed() == ["1,3"]  # node 1's dom0 vCPUs
    done = subprocess.run(daemon + ["--hand-back"], capture_output=True, text=True)
    assert done.returncode == 0 and '"left": 0' in done.stderr and '"cycles"' not in done.stderr, done.stderr
    assert allowed() == ["0-3"]
