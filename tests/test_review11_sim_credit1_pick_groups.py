"""Review 11 (simulator against Xen 4.17): credit1's pCPU pick weighs how idle each socket
is, not only which idle pCPU comes next.

xen/common/sched/credit.c, _csched_cpu_pick: after choosing an idle pCPU in the affinity,
it walks the other idle candidates; for one on another socket it moves when that socket
has more than twice as many idle pCPUs (``weight_cpu * migrate_factor < weight_nxt`` with
migrate_factor 2 over cpu_core_mask), on the same socket when its core has more idle
threads (cpu_sibling_mask), and then takes ``cpumask_cycle(spc->idle_bias, ...)`` there
(idle_bias set by csched_res_pick's commit).  The model stopped at the first idle pCPU in
cycle order: a vCPU free to run on any socket stayed on a socket with one idle pCPU while
another socket idled entirely.
"""
from xapi_numa.backends.sim.model import Host
from xapi_numa.core.topology import Topology

GIB = 1 << 30


def test_a_pick_prefers_a_socket_more_than_twice_as_idle():
    host = Host(Topology.uniform(2, 4, 4 * GIB), scheduler="credit", seed=7)
    for cpu in (1, 2, 3):
        host.create_domain("busy%d" % cpu, 1, 256, hard=1 << cpu)
    host.step()
    assert host.sched.idlers & 0xff == 0b11110001
    d = host.create_domain("free", 1, 256, paused=True)
    v = d.vcpus[0]
    v.processor = 0
    host.set_vcpu_affinity(d.domid, 0, 0xff, None)  # vcpu_migrate_finish -> csched_res_pick
    # pCPU 0 (1 idle on socket 0) against pCPU 4 (4 idle on socket 1): 1 * 2 < 4, so socket 1,
    # at cpumask_cycle(idle_bias = nr_cpu_ids - 1, {4..7}) = 4
    assert v.processor == 4, v.processor


def test_a_pick_keeps_a_socket_at_least_half_as_idle():
    host = Host(Topology.uniform(2, 4, 4 * GIB), scheduler="credit", seed=7)
    for cpu in (2, 3):
        host.create_domain("busy%d" % cpu, 1, 256, hard=1 << cpu)
    host.step()
    d = host.create_domain("free", 1, 256, paused=True)
    v = d.vcpus[0]
    v.processor = 0
    host.set_vcpu_affinity(d.domid, 0, 0xff, None)
    assert v.processor == 0  # 2 * 2 < 4 is false: it stays
