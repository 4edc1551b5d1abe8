"""The credit2 model against Xen 4.17's sched/credit2.c, where it once differed:
run queues of at most 16 pCPUs, the run queue scanned by credit only, the
4.14+ credit reset condition, and tickle_score's soft-affinity bonuses."""
import pytest

from xapi_numa.backends.sim.credit2 import CREDIT_INIT, CREDIT_MIN, runqueue_layout
from xapi_numa.backends.sim.masks import iter_bits
from xapi_numa.backends.sim.model import Host
from xapi_numa.core.topology import Topology


def _host(cpus=2):
    return Host(Topology.uniform(1, cpus, 1 << 30), "credit2", 0)


def _vcpu(host, name, soft=None, hard=None):
    """A busy one-vCPU guest, assigned to the run queue but neither running nor queued."""
    d = host.create_domain(name, 1, 256, hard=hard, soft=soft, load="busy", paused=True)
    d.pause_count = 0
    return d.vcpus[0]


def _run_on(host, v, cpu, credit):
    s = host.sched
    v.processor, v.credit, v.running = cpu, credit, True
    s.curr[cpu] = v
    s.rqs[s.rq_of[cpu]].idle &= ~(1 << cpu)


@pytest.mark.parametrize("nodes, per_node, expected", [
    (2, 28, [14, 14, 14, 14]),  # 56 pCPUs: 4 run queues of 14, two per socket
    (3, 2, [2, 2, 2]),          # the real-Xen harness: one per socket
    (1, 16, [16]),
])
def test_run_queues_hold_at_most_16_pcpus_spread_evenly(nodes, per_node, expected):
    masks = runqueue_layout(Topology.uniform(nodes, per_node, 1 << 30))
    assert [len(list(iter_bits(m))) for m in masks] == expected
    sockets = [{c // per_node for c in iter_bits(m)} for m in masks]
    assert all(len(s) == 1 for s in sockets)  # never across sockets


def test_sibling_threads_share_a_run_queue():
    # one socket, 12 cores x 2 threads; a core's threads are CPUs c and c + 12
    topo = Topology.from_arrays([0] * 24, [[10]], [1 << 30], cpu_to_core=[c % 12 for c in range(24)],
                                cpu_to_socket=[0] * 24)
    masks = runqueue_layout(topo)
    assert len(masks) == 2
    for core in range(12):
        assert len([m for m in masks if m >> core & 1 and m >> (core + 12) & 1]) == 1


def test_the_run_queue_is_scanned_by_credit_only():
    # 4.17's runq_candidate has no soft-affinity test: a queued vCPU whose soft
    # affinity is another (idle) pCPU still runs on the pCPU that looks first
    host = _host()
    v = _vcpu(host, "x", soft=0b10)
    s = host.sched
    s.rqs[0].idle, s.rqs[0].tickled = 0b11, 0
    v.processor = 0
    s._runq_insert(v)
    s._schedule(0)
    assert s.curr[0] is v


def test_credits_reset_when_the_best_credit_left_is_spent():
    # snext (the current vCPU) and the head of the run queue (which may not run
    # here) are both out of credit: an epoch ends (Xen 4.14 on), skipped or not
    host = _host()
    cur, other = _vcpu(host, "cur"), _vcpu(host, "other", hard=0b10)
    _run_on(host, cur, 0, -50)
    other.processor, other.credit = 0, -100
    host.sched._runq_insert(other)
    host.sched._schedule(0)
    assert host.sched.curr[0] is cur
    assert (cur.credit, other.credit) == (-50 + CREDIT_INIT, -100 + CREDIT_INIT)


def test_an_overrun_is_clamped_at_the_minimum_and_the_reset_makes_up_for_it():
    # burn_credits never goes below -CREDIT_INIT; reset_credit then adds two epochs
    host = _host(1)
    v = _vcpu(host, "x")
    _run_on(host, v, 0, CREDIT_MIN + 1)
    host.sched.tick()  # burns 10 ms, then reschedules: the epoch ends
    assert v.credit == CREDIT_MIN + 2 * CREDIT_INIT


def test_preemption_prefers_the_woken_vcpus_soft_affinity():
    # no idle pCPU: tickle_score gives a pCPU in the woken vCPU's soft affinity a
    # bonus worth more than the credit difference with the other one
    host = _host()
    low, high, new = _vcpu(host, "low"), _vcpu(host, "high"), _vcpu(host, "new", soft=0b10)
    _run_on(host, low, 0, 50)
    _run_on(host, high, 1, 100)
    s = host.sched
    s.rqs[0].tickled = 0
    new.processor, new.credit = 0, 9000
    s._tickle(new)
    assert new.tickled_cpu == 1


def test_res_pick_cycles_from_the_least_loaded_run_queues_pick_bias():
    # csched2_res_pick (4.17): the pCPU comes from the soft-affine run queue, but the
    # cycle starts from, and updates, the pick_bias of the least loaded one
    host = Host(Topology.uniform(2, 2, 1 << 30), "credit2", 0)
    v = _vcpu(host, "x", soft=0b1100)
    s = host.sched
    s.rqs[0].b_avgload, s.rqs[1].b_avgload = 0, 10 << 18
    s.rqs[0].pick_bias, s.rqs[1].pick_bias = 0, 3
    v.avgload = 0
    cpu = s._pick(v)
    assert cpu == 2 and s.rqs[0].pick_bias == 2 and s.rqs[1].pick_bias == 3


def test_the_balance_tolerance_comes_from_the_last_run_queue_searched():
    # balance_load (4.17) checks the tolerance against the last run queue of its
    # search loop: here under 100% load, so a delta under one vCPU is left alone
    from xapi_numa.backends.sim.credit2 import LOAD_ONE
    host = Host(Topology.uniform(3, 2, 1 << 30), "credit2", 0)
    s = host.sched
    v = host.create_domain("x", 1, 256, load="busy", paused=True).vcpus[0]
    s._deassign(v)
    v.avgload = int(0.35 * LOAD_ONE)
    s._assign(v, s.rqs[1])
    s.rqs[0].b_avgload, s.rqs[1].b_avgload, s.rqs[2].b_avgload = (int(x * LOAD_ONE) for x in (1.5, 2.2, 1.6))
    s._balance_load(0)
    assert v.rqd == 1
    s.rqs[2].b_avgload = int(2.1 * LOAD_ONE)  # over 100% there: 1/8 of a vCPU is enough
    s._balance_load(0)
    assert v.rqd == 0
