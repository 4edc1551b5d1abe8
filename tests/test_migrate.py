"""Moving a guest's memory between nodes: the pure planning, the simulator's
model of the primitive, the orchestration with its journal, and its faults."""
import errno
import json
import os
import subprocess
import sys

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import time

from xapi_numa.backends.sim import guestmem
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.moves import render_summary
from xapi_numa.core import memory_move as pagemove
from xapi_numa.core.host import MemoryMap
from xapi_numa.core.topology import Topology
from xapi_numa.errors import InvalidArgument, MoveStopped, NoCapacity, NotMovable
from xapi_numa.ops import background_mover, move_memory as migrate
from xapi_numa.ops import move_recovery
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import MoveJournal

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

M = 1 << 20


# --- pure planning ---------------------------------------------------------------------------
def test_batches_keep_whole_superpage_runs_together():
    gfns = list(range(100, 3000))
    batches = pagemove.plan_batches(gfns, 512)
    assert [len(b) for b in batches][:2] == [412, 512]  # first window ends at gfn 512
    assert all(b[0] // 512 == b[-1] // 512 for b in batches)
    assert sum(pagemove.whole_runs(b) for b in batches) == 4  # 512.., 1024.., 1536.., 2048..
    assert [g for b in batches for g in b] == gfns


def test_max_pages_and_small_batches():
    gfns = [g for g in range(5000) if g % 7]
    batches = pagemove.plan_batches(gfns, 64, max_pages=1000)
    assert [g for b in batches for g in b] == gfns[:1000]
    assert all(len(b) <= 64 and b[0] // 64 == b[-1] // 64 for b in batches)
    assert pagemove.whole_runs(list(range(512, 1024))) == 1 and pagemove.whole_runs(list(range(1, 600))) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1 << 20), unique=True, max_size=3000), st.integers(1, 4096),
       st.one_of(st.none(), st.integers(1, 4000)))
def test_plan_property(gfns, batch, max_pages):
    gfns.sort()
    batches = pagemove.plan_batches(gfns, batch, max_pages)
    window = pagemove.window_for(batch)
    assert [g for b in batches for g in b] == gfns[:max_pages]
    for b in batches:
        assert 0 < len(b) <= batch and b[0] // window == b[-1] // window


def test_gfn_classes_match_the_c_header():
    """pagemove names libxenuma's XN_GFN_* values; the two must never drift apart."""
    import re

    header = open(os.path.join(os.path.dirname(__file__), "..", "libxenuma", "src", "libxenuma.h")).read()
    c = {name: int(v) for name, v in re.findall(r"#define XN_GFN_(\w+) (\d+)", header) if name != "CLASSES"}
    assert c == {"RAM": pagemove.MOVABLE, "NOT_RAM": pagemove.NOT_RAM, "MAGIC": pagemove.MAGIC,
                 "GRANTED": pagemove.GRANTED, "VCPU_INFO": pagemove.VCPU_INFO, "EVTCHN": pagemove.EVTCHN,
                 "CHANGED": pagemove.CHANGED}


def test_memory_map_helpers():
    classes = bytes([0, 0, 2, 0, 3, 3, 1, 4, 0])
    memory = MemoryMap(classes)
    assert pagemove.movable_gfns(memory) == [0, 1, 3, 8]
    assert pagemove.skipped_counts(memory) == {"magic": 1, "granted": 2, "vcpu-info": 1}
    assert pagemove.ranges([1, 2, 3, 7, 9, 10]) == "0x1-0x3,0x7,0x9-0xa"


def test_pacing_and_the_hardware_model():
    assert pagemove.pacing_gap(0.01, 512, None) == 0.01          # at most a 50% duty cycle
    assert pagemove.pacing_gap(0.001, 512, 1 * M) == pytest.approx(2.0 - 0.001)
    # the model itself has no verdict here (bench_pagemove reports it as a model): only its shape
    pause = pagemove.estimated_pause(512, 1)
    assert pagemove.estimated_pause(512, 0) > pause > 0          # order 0 costs more than order 9


def test_gfn_runs_paint_and_derive():
    # as the build deals them: 2 MiB extents from node 1 (after a new domain's node 0), the rest page by page
    runs = guestmem.derive_runs([1024, 600], "pvh")
    assert runs == [[0, 512, 1], [512, 1024, 0], [1536, 88, 1]]
    runs = guestmem.paint(runs, 100, 700, 0)
    assert runs == [[0, 100, 1], [100, 1436, 0], [1536, 88, 1]]
    node_of = guestmem.node_lookup(runs)
    assert node_of(99) == 1 and node_of(100) == 0 and node_of(1600) == 1


# --- the simulator and the orchestration ---------------------------------------------------------
@pytest.fixture
def sim(tmp_path):
    return SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 2 << 30), "credit2", 1,
                              dom0_vcpus=1, dom0_memory=128 << 20)


@pytest.fixture
def ledger(tmp_path):
    return Ledger(str(tmp_path / "ledger.db"))


