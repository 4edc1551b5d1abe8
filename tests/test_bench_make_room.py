"""The make-room check's planners (bench/quality/make_room.py, room_plans.py) on hand-built host states."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

from quality.make_room import targets  # noqa: E402
from quality.room_plans import balanced_plan, can_free, levelling_moves  # noqa: E402
from quality.replay import HostState, Running  # noqa: E402
from quality.trace import Vm  # noqa: E402

GP = (1 << 30) >> 12  # pages in a GiB
CORES = [16, 16, 16]


def state_of(vms):
    """A host of len(CORES) nodes running ``vms``: vid -> (node, GiB, vCPUs), each homed on its node."""
    s = HostState(len(CORES))
    for vid, (node, gib, vcpus) in vms.items():
        s.vms[vid] = Running({node: gib * GP}, (node,), vcpus)
        s.free[node] -= gib * GP
    return s


def short_node_0():
    # node 0 is 1 GiB short of a 2 GiB VM; node 1 has the most free memory but the most vCPUs
    return state_of({1: (0, 4, 4), 4: (0, 123, 1), 2: (1, 98, 16), 3: (2, 108, 1)})


def test_balanced_plan_moves_for_balance_where_the_hole_rule_moves_to_the_most_free_memory():
    s = short_node_0()
    score, node, moves = balanced_plan(s, CORES, Vm(9, 1, 2 << 30), 2 * GP, 16 * GP, 0.0)
    # memory alone would take node 1 (a 0.01 lower CV); its 20 vCPUs on 16 cores outweigh that
    assert (node, moves) == (0, [(1, 2, 4 * GP)])
    assert targets(s, 0, [(1, 4 * GP)]) == [(1, 1, 4 * GP)]
    assert s.free[0] == GP  # a plan only: nothing moved


def test_balanced_plan_keeps_within_the_cap():
    s = short_node_0()
    assert balanced_plan(s, CORES, Vm(9, 1, 2 << 30), 2 * GP, GP // 2, 0.0) is None  # 1 GiB short, cap 1/2 GiB
    assert balanced_plan(s, CORES, Vm(9, 1, 2 << 30), 2 * GP, 3 * GP, 0.0) is None  # the only small VM is 4 GiB


def test_can_free_tries_one_vm_then_the_largest_within_the_room():
    assert can_free([4, 1, 1], 3, 4)
    assert can_free([2, 2], 3, 4)
    assert not can_free([1, 1, 1], 3, 2)
    assert can_free([], 0, 0)


def test_levelling_moves_only_while_the_score_drops_by_the_gain_within_the_budget():
    s = state_of({1: (0, 4, 1), 2: (0, 96, 1), 3: (1, 60, 1), 4: (2, 60, 1)})
    assert levelling_moves(s, CORES, 8 * GP, 0.0, 0.0) == [(1, 1, 4 * GP)]
    assert levelling_moves(s, CORES, 2 * GP, 0.0, 0.0) == []  # 4 GiB is over the budget
    assert levelling_moves(s, CORES, 8 * GP, 0.0, 1.0) == []  # no move gains that much
    assert s.free[0] == 28 * GP
