"""Demand samples that are no finite number >= 0 (a broken reading, a divide by a zero interval):
dropped where the planner takes the VMs in, the sample before standing in, and said."""
import math

import pytest

from xapi_numa.core import rebalance, rebalance_moves, rebalance_plan
from xapi_numa.core.demand_window import sound_samples
from xapi_numa.core.topology import Topology

NAN, INF = float("nan"), float("inf")
TOPO = Topology.uniform(3, 4, 64 << 30)


def vm(i, home, history, demand=None, pages=4096):
    return rebalance.VmLoad(i, "u%d" % i, "vm%d" % i, home, (0, 1), history[-1] if demand is None else demand,
                            {home: pages}, history=tuple(history))


def host(bad):
    """Node 0 over capacity, one of its VMs with a bad sample in the middle of its window."""
    return [vm(1, 0, [2.0, 2.0, 2.0]), vm(2, 0, [2.0, bad, 2.0]), vm(3, 0, [1.5, 1.5, 1.5]),
            vm(4, 1, [0.2] * 3), vm(5, 2, [0.1] * 3)]


def moves(assessment):
    return [(c.kind, [(m.uuid, to) for m, to in c.moves], round(c.gain, 6)) for c in assessment.chosen]


@pytest.mark.parametrize("bad", [NAN, INF, -1.0])
def test_a_bad_sample_is_dropped_and_the_one_before_stands_in(bad):
    """A NaN gave every move touching node 0 a NaN gain, which passed the minimum gain, and the plan
    depended on the VMs' order (vm1 to node 1 one way; vm3 to node 1 and vm2 to node 2 the other)."""
    plans = [moves(rebalance_plan.plan(vms, TOPO)) for vms in (host(bad), host(bad)[::-1])]
    assert plans[0] == plans[1] == moves(rebalance_plan.plan(host(2.0), TOPO))
    assert all(math.isfinite(gain) for _, _, gain in plans[0])


def test_the_reason_names_the_vm_and_the_samples_and_reaches_the_json():
    assessment = rebalance_plan.plan(host(NAN), TOPO)
    assert assessment.dropped == ("vm2 (u2): 1 demand sample(s) (nan) dropped, not a finite number >= 0; "
                                  "the sample before each stands in",)
    assert assessment.to_dict()["dropped_samples"] == list(assessment.dropped)
    assert rebalance.assess(host(-1.0), TOPO).dropped[0].startswith("vm2 (u2): 1 demand sample(s) (-1.0)")
    assert "dropped_samples" not in rebalance_plan.plan(host(2.0), TOPO).to_dict()


def test_a_vm_with_no_sound_sample_is_taken_as_idle_and_not_moved():
    vms, dropped = sound_samples([vm(1, 0, [NAN, INF], demand=NAN), vm(2, 0, [NAN, 1.0], demand=NAN)])
    assert (vms[0].history, vms[0].demand, vms[0].movable) == ((), 0.0, False)
    assert (vms[1].history, vms[1].demand, vms[1].movable) == ((1.0, 1.0), 1.0, True)
    assert dropped[0] == ("vm1 (u1): 2 demand sample(s) (inf, nan) and its demand now (nan) dropped, not a finite "
                          "number >= 0; none left: taken as idle, not moved")


def test_a_vm_homed_back_to_its_memory_is_judged_on_sound_samples():
    """A NaN first in the window made the node's most demand NaN, and NaN <= capacity is false: the
    VM stayed away from its memory while every sound sample had room for it."""
    away = rebalance.VmLoad(1, "u1", "vm1", 1, (0,), 0.5, {0: 4096}, fixed_memory=True, history=(NAN, 0.5, 0.5))
    there = vm(2, 0, [1.0, 1.0, 1.0])
    backs = rebalance_moves.back_to_memory([away, there], {"u1": 1}, {0: 4.0, 1: 4.0}, rebalance.Settings())
    assert [(v.uuid, to) for v, to in backs] == [("u1", 0)]


def test_the_daemon_says_the_samples_it_drops_once_while_they_stay(tmp_path, monkeypatch, caplog):
    from xapi_numa.backends.sim.backend import SimHypervisor
    from xapi_numa.ops.rebalancing import Rebalancer
    from xapi_numa.ops.runtime import Runtime
    from xapi_numa.state.db import Database
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 8 << 30), "credit2", 1)
    for name in "AB":
        sim.create(name, 2, 1 << 30, load="busy", dtype="pvh")
    sim.run(4.0)
    real = Rebalancer.observe_demand

    def broken_reading(self, snap):  # (the reading of A's first period was broken)
        real(self, snap)
        unit = min(self.history)
        self.history[unit][0] = NAN
    monkeypatch.setattr(Rebalancer, "observe_demand", broken_reading)
    rt = Runtime(sim, Database(str(tmp_path / "db")))
    for _ in range(3):
        sim.run(2.0)
        rt.rebalance(rt.snapshot())
    said = [r.fields["vms"] for r in caplog.records if r.getMessage() == "demand samples dropped"]
    assert len(said) == 1 and "A (" in said[0][0] and "1 demand sample(s) (nan) dropped" in said[0][0], said