def _vm(sim, name="vm", memory=256 * M, load="busy", **kw):
    return sim.create(name, 2, memory, soft=frozenset({0, 1, 2, 3}), dtype="pvh", load=load, **kw)


def _invariants(sim):
    with sim.store.snapshot() as host:
        host.check_invariants()
        for d in host.domains.values():
            if d.gfn_runs is not None:
                per_node = [0] * len(host.free)
                for _, count, node in d.gfn_runs:
                    per_node[node] += count
                for node, count in d.stale:
                    per_node[node] += count
                assert per_node == d.node_pages


def test_full_move_follows_memory_and_conserves_pages(sim, ledger):
    domid = _vm(sim)
    total = sum(sim.node_pages(domid).values())
    plan = migrate.prepare(sim, "vm", 1)
    assert plan.skipped == {"magic": 4, "granted": 32, "vcpu-info": 2, "evtchn": 3}  # 2 control blocks, 1 array
    report = migrate.run(sim, ledger.db, plan)
    assert report["state"] == "done" and report["moved_pages"] == plan.pages == total - 41
    assert report["superpages"] == plan.superpage_runs > 0
    assert sim.node_pages(domid) == {0: 41, 1: total - 41}
    assert sim.node_affinity(domid) == {1} and all(v.soft == {4, 5, 6, 7} for v in sim.vcpus(domid))
    assert not next(d for d in sim.domains() if d.domid == domid).paused
    _invariants(sim)
    assert MoveJournal(ledger.db).status(plan.domain.uuid).state == "done"


def test_a_domain_destroyed_during_its_move_leaves_a_failed_journal_row(sim, ledger):
    """The mover's last step (affinity follows memory) finds the domain gone: the move's
    outcome still reaches the journal, which must not go on saying 'running'."""
    domid = _vm(sim)
    plan = migrate.prepare(sim, "vm", 1)
    gone = []

    def destroy_between_batches(seconds):
        if not gone:
            gone.append(domid)
            sim.destroy(domid)

    with pytest.raises(MoveStopped):
        migrate.run(sim, ledger.db, plan, sleep=destroy_between_batches)
    row = MoveJournal(ledger.db).status(plan.domain.uuid)
    assert gone and row.state == "failed" and "affinity" in row.report


def test_partial_move_and_back(sim, ledger):
    domid = _vm(sim)
    migrate.run(sim, ledger.db, migrate.prepare(sim, "vm", 1, max_bytes=32 * M))
    assert sim.node_pages(domid)[1] == 8192
    migrate.run(sim, ledger.db, migrate.prepare(sim, "vm", 0))
    assert sim.node_pages(domid)[1] == 0
    _invariants(sim)


def test_refusals_change_nothing(sim, ledger):
    sim.create("pv", 1, 64 * M)
    _vm(sim, "passthrough", passthrough=True)
    _vm(sim)
    before = open(sim.path).read()
    for vm, to, err in [("pv", 1, NotMovable), ("passthrough", 1, NotMovable), ("vm", 2, InvalidArgument),
                        ("Domain-0", 1, NotMovable)]:
        with pytest.raises(err):
            migrate.prepare(sim, vm, to)
    with pytest.raises(InvalidArgument) as info:
        migrate.prepare(sim, "vm", 1, batch=0)
    assert info.value.field == "batch" and "1..8192" in info.value.message
    with pytest.raises(InvalidArgument):
        pagemove.parse_node("2,3")
    assert pagemove.parse_node("node:1") == pagemove.parse_node("nodes:1") == pagemove.parse_node(" 1") == 1
    with pytest.raises(InvalidArgument) as info:  # the refusal quotes what was typed, prefix and all
        pagemove.parse_node("nodes:0-1")
    assert "'nodes:0-1'" in info.value.message and "node:1 or nodes:1" in info.value.allowed
    assert open(sim.path).read() == before


