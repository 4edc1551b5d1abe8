"""The rebalancer's window: a candidate's gain, computed once per look's shared sums,
equals the plain sum over the window; and a look with more swaps than it weighs keeps
the ones the choice would rank first."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xapi_numa.core import rebalance, rebalance_plan
from xapi_numa.core.demand_window import Window, node_series
from xapi_numa.core.topology import Topology

GIB = (1 << 30) >> 12


def vm(n, home, history, vcpus=2, pages=None):
    return rebalance.VmLoad(n, "uuid-{}".format(n), "vm{}".format(n), home, tuple(range(vcpus)), history[-1],
                            pages if pages is not None else {home: GIB}, history=tuple(history))


def plain_gain(moves, vms, capacity, k):
    """What the gain means, computed the long way: the delivered CPU after minus before."""
    before = node_series(vms, list(capacity), k)
    after = {n: list(s) for n, s in before.items()}
    for v, to in moves:
        for i, d in enumerate(v.samples(k)):
            after[v.home][i] -= d
            after[to][i] += d
    return sum(min(a, capacity[n]) - min(b, capacity[n]) for n in capacity
               for a, b in zip(after[n], before[n])) / k


loads = st.lists(st.floats(min_value=0, max_value=4, allow_nan=False), min_size=3, max_size=3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), loads), min_size=2, max_size=8), st.data())
def test_gain_is_the_delivered_cpu_after_minus_before(specs, data):
    vms = [vm(i + 1, home, hist) for i, (home, hist) in enumerate(specs)]
    capacity = {0: 3.6, 1: 3.6, 2: 1.8}
    window = Window(vms, capacity, 3)
    v, w = data.draw(st.sampled_from(vms)), data.draw(st.sampled_from(vms))
    to = data.draw(st.sampled_from([n for n in capacity if n != v.home]))
    assert abs(window.gain([(v, to)]) - plain_gain([(v, to)], vms, capacity, 3)) < 1e-9
    if v.home != w.home:
        swap = [(v, w.home), (w, v.home)]
        assert abs(window.gain(swap) - plain_gain(swap, vms, capacity, 3)) < 1e-9


def test_past_the_swaps_it_weighs_a_look_keeps_the_ones_ranked_first(monkeypatch):
    """400 VMs make tens of thousands of swaps, each weighed over the whole window (26 s a
    look at 400 VMs): past SWAPS_WEIGHED only the most promising are weighed."""
    topo = Topology.uniform(2, 8, 64 << 30)
    busy = [vm(i, 0, [1.5] * 20) for i in range(1, 21)]
    idle = [vm(i, 1, [0.1] * 20, pages={0: GIB}) for i in range(21, 41)]       # memory already on node 0
    weighed = []
    real = Window.gain
    monkeypatch.setattr(Window, "gain", lambda self, moves: weighed.append(len(moves)) or real(self, moves))
    monkeypatch.setattr(rebalance, "SWAPS_WEIGHED", 50)
    best = rebalance.assess(busy + idle, topo).best
    assert weighed.count(2) == 50 and best is not None and best.kind == "swap"   # of 400 swaps
    monkeypatch.setattr(rebalance, "SWAPS_WEIGHED", 10 ** 6)
    assert rebalance.assess(busy + idle, topo).best == best   # the same choice as weighing all 400


def test_swaps_are_ranked_by_the_window_not_by_the_last_sample(monkeypatch):
    """One VM busy over the whole window dipped just now, and others idle over it blipped
    just now: ranked by current demand the busy one fell out of the swaps weighed, and the
    look chose a worse swap than weighing them all."""
    topo = Topology.uniform(2, 8, 64 << 30)
    k = 20
    vms = [vm(1, 0, [1.5] * (k - 1) + [0.5], vcpus=1)]
    vms += [vm(i, 0, [0.0] * (k - 1) + [0.9], vcpus=1) for i in range(2, 9)]
    vms += [vm(i, 0, [1.2] * k, vcpus=1) for i in range(9, 15)]
    vms += [vm(i, 1, [0.05] * k, vcpus=1, pages={0: GIB}) for i in range(15, 65)]
    assert len(rebalance.candidate_moves(vms, [0, 1], True)) > rebalance.SWAPS_WEIGHED
    trimmed = rebalance.assess(vms, topo).best
    monkeypatch.setattr(rebalance, "SWAPS_WEIGHED", 10 ** 6)
    assert trimmed == rebalance.assess(vms, topo).best and trimmed.moves[0][0].name == "vm1"


def four_moves_host():
    """Two nodes over capacity, two idle: a plan makes four moves, each look on the homes the ones
    before leave."""
    topo = Topology.uniform(4, 4, 64 << 30)
    vms = [vm(i, i % 2, [1.0 + 0.1 * (i % 3), 1.5, 1.2 + 0.05 * i], vcpus=1) for i in range(1, 13)]
    vms += [vm(i, 2 + i % 2, [0.1, 0.2, 0.1], vcpus=1) for i in range(13, 17)]
    return vms, topo


def test_a_plan_builds_its_demand_window_once(monkeypatch):
    """Each of a plan's four looks built the window again: every VM's samples read and every node's
    series summed four times (the fourth look on a host where three moves changed four nodes)."""
    vms, topo = four_moves_host()
    built = []
    real = Window.__init__
    monkeypatch.setattr(Window, "__init__", lambda self, *a: built.append(1) or real(self, *a))
    assert len(rebalance_plan.plan(vms, topo).chosen) == 4
    assert len(built) == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.lists(st.sampled_from([0.0, 0.3, 0.7, 1.1, 1.9]), min_size=3,
                                                     max_size=3), st.integers(1, 3)), min_size=2, max_size=14))
def test_a_window_moved_on_decides_as_one_built_again(specs):
    """The plan with the window moved on from look to look: the same moves, gains and reasons as with
    one built again for each look (the sums of the nodes a move touched, to the last bit)."""
    topo = Topology.uniform(4, 2, 64 << 30)
    vms = [vm(i + 1, home, hist, vcpus=n) for i, (home, hist, n) in enumerate(specs)]
    moved_on = rebalance_plan.plan(vms, topo)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Window, "moved", lambda self, moves, now: Window(now, self.capacity, self.k), raising=False)
        assert rebalance_plan.plan(vms, topo) == moved_on
