"""Movers and reservations that race for the same VM or the same node: the mover
claims first (the VM's lock, then its row and the room check in one transaction),
scans after; reservations count moves under way; an inherited ``--lock-fd`` is
checked before anything moves; a vnode move reports the vnode's skip set only.

The scan is where a real mover spends its time (seconds): each race is staged by
running the other party from inside the first one's scan."""
import os

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.cli.moves import render_summary
from xapi_numa.core import memory_move as pagemove, vnuma
from xapi_numa.core.actions import MoveMemory
from xapi_numa.core.topology import Topology
from xapi_numa.errors import NoCapacity
from xapi_numa.ops import move_memory, observe
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import MoveJournal

M = 1 << 20
G = 1 << 30
PAGES = lambda nbytes: nbytes >> 12  # noqa: E731


@pytest.fixture
def host(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 2 * G), "credit2", 1,
                            dom0_vcpus=1, dom0_memory=128 * M)
    return hv, str(tmp_path / "l.db")


def cli(hv, db, *words):
    return main(["--backend", "sim:" + hv.path, *words, "--ledger", db])


def during_scan(monkeypatch, action):
    """Run ``action`` once, from inside the next scan of a guest's memory."""
    real, done, started = SimHypervisor.memory_map, [], []

    def scan(self, *a, **k):
        if not started:  # (not again from the other party's own scan)
            started.append(True)
            done.append(action())
        return real(self, *a, **k)
    monkeypatch.setattr(SimHypervisor, "memory_map", scan)
    return done


def _pvh(hv, name, memory, node):
    cpus = frozenset(hv.topology().cpus_of_nodes([node]))
    return hv.create(name, 2, memory, soft=cpus, dtype="pvh", load="idle")


def _domain(hv, domid):
    return next(d for d in hv.domains() if d.domid == domid)


# --- finding 1: a vnode move reads the map under the VM's lock ------------------------------------
def test_a_vnode_move_never_writes_back_a_map_another_vnode_move_changed(tmp_path, monkeypatch, capsys):
    hv = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * G), "credit2", 1)
    db = str(tmp_path / "l.db")
    domid = hv.create("g", 2, 512 * M, dtype="pvh", paused=True, load="idle")
    built = hv.node_pages(domid)
    home = max(built, key=built.get)
    there = 1 - home
    plan = vnuma.plan_follow(hv.topology(), vnuma.GuestSpec("pvh", 2, 512 * M), [home, there])
    hv.set_vnuma(domid, plan, vnuma.memory_ranges(plan))
    hv.unpause(domid)
    assert cli(hv, db, "move-memory", "g", "--vnode", "1", "--to", str(home)) == 0  # both vnodes at home
    assert hv.vnuma(domid).pnodes == (home, home)
    # while the first mover (vnode 0) scans, a second one moves vnode 1
    other = during_scan(monkeypatch, lambda: (cli(hv, db, "move-memory", "g", "--vnode", "1", "--to", str(there)),
                                              capsys.readouterr().err))
    assert cli(hv, db, "move-memory", "g", "--vnode", "0", "--to", str(there)) == 0
    (rc, err), = other
    assert rc == 1 and "already being moved" in err
    # the map says what the memory says: vnode 0 moved, vnode 1 (never moved) still at home
    assert hv.vnuma(domid).pnodes == (there, home)
    assert hv.node_pages(domid)[there] <= PAGES(256 * M)


# --- finding 3: the room is checked where the claim is written --------------------------------------
def test_two_moves_to_one_node_never_both_pass_the_room_check(host, monkeypatch, capsys):
    hv, db = host
    _pvh(hv, "filler", 700 * M, 1)
    a, b = _pvh(hv, "a", 768 * M, 0), _pvh(hv, "b", 768 * M, 0)
    room = observe.claimable(hv)[1]
    assert 768 * M < room < 2 * 768 * M  # either fits alone, not both
    built_there = hv.node_pages(b)[1]  # (b's build spilled there before it took node 0's DMA zone)
    other = during_scan(monkeypatch, lambda: (cli(hv, db, "move-memory", "b", "--to", "1"), capsys.readouterr().err))
    assert cli(hv, db, "move-memory", "a", "--to", "1") == 0
    (rc, err), = other
    assert rc == 1 and "node 1 can take" in err  # refused at the start: nothing of b moved
    assert hv.node_pages(b)[1] == built_there
    assert hv.node_pages(a)[0] < 64  # a whole on node 1 (what the scan leaves behind)


def test_a_vm_already_moving_is_refused_as_such_not_for_room(host, capsys):
    hv, db = host
    domid = _pvh(hv, "a", 256 * M, 0)
    # another mover of the VM, live (holds the lock), bringing more pages to node 1 than it has
    lock = MoveJournal(Ledger(db).db).begin(_domain(hv, domid), 1, {"planned_pages": PAGES(4 * G)})
    try:
        assert cli(hv, db, "move-memory", "a", "--to", "1") == 1
        err = capsys.readouterr().err
        assert "already being moved" in err and "--allow-fallback" not in err
    finally:
        lock.release()


# --- finding 2: reservations and moves count each other -----------------------------------------
class _Dom:
    def __init__(self, uuid):
        self.uuid, self.domid, self.name = uuid, 7, "moving"