def test_a_move_to_where_every_page_is_neither_scans_nor_pauses(sim, ledger, monkeypatch):
    domid = _vm(sim)  # soft affinity node 0: every page there
    assert sim.node_pages(domid) == {0: 256 * M // 4096, 1: 0}
    touched = []
    scan = sim.memory_map
    monkeypatch.setattr(sim, "memory_map", lambda *a: touched.append("scan") or scan(*a))
    monkeypatch.setattr(sim, "move_pages", lambda *a: touched.append("batch"))
    plan = migrate.prepare(sim, "vm", 0)
    assert plan.already_there and plan.batches == () and plan.to_dict()["already_there"]
    report = migrate.run(sim, ledger.db, plan)
    assert report["state"] == "done" and report["already_there"] and report["moved_pages"] == 0
    assert touched == []
    # vCPUs and node affinity elsewhere: they still follow the memory, as after a move
    for v in range(2):
        sim.set_vcpu_affinity(domid, v, soft=frozenset({2, 3}))
    sim.set_node_affinity(domid, frozenset([1]))
    report = migrate.run(sim, ledger.db, migrate.prepare(sim, "vm", 0))
    assert report["affinity"]["nodes"] == [0] and sim.node_affinity(domid) == {0}
    assert {v.soft for v in sim.vcpus(domid)} == {frozenset(sim.topology().cpus_of_nodes([0]))}
    plan = migrate.prepare(sim, "vm", 0, vnode=None, allow_fallback=True)  # no count with a fallback: scanned
    assert touched == ["scan"] and not plan.already_there


def test_no_room_on_the_target(sim, ledger):
    sim.create("filler", 1, 1800 * M, soft=frozenset({4}), load="idle")
    domid = _vm(sim)
    before = sim.node_pages(domid)
    with pytest.raises(NoCapacity):
        migrate.prepare(sim, "vm", 1)
    assert sim.node_pages(domid) == before
    report = migrate.run(sim, ledger.db, migrate.prepare(sim, "vm", 1, allow_fallback=True), allow_fallback=True)
    assert report["state"] == "done" and report["fallback_pages"] > 0
    _invariants(sim)


def test_already_being_moved_is_refused(sim, ledger):
    _vm(sim)
    plan = migrate.prepare(sim, "vm", 1)
    # another live mover: a process holding the VM's mover lock
    lock_path = MoveJournal(ledger.db).lock_for(plan.domain.uuid).path
    other = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[2]); "
                              "from xapi_numa.state.locks import FileLock; FileLock(sys.argv[1]).acquire(); "
                              "time.sleep(30)", lock_path, REPO])
    try:
        while not MoveJournal(ledger.db).mover_alive(plan.domain.uuid):
            time.sleep(0.01)
        with pytest.raises(NotMovable) as info:
            migrate.run(sim, ledger.db, plan)
        assert "already being moved" in info.value.message
    finally:
        other.kill()
        other.wait()


def test_fault_mid_batch_puts_everything_back(sim, ledger):
    domid = _vm(sim)
    total = sum(sim.node_pages(domid).values())
    with pytest.raises(MoveStopped) as info:
        migrate.run(sim, ledger.db, migrate.prepare(sim, "vm", 1), fault="after-release", fault_batch=3)
    report = json.loads(info.value.params[2])
    assert report["state"] == "failed" and report["batches"] == 4 and "populate" in report["error"]
    assert sum(sim.node_pages(domid).values()) == total               # nothing lost
    assert not next(d for d in sim.domains() if d.domid == domid).paused
    assert MoveJournal(ledger.db).status(report["uuid"]).state == "failed"
    _invariants(sim)


def test_frame_still_referenced_stops_before_the_next_batch(sim, ledger):
    domid = _vm(sim)
    plan = migrate.prepare(sim, "vm", 1)
    held = plan.batches[5][200]
    sim.hold(domid, held)
    with pytest.raises(MoveStopped) as info:
        migrate.run(sim, ledger.db, plan)
    report = json.loads(info.value.params[2])
    assert report["batches"] == 6 and "not freed" in report["error"]
    lo, hi = (int(x, 16) for x in report["stuck_gfns"].split("-"))
    assert lo <= held <= hi and hi - lo + 1 == pagemove.DEFAULT_VERIFY_CHUNK
    moved_before = sum(len(b) for b in plan.batches[:5])
    # batches 0-4 and batch 5 up to the stuck chunk moved; nothing after
    assert sim.node_pages(domid)[1] == moved_before + (hi - plan.batches[5][0] + 1)
    sim.release_hold(domid, held)
    _invariants(sim)


def test_a_page_xen_maps_that_the_scan_let_through_stays_where_it_is(sim, ledger):
    """A vcpu_info the plan's scan did not see as one (a time record caught looking odd, a
    vCPU brought online since): its batch leaves it in place instead of stopping on it."""
    domid = _vm(sim)
    plan = migrate.prepare(sim, "vm", 1)
    with sim.store.transaction() as host:
        vcpu_info = guestmem.xen_mapped(host.domain(domid))[0]
    assert vcpu_info not in {g for b in plan.batches for g in b}
    at = next(i for i, b in enumerate(plan.batches) if b[-1] > vcpu_info)
    batches = list(plan.batches)
    batches[at] = tuple(sorted(batches[at] + (vcpu_info,)))
    report = migrate.run(sim, ledger.db, attrs.evolve(plan, batches=tuple(batches)))
    assert report["state"] == "done" and report["xen_mapped_at_pause_pages"] == 1
    assert report["released_pages"] == sum(len(b) for b in plan.batches)
    assert "pages Xen maps" in render_summary(report)
    _invariants(sim)


def test_probe_finds_nothing_more_on_a_linux_like_guest(sim, ledger):
    _vm(sim, load="idle")
    assert migrate.prepare(sim, "vm", 1, probe_ms=2000).skipped == migrate.prepare(sim, "vm", 1).skipped
    with pytest.raises(InvalidArgument):
        migrate.prepare(sim, "vm", 1, probe_ms=-1)


