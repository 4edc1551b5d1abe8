"""Review 11: the home-move log kept its last 1000 rows (``state/homes.KEEP``), "enough for
the hold-down and the counters".  It is not: the rebalancer makes up to ``per_period`` (4)
moves a period, a swap writing one row per VM, so up to 8 rows every 2 s, 1200 in a 300 s
hold-down.  A VM moved less than 5 minutes ago had its row trimmed by the moves made since
and was weighed as movable again: its home moved twice within the hold-down (docs/xapi-numad.md:
"it never moves the same VM again within 5 minutes")."""
from xapi_numa.core import rebalance
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology
from xapi_numa.ops.executor import DONE, Outcome
from xapi_numa.ops.rebalancing import Rebalancer
from xapi_numa.state.db import Database
from xapi_numa.state.homes import KEEP, HomeMove, HomeMoves

GiB = 1 << 30
TOPO = Topology.uniform(2, 4, 8 * GiB)


def test_a_vm_moved_within_the_hold_down_stays_held_however_many_moves_came_after(tmp_path):
    db = Database(str(tmp_path / "l.db"))
    homes = HomeMoves(db)
    hold = rebalance.Settings().hold_down  # as the rebalancer records them
    homes.record(HomeMove("uuid-x", 1000.0, 0, 1, "swap", "x moved"), hold)
    # 4 swaps a period (8 rows) every 2 s for the next 250 s: within x's 300 s hold-down
    t = 1000.0
    n = 0
    while n <= KEEP:
        t += 2.0
        for i in range(8):
            homes.record(HomeMove("uuid-other-{}".format(n), t, 0, 1, "swap", "others"), hold)
            n += 1
    # and one more, the rebalancer's own (it trims the log as it records)
    t += 2.0
    assert t - 1000.0 < hold
    rb = Rebalancer(db)
    n0, n1 = TOPO.cpus_of_nodes([0]), TOPO.cpus_of_nodes([1])
    doms = (DomainInfo(7, "x", "uuid-x", 2, GiB, GiB, False, "pvh"),
            DomainInfo(8, "y", "uuid-y", 2, GiB, GiB, False, "pvh"))
    vc = {7: tuple(VcpuInfo(7, i, 4 + i, "running", TOPO.all_cpus, n1, 1.0) for i in range(2)),
          8: tuple(VcpuInfo(8, i, i, "running", TOPO.all_cpus, n0, 1.0) for i in range(2))}
    snap = HostSnapshot(TOPO, t, doms, vc)
    pages = {"uuid-x": {1: GiB >> 12}, "uuid-y": {0: GiB >> 12}}
    y = [v for v in rb.loads(snap, pages, set(), t) if v.uuid == "uuid-y"][0]
    acts = rb._move_homes(rebalance.Candidate("balance", ((y, 1),), 1.0, 0, 1.0), snap, t)
    rb.applied([Outcome(a, DONE) for a in acts])
    assert homes.last_moved(t)["uuid-y"] == t
    assert "uuid-x" in homes.last_moved(t)
    x = [v for v in rb.loads(snap, pages, set(), t) if v.uuid == "uuid-x"][0]
    assert not x.movable


def test_the_log_is_still_trimmed_once_rows_are_past_the_hold_down(tmp_path):
    homes = HomeMoves(Database(str(tmp_path / "l.db")))
    for n in range(KEEP + 50):
        homes.record(HomeMove("uuid-{}".format(n), 10.0 * n, 0, 1, "balance", "spread out"), 300.0)
    assert len(homes.recent()) == KEEP