def test_a_reservation_never_promises_pages_a_running_move_will_bring(tmp_path):
    ledger = Ledger(str(tmp_path / "l.db"))
    journal = MoveJournal(ledger.db)
    lock = journal.begin(_Dom("u-1"), 1, {"planned_pages": PAGES(3 * G), "moved_pages": PAGES(1 * G)})
    try:
        free = lambda: {0: 8 * G, 1: 5 * G}  # noqa: E731
        with pytest.raises(NoCapacity) as info:
            ledger.reserve("starting", {1: 4 * G}, 60, free)  # 5G free, 2G of it the move's yet
        assert "node 1" in info.value.message
        ledger.reserve("starting", {1: 3 * G}, 60, free)
    finally:
        lock.release()


def _reserve_on(hv, ledger, node, leave):
    room = observe.claimable(hv)[node]
    ledger.reserve("starting", {node: room - leave}, 300, lambda: observe.claimable(hv))


def test_a_background_mover_checks_the_room_reservations_leave(host, capsys):
    hv, db = host
    domid = _pvh(hv, "a", 512 * M, 0)
    ledger = Ledger(db)
    _reserve_on(hv, ledger, 1, 256 * M)
    journal = MoveJournal(ledger.db)
    lock = journal.begin(_domain(hv, domid), 1, {"vm": "a", "state": "running"})  # as claim_and_start does
    try:
        rc = cli(hv, db, "move-memory", str(domid), "--to", "1", "--json", "--lock-fd", str(os.dup(lock.fd)))
    finally:
        lock.release()
    assert rc == 1 and "node 1 can take" in capsys.readouterr().err
    assert hv.node_pages(domid)[1] == 0
    row = journal.status(_domain(hv, domid).uuid)
    assert row.state == "failed" and "node 1 can take" in row.report["error"]


def test_the_daemons_in_process_mover_checks_the_same_room(host):
    hv, db = host
    domid = _pvh(hv, "a", 512 * M, 0)
    ledger = Ledger(db)
    _reserve_on(hv, ledger, 1, 256 * M)
    with pytest.raises(NoCapacity):
        move_memory.move_now(hv, ledger.db, MoveMemory(domid, _domain(hv, domid).uuid, 1, reason="test"))
    assert hv.node_pages(domid)[1] == 0


# --- finding 4: an inherited lock is checked --------------------------------------------------------
def test_lock_fd_must_hold_the_vms_mover_lock(host, tmp_path, capsys):
    hv, db = host
    domid = _pvh(hv, "a", 256 * M, 0)
    uuid = _domain(hv, domid).uuid
    journal = MoveJournal(Ledger(db).db)
    closed = os.open(os.devnull, os.O_RDONLY)
    os.close(closed)
    unrelated = os.open(os.devnull, os.O_RDONLY)
    lock = journal.begin(_domain(hv, domid), 0, {"vm": "a", "state": "running"})  # another live mover
    try:
        for fd in (unrelated, closed):
            assert cli(hv, db, "move-memory", "a", "--to", "1", "--lock-fd", str(fd)) == 2
            err = capsys.readouterr().err
            assert err.startswith("xapi-numa: error: --lock-fd:") and "internal error" not in err
            assert hv.node_pages(domid)[1] == 0
            assert journal.status(uuid).state == "running"  # the other mover's row, untouched
    finally:
        lock.release()
        os.close(unrelated)
    # the lock file itself, nobody holding it, but no claim made for this process: refused too
    journal.finish(uuid, "failed", {"vm": "a"})
    stray = os.open(journal.lock_for(uuid).path, os.O_RDWR)
    try:
        assert cli(hv, db, "move-memory", "a", "--to", "1", "--lock-fd", str(stray)) == 2
        assert "no running claim" in capsys.readouterr().err
    finally:
        os.close(stray)
    assert hv.node_pages(domid)[1] == 0
    # the real thing: the claimer's lock, inherited
    lock = journal.begin(_domain(hv, domid), 1, {"vm": "a", "state": "running"})
    try:
        assert cli(hv, db, "move-memory", "a", "--to", "1", "--lock-fd", str(os.dup(lock.fd))) == 0
    finally:
        lock.release()
    assert journal.status(uuid).state == "done" and hv.node_pages(domid)[1] > 0


# --- finding 5: a vnode's skip set ------------------------------------------------------------------
def test_a_vnode_move_reports_the_vnodes_skip_set_only(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * G), "credit2", 1)
    domid = hv.create("g", 2, 512 * M, dtype="pvh", paused=True, load="idle")
    plan = vnuma.plan_follow(hv.topology(), vnuma.GuestSpec("pvh", 2, 512 * M), [0, 1])
    hv.set_vnuma(domid, plan, vnuma.memory_ranges(plan))
    hv.unpause(domid)
    whole = pagemove.skipped_gfns(hv.memory_map(domid))  # the whole domain's
    boundary = PAGES(256 * M)
    for vnode, span in ((1, range(boundary, 2 * boundary)), (0, range(0, boundary))):
        got = move_memory.prepare(hv, "g", 1 - vnode, vnode=vnode)
        expected = {why: [g for g in gfns if g in span] for why, gfns in whole.items()}
        expected = {why: gfns for why, gfns in expected.items() if gfns}
        assert got.skipped_gfns == expected and got.skipped == {why: len(g) for why, g in expected.items()}
    assert set(move_memory.prepare(hv, "g", 0, vnode=1).skipped) == {"magic"}
    report = move_memory.run(hv, Ledger(str(tmp_path / "l.db")).db, move_memory.prepare(hv, "g", 0, vnode=1))
    assert render_summary(report).splitlines()[3] == "skipped:    magic 4; they stay on pnode 1"
