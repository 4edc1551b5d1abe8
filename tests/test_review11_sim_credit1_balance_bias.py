"""Review 11 (simulator against Xen 4.17): credit1's work stealing starts each node's scan
where the *host's* last steal on that node left off.

xen/common/sched/credit.c, csched_load_balance: ``first_cpu =
cpumask_cycle(prv->balance_bias[peer_node], &workers)`` and, after a steal,
``prv->balance_bias[peer_node] = peer_cpu``: one bias per node in the scheduler's private
data (``csched_private``), shared by every pCPU that steals.  init_pdata sets it to the
first pCPU of the node to come up.  The model kept a bias per stealing pCPU and node, so
two pCPUs that steal one after the other both went to the same peer first.
"""
from xapi_numa.backends.sim.credit1 import PRI_IDLE, PRI_UNDER
from xapi_numa.backends.sim.model import Host
from xapi_numa.core.topology import Topology

GIB = 1 << 30


def _queued_host():
    """One node of 4 pCPUs: pCPU 1 runs a vCPU with two more queued, pCPU 2 runs one with
    one queued, pCPUs 0 and 3 idle."""
    host = Host(Topology.uniform(1, 4, 4 * GIB), scheduler="credit", seed=1)
    vcpus = []
    for i in range(5):
        d = host.create_domain("g%d" % i, 1, 256, paused=True)
        d.pause_count = 0  # runnable, placed by hand below
        vcpus.append(d.vcpus[0])
    s = host.sched
    for v in vcpus:
        v.pri = PRI_UNDER
    layout = {1: (vcpus[0], [vcpus[1], vcpus[2]]), 2: (vcpus[3], [vcpus[4]])}
    for cpu, (cur, queued) in layout.items():
        s.curr[cpu] = cur
        cur.running, cur.processor = True, cpu
        for v in queued:
            v.processor = cpu
            s._runq_insert(cpu, v)
    s.idlers = 0b1001
    return host, vcpus


def test_second_steal_on_a_node_starts_after_the_first_ones_peer():
    host, vcpus = _queued_host()
    s = host.sched
    first = s._load_balance(0, PRI_IDLE)
    assert first is vcpus[1]  # cycle(bias = pCPU 0, workers {1, 2}) = 1: its head
    second = s._load_balance(3, PRI_IDLE)
    # Xen: the node's bias is now pCPU 1, so pCPU 3 scans from pCPU 2 and takes its vCPU
    assert second is vcpus[4], second.key


def test_the_shared_bias_survives_the_state_file():
    host, _ = _queued_host()
    s = host.sched
    s._load_balance(0, PRI_IDLE)
    again = type(s).from_dict(host, s.to_dict())
    assert again._load_balance(3, PRI_IDLE).key == (4, 0)