def test_interrupted_between_batches(sim, ledger):
    domid = _vm(sim)
    plan = migrate.prepare(sim, "vm", 1)

    def stop_after_two(tally):
        if tally.batches == 2:
            raise KeyboardInterrupt

    with pytest.raises(MoveStopped):
        migrate.run(sim, ledger.db, plan, progress=stop_after_two)
    row = MoveJournal(ledger.db).status(plan.domain.uuid)
    assert row.state == "stopped" and row.report["batches"] == 2
    assert sim.node_pages(domid)[1] == sum(len(b) for b in plan.batches[:2])


def _die_mid_batch(sim, ledger, vm="vm"):
    """A mover killed inside a batch's pause window: gfns released, guest paused."""
    plan = migrate.prepare(sim, vm, 1)
    result = sim.move_pages(plan.domain.domid, plan.batches[1], 1, fault="die-after-release")
    assert result.stage == "died" and result.released == len(plan.batches[1])
    # its journal row says running, and nobody holds its lock any more
    MoveJournal(ledger.db).begin(plan.domain, 1, {"vm": vm}).release()
    return plan


def test_a_dead_mover_is_recovered(sim, ledger):
    """Killed between pause and unpause: the next run puts the batch back and unpauses."""
    domid = _vm(sim)
    total = sum(sim.node_pages(domid).values())
    plan = _die_mid_batch(sim, ledger)
    assert next(x for x in sim.domains() if x.domid == domid).paused
    assert sum(sim.node_pages(domid).values()) == total - len(plan.batches[1])  # released, not backed
    journal = MoveJournal(ledger.db)
    with pytest.raises(NotMovable) as info:  # its batch record first
        migrate.run(sim, ledger.db, migrate.prepare(sim, "vm", 1))
    assert "recover first" in info.value.message
    notes = move_recovery.recover(sim, journal)
    assert any("unpaused" in n for n in notes)
    assert not next(x for x in sim.domains() if x.domid == domid).paused
    assert sum(sim.node_pages(domid).values()) == total
    assert journal.status(plan.domain.uuid).state == "interrupted"
    assert move_recovery.recover(sim, journal) == []  # once only
    _invariants(sim)
    assert migrate.run(sim, ledger.db, migrate.prepare(sim, "vm", 1))["state"] == "done"  # and it can go on


