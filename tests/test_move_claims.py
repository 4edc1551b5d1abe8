"""Movers and reservations that race for the same VM or the same node, and what a
move reports.

The scan is where a real mover spends its time (seconds): each race is staged by
running the other party from inside the first one's scan."""
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.moves import render_summary
from xapi_numa.core import memory_move as pagemove, vnuma
from xapi_numa.core.topology import Topology
from xapi_numa.errors import NoCapacity
from xapi_numa.ops import move_memory
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import MoveJournal

M = 1 << 20
G = 1 << 30
PAGES = lambda nbytes: nbytes >> 12  # noqa: E731


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