def test_cli_migrate_dry_run_and_errors(sim, tmp_path):
    _vm(sim)
    env = dict(os.environ, XAPI_NUMA_BACKEND=f"sim:{sim.path}", XAPI_NUMA_LEDGER=str(tmp_path / "l.db"))
    cli = ["python", "-m", "xapi_numa.cli", "migrate", "vm"]
    before = open(sim.path).read()
    out = subprocess.run(cli + ["--to", "node:1", "--dry-run"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "skip set:" in out.stdout and "vcpu-info" in out.stdout
    assert open(sim.path).read() == before
    for flags, field in [(["--to", "x"], "--to"), (["--to", "1", "--rate", "-3"], "--rate"),
                         (["--to", "1", "--max", "lots"], "--max"), (["--to", "1", "--verify-chunk", "0"],
                                                                     "--verify-chunk")]:
        out = subprocess.run(cli + flags, capture_output=True, text=True, env=env)
        assert out.returncode == 2 and out.stderr.startswith(f"xapi-numa: error: {field}:"), out.stderr
        assert "allowed" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run(cli + ["--to", "1", "--json"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and json.loads(out.stdout)["state"] == "done"
    out = subprocess.run(["python", "-m", "xapi_numa.cli", "migrations", "--json"], capture_output=True,
                         text=True, env=env)
    assert json.loads(out.stdout)["migrations"][0]["state"] == "done"


def test_the_daemon_recovers_a_dead_mover_and_leaves_moving_vms_alone(sim, ledger):
    from xapi_numa.ops import observe
    from xapi_numa.ops.runtime import Runtime

    domid = _vm(sim)
    plan = _die_mid_batch(sim, ledger)
    daemon = Runtime(sim, ledger.db)
    assert domid in daemon.excluded(observe.take(sim, 0.0))
    daemon.cycle()
    assert not next(x for x in sim.domains() if x.domid == domid).paused
    assert MoveJournal(ledger.db).status(plan.domain.uuid).state == "interrupted"
    _invariants(sim)


def test_frames_granted_after_the_scan_stay_where_they_are(sim, ledger):
    # A frontend grants new I/O buffers all the time: a frame granted after the scan may take
    # a backend's grant copy while the guest is paused, so the batch must leave it in place
    # (moved, the copy would be lost), and the report must say so.
    from xapi_numa.cli.moves import render_summary
    domid = _vm(sim)
    total = sum(sim.node_pages(domid).values())
    plan = migrate.prepare(sim, "vm", 1)
    late = [0x200, 0x201, 0x5000]
    assert all(any(g in b for b in plan.batches) for g in late)
    for gfn in late:
        sim.grant(domid, gfn)
    report = migrate.run(sim, ledger.db, plan)
    assert report["state"] == "done" and report["granted_at_pause_pages"] == 3
    assert report["moved_pages"] == plan.pages - 3
    assert sim.node_pages(domid) == {0: 41 + 3, 1: total - 44}
    assert "3 pages granted" in render_summary(dict(report, to=1))
    assert migrate.prepare(sim, "vm", 1).skipped["granted"] == 32 + 3  # the next scan sees them
    _invariants(sim)


def _paused(sim, domid) -> bool:
    return next(x for x in sim.domains() if x.domid == domid).paused


def test_contents_not_put_back_keep_the_guest_paused_until_recovery_restores_them(sim, ledger):
    # The copy back fails (a mapping refused): the new frames hold zeroes and the saved
    # contents are in the batch record.  The batch must not unpause the guest onto them; the
    # mover recovers at once from the record, and only then does the guest run again.
    domid = _vm(sim)
    total = sum(sim.node_pages(domid).values())
    plan = migrate.prepare(sim, "vm", 1)
    batch = plan.batches[2]
    result = sim.move_pages(domid, batch, 1, fault="copy-back")
    assert result.stage == "copy-back" and result.lost == len(batch) and _paused(sim, domid)
    assert sim.recover_move(domid) and not _paused(sim, domid)  # what run() does next, shown alone
    with pytest.raises(MoveStopped) as info:
        migrate.run(sim, ledger.db, migrate.prepare(sim, "vm", 1), fault="copy-back", fault_batch=3)
    report = json.loads(info.value.params[2])
    assert report["state"] == "failed" and "did not get their contents back" in report["error"]
    assert "recovery put them back" in report["error"] and "unpaused" in report["error"]
    assert not _paused(sim, domid) and sum(sim.node_pages(domid).values()) == total
    assert MoveJournal(ledger.db).status(plan.domain.uuid).state == "failed"
    _invariants(sim)


def test_a_kept_batch_that_recovery_cannot_finish_stays_paused_for_the_next_caller(sim, ledger, monkeypatch):
    from xapi_numa.errors import HypervisorError
    domid = _vm(sim)
    plan = migrate.prepare(sim, "vm", 1)

    def refuse(_domid):
        raise HypervisorError(12, "no memory to map the batch record's pages")

    with monkeypatch.context() as m:
        m.setattr(sim, "recover_move", refuse)
        with pytest.raises(MoveStopped) as info:
            migrate.run(sim, ledger.db, plan, fault="copy-back", fault_batch=1)
    report = json.loads(info.value.params[2])
    assert "stays paused" in report["error"] and "--recover" in report["error"]
    assert _paused(sim, domid)
    journal = MoveJournal(ledger.db)
    assert journal.status(plan.domain.uuid).state == "running"  # so the next recovery finds it
    notes = move_recovery.recover(sim, journal)
    assert any("unpaused" in n for n in notes) and not _paused(sim, domid)
    row = journal.status(plan.domain.uuid)
    assert row.state == "interrupted" and "did not get their contents back" in row.report["error"]
    # the row says the later recovery did what the first could not
    assert row.report["error"].index("failed too") < row.report["error"].index("later: ") and \
        "unpaused" in row.report["error"].split("later: ", 1)[1], row.report["error"]
    _invariants(sim)


def test_ctrl_c_as_a_kept_batch_returns_still_puts_the_contents_back(sim, ledger, monkeypatch):
    # The pause window holds signals off, so Ctrl-C is raised as the batch returns: the
    # batch's result is lost with it, but a guest it kept paused must not stay so.
    domid = _vm(sim)
    plan = migrate.prepare(sim, "vm", 1)
    real_move = sim.move_pages

    def move_then_interrupt(*args, **kw):
        result = real_move(*args, **kw)
        if result.lost:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(sim, "move_pages", move_then_interrupt)
    with pytest.raises(MoveStopped) as info:
        migrate.run(sim, ledger.db, plan, fault="copy-back", fault_batch=1)
    report = json.loads(info.value.params[2])
    assert report["state"] == "stopped" and "recovery put them back" in report["error"], report["error"]
    assert not _paused(sim, domid)
    _invariants(sim)


def test_simulated_recovery_short_of_frames_keeps_the_guest_paused_as_xen_does(sim, ledger):
    domid = _vm(sim)
    plan = migrate.prepare(sim, "vm", 1)
    batch = plan.batches[1]
    result = sim.move_pages(domid, batch, 1, fault="die-after-release")
    assert result.stage == "died" and _paused(sim, domid)
    hog = sim.create("hog", 1, 1 << 20, soft=frozenset({0}), load="idle")  # placeholder VM, resized below
    with sim.store.transaction() as host:  # every free frame taken by another domain, DMA zones included
        for n, free in enumerate(host.free):
            host.charge(host.domain(hog), n, free, host.zone_free[n])
    from xapi_numa.errors import HypervisorError
    with pytest.raises(HypervisorError) as info:
        sim.recover_move(domid)
    assert info.value.errno == errno.ENOMEM and _paused(sim, domid)
    sim.destroy(hog)
    assert "unpaused" in sim.recover_move(domid) and not _paused(sim, domid)
    _invariants(sim)


def test_a_gone_vms_batch_record_is_dropped_unless_its_domid_is_reused(sim, ledger, monkeypatch):
    # A kept record must not outlive its VM: a new domain given the same domid would have
    # every move refused, or worse get the old VM's pages written into it by a recovery.
    asked = []
    monkeypatch.setattr(sim, "recover_move", lambda domid: asked.append(domid))
    journal = MoveJournal(ledger.db)
    domid = _vm(sim)
    plan = migrate.prepare(sim, "vm", 1)
    journal.begin(plan.domain, 1, {"vm": "vm"}).release()  # a mover that died, as a journal row
    sim.destroy(domid)
    move_recovery.recover(sim, journal)
    assert asked == [domid] and journal.status(plan.domain.uuid).state == "interrupted"

    asked.clear()
    again = _vm(sim, name="vm2")
    plan2 = migrate.prepare(sim, "vm2", 1)
    journal.begin(plan2.domain, 1, {"vm": "vm2"}).release()
    sim.destroy(again)
    newcomer = attrs.evolve(plan2.domain, uuid="0000-another-vm", name="another")  # the domid reused
    monkeypatch.setattr(sim, "domains", lambda: [newcomer])
    move_recovery.recover(sim, journal)
    # the backend is asked all the same: it drops a record whose domain handle is not the
    # newcomer's and never touches the newcomer (libxenuma's test_pagemove.c shows it);
    # otherwise the record would stay and refuse every move of the newcomer
    assert asked == [again] and journal.status(plan2.domain.uuid).state == "interrupted"


def test_recovery_leaves_a_move_that_ended_or_began_meanwhile_alone(sim, ledger, monkeypatch):
    """The rows are read, then each mover's liveness checked: a mover that ends in between
    must not be called dead, nor a new one that starts."""
    journal = MoveJournal(ledger.db)
    domid = _vm(sim)
    plan = migrate.prepare(sim, "vm", 1)
    journal.begin(plan.domain, 1, {"vm": "vm"}).release()  # seen running, its lock free
    stale = journal.rows()
    journal.finish(plan.domain.uuid, "done", {"vm": "vm"})  # ... it ended meanwhile
    reads = [stale]
    real_rows = journal.rows
    monkeypatch.setattr(journal, "rows", lambda: reads.pop() if reads else real_rows())  # the first read is old
    assert move_recovery.recover(sim, journal) == []
    assert journal.status(plan.domain.uuid).state == "done"
    lock = journal.begin(plan.domain, 1, {"vm": "vm", "second": True})  # a new mover, alive
    assert move_recovery.recover(sim, journal) == []
    assert journal.status(plan.domain.uuid).state == "running"
    lock.release()
    assert not _paused(sim, domid)


def test_recovery_leaves_a_guest_someone_unpaused_running_as_xen_does(sim, ledger):
    domid = _vm(sim)
    plan = migrate.prepare(sim, "vm", 1)
    result = sim.move_pages(domid, plan.batches[1], 1, fault="copy-back")
    assert result.lost and _paused(sim, domid)
    sim.unpause(domid)  # an admin: the guest looked stuck
    note = sim.recover_move(domid)
    assert "running again" in note and "0 gfns without a frame" in note and not _paused(sim, domid)
    assert sim.recover_move(domid) is None  # the record is gone; nothing is unpaused twice
    _invariants(sim)


def test_a_batch_whose_unpause_failed_is_unpaused_by_recovery_at_once(sim, ledger):
    # libxenuma tries the unpause three times; if it still fails the guest is paused with
    # the batch record kept (only the unpause left): the move hands it to recovery at once.
    domid = _vm(sim)
    plan = migrate.prepare(sim, "vm", 1)
    with pytest.raises(MoveStopped) as info:
        migrate.run(sim, ledger.db, plan, fault="unpause", fault_batch=1)
    report = json.loads(info.value.params[2])
    assert "could not be unpaused" in report["error"] and "recovery put them back" in report["error"]
    assert not _paused(sim, domid) and MoveJournal(ledger.db).status(plan.domain.uuid).state == "failed"
    _invariants(sim)


def test_the_movers_scope_asks_systemd_219_nothing_it_refuses(tmp_path, monkeypatch):
    """XenServer 8.4's systemd 219 has no ``systemd-run --collect``: with it, systemd-run
    exited at once, no mover ran, and the plugin had answered that one was running."""
    fake = tmp_path / "systemd-run"
    fake.write_text("#!/bin/sh\necho 'systemd 219'\necho '+PAM +AUDIT'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", "{}:{}".format(tmp_path, os.environ["PATH"]))
    assert background_mover._systemd_version() == 219
    old = background_mover.scope_command(7, 219)
    assert old[:3] == ["systemd-run", "--quiet", "--scope"] and "--collect" not in old
    assert "--collect" in background_mover.scope_command(7, 249)
    fake.write_text("#!/bin/sh\nexit 1\n")
    assert background_mover._systemd_version() == 0


def test_a_recovery_that_put_the_batch_back_is_not_reported_as_a_paused_guest():
    """The batch record recovered, then another record of the domain's failed: the mover
    said the guest stayed paused with its contents in the record, which was gone."""
    import errno
    from types import SimpleNamespace
    from xapi_numa.errors import HypervisorError
    from xapi_numa.ops.move_recovery import finish_kept_batch

    class Host:
        def __init__(self, paused):
            self.paused = paused

        def recover_move(self, domid):
            raise HypervisorError(errno.EPROTO, "domain 7: finished a page-move batch; the probe record")

        def domains(self):
            return [SimpleNamespace(domid=7, paused=self.paused)]

        def sleep(self, seconds):
            pass

    d = SimpleNamespace(domid=7)
    still, told = finish_kept_batch(Host(paused=False), d, "copy-back failed")
    assert still is False and "put them back" in told and "stays paused" not in told
    still, told = finish_kept_batch(Host(paused=True), d, "copy-back failed")
    assert still is True and "stays paused" in told


def test_the_sweep_never_locks_a_record_being_written(tmp_path, monkeypatch):
    """A writer locks its new record just after creating it: a sweep holding that lock
    at that instant made the writer's lock fail (EWOULDBLOCK) and its batch with it, as a
    mover on real Xen did (EAGAIN at batch 35 of 46).  Only records old enough, whose writer
    is gone, are looked at (by recovery's sweep; a listing looks at none)."""
    import time
    from xapi_numa.backends import xen_records

    monkeypatch.setenv("XAPI_NUMA_RUN_DIR", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    young = tmp_path / "move-3.batch.new.{0}.{0}.0".format(dead.pid)
    old = tmp_path / "move-4.probe.new.{0}.{0}.1".format(dead.pid)
    live = tmp_path / "move-5.batch.new.{0}.{0}.0".format(os.getpid())
    for path in (young, old, live):
        path.write_bytes(b"x")
    for path in (old, live):
        os.utime(str(path), (time.time() - 3600, time.time() - 3600))
    locked = []
    real = xen_records.fcntl.flock
    monkeypatch.setattr(xen_records.fcntl, "flock", lambda fd, op: locked.append(fd) or real(fd, op))
    assert xen_records.domids_with_records() == [] and locked == [] and old.exists()
    assert len(xen_records.sweep_unfinished_records()) == 1
    assert young.exists() and live.exists() and not old.exists() and len(locked) == 1


def test_pages_with_no_node_named_land_as_xen_puts_them_not_on_the_nearest_node():
    """libxenuma's fallback and recovery populate with no node (flags 0): Xen's
    get_free_buddy goes round the domain's node affinity, then the other nodes in
    ascending order.  The simulator put them on the node nearest the target (or node 0)."""
    from xapi_numa.backends.sim import scenarios
    from xapi_numa.backends.sim.model import Host
    gib = 1 << 30
    host = Host(scenarios.topology(), "credit2", seed=1)
    mask = host.node_mask
    assert host.topology.distances[3][1] < host.topology.distances[3][0]  # node 1 is the nearer one
    host.create_domain("filler", 1, ((8 * gib) >> 12) - (64 << 20 >> 12), soft=mask[3], dtype="pvh",
                       node_affinity=1 << 3)
    vm = host.create_domain("vm", 2, gib >> 12, soft=mask[0], dtype="pvh", node_affinity=1 << 0)
    host.set_node_affinity(vm.domid, 1 << 3)
    gfns = list(range(0x10000, 0x10000 + (256 << 20 >> 12)))
    r = guestmem.move(host, vm, gfns, 3, 16, True, None)
    assert r.moved == 64 << 20 >> 12 and r.fallback == len(gfns) - r.moved
    assert vm.node_pages[1] == 0 and vm.node_pages[3] == r.moved  # the rest went to node 0, the lowest
    # recovery after a mover died: the domain's node affinity ({2} here) first, not node 0
    host = Host(scenarios.topology(), "credit2", seed=1)
    vm = host.create_domain("vm", 2, gib >> 12, soft=host.node_mask[2], dtype="pvh", node_affinity=1 << 2)
    guestmem.move(host, vm, list(range(0x10000, 0x10000 + 4096)), 1, 16, False, "die-after-release")
    guestmem.recover(host, vm)
    assert vm.node_pages[0] == 0 and vm.node_pages[2] == gib >> 12


def test_a_whole_vms_memory_moved_by_hand_stays_inside_the_hosts_guest_mask(sim, ledger):
    """A vnode moved by hand kept to the host's guest mask; a whole VM's memory did not: it
    went to a node its vCPUs may not run on, and its soft affinity followed onto CPUs guests
    may not use.  Refused now, as a vnode's move, naming ``to`` and the nodes allowed; to a
    node the mask leaves CPUs of, the soft affinity is those CPUs (also when every page is
    already there)."""
    domid = _vm(sim)  # node 0 (CPUs 0-3); node 1 is CPUs 4-7
    before = sim.node_pages(domid)
    for refuse in (migrate.check, migrate.prepare):
        with pytest.raises(InvalidArgument) as err:
            refuse(sim, "vm", 1, guest_cpus=frozenset({0, 1, 2, 3}))
        assert err.value.field == "to" and err.value.allowed == "nodes 0" and "guest mask" in err.value.detail
    with pytest.raises(InvalidArgument):
        migrate.prepare(sim, "vm", 1, allow_fallback=True, guest_cpus=frozenset({0, 1, 2, 3}))
    assert sim.node_pages(domid) == before
    report = migrate.run(sim, ledger.db, migrate.prepare(sim, "vm", 1, guest_cpus=frozenset({0, 5, 6})))
    assert report["state"] == "done" and sim.node_affinity(domid) == {1}
    assert all(v.soft == {5, 6} for v in sim.vcpus(domid))
    there = sim.create("there", 2, 64 * M, soft=frozenset({4, 5, 6, 7}), dtype="pvh", load="idle")
    for v in range(2):
        sim.set_vcpu_affinity(there, v, soft=frozenset({0, 1}))
    plan = migrate.prepare(sim, "there", 1, guest_cpus=frozenset({0, 6}))
    assert plan.already_there and migrate.run(sim, ledger.db, plan)["state"] == "done"
    assert all(v.soft == {6} for v in sim.vcpus(there))


def test_the_cli_reads_the_guest_mask_from_xapi_for_a_whole_vms_move(pool):
    """``move-memory`` without --vnode asks xapi for the host's guest mask as a vnode's move
    does (not with --no-xapi): a target outside it is refused naming --to, and the soft
    affinity of a move inside it stays on the CPUs the mask leaves guests."""
    import sys

    server, session = pool
    host = session.xenapi.host.get_all()[0]
    hv = server.sims[host]  # 2 nodes x 4 CPUs
    domid = _vm(hv, load="idle")  # on node 0
    env = dict(server.plugin_env(host), XAPI_NUMA_POOL_PASSWORD="xenroot")
    before = hv.node_pages(domid)
    base = [sys.executable, "-m", "xapi_numa.cli", "move-memory", str(domid), "--json"]
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "1,2,3"})  # none of node 1's CPUs
    refused = subprocess.run(base + ["--to", "1"], capture_output=True, text=True, env=env)
    assert refused.returncode != 0 and "--to" in refused.stderr and "allowed: nodes 0" in refused.stderr, \
        refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr and hv.node_pages(domid) == before
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "1,2,3,6"})
    done = subprocess.run(base + ["--to", "1"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert hv.node_pages(domid)[1] > before[1] and all(v.soft == {6} for v in hv.vcpus(domid))
    back = subprocess.run(base + ["--to", "0", "--no-xapi"], capture_output=True, text=True, env=env)
    assert back.returncode == 0, back.stderr
    assert all(v.soft == {0, 1, 2, 3} for v in hv.vcpus(domid))  # no mask asked for: the whole node


def test_a_guest_mask_naming_no_cpu_of_this_host_narrows_no_move_by_hand(sim, ledger):
    """xenopsd drops a mask's CPUs beyond the host, and xapi-numad reads a guest mask that
    names none of this host's CPUs as no mask (HostSnapshot.unpinned: its rebalancer moves
    homes to any node); a move by hand refused every node of such a host ("allowed: none")."""
    from xapi_numa.core import pools
    from xapi_numa.ops import observe

    domid = _vm(sim)  # node 0 (CPUs 0-3); node 1 is CPUs 4-7
    beyond = frozenset({8, 9})
    snap = attrs.evolve(observe.take(sim, None), guest_cpus=beyond)
    assert pools.within_pool(None, snap, domid) in (None, frozenset({0, 1}))  # the rebalancer's targets: both
    migrate.check(sim, "vm", 1, guest_cpus=beyond)
    report = migrate.run(sim, ledger.db, migrate.prepare(sim, "vm", 1, guest_cpus=beyond))
    assert report["state"] == "done" and all(v.soft == {4, 5, 6, 7} for v in sim.vcpus(domid))
    with pytest.raises(InvalidArgument) as err:  # a mask with CPUs here still narrows
        migrate.check(sim, "vm", 0, guest_cpus=frozenset({6, 9}))
    assert err.value.allowed == "nodes 1" and "CPUs 6)" in err.value.detail
