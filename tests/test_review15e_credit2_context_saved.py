"""Review 15e: a running vCPU whose affinity is written is re-picked and woken in
vcpu_migrate_finish, which Xen 4.17 calls from unit_context_saved, after the
pCPU it leaves has chosen its next vCPU (csched2_schedule, then context_saved).
The model re-picked and tickled it before that choice, while the pCPU it was
leaving still counted as busy, so the woken vCPU could preempt another vCPU on
its new soft affinity instead of going to the pCPU just left idle."""
from xapi_numa.backends.sim.credit2 import load_time, updated_load
from xapi_numa.backends.sim.model import Host
from xapi_numa.core.topology import Topology


def _two_busy_vcpus():
    host = Host(Topology.uniform(1, 2, 1 << 30), "credit2", 0)  # one run queue, pCPUs 0 and 1
    a = host.create_domain("a", 1, 256, load="busy")
    b = host.create_domain("b", 1, 256, load="busy")
    host.run(0.05)
    va, vb = a.vcpus[0], b.vcpus[0]
    assert va.running and vb.running and va.processor != vb.processor
    return host, a, va, vb


def test_a_soft_affinity_write_wakes_the_vcpu_on_the_pcpu_it_left_idle():
    # Xen: pCPU A left finds its run queue empty and idles; context_saved re-picks A
    # (pCPU of B, its new soft affinity, busy), wakes it and runq_tickle's hard step
    # takes the idle pCPU A left, its own: A runs on where it was, outside its soft
    # affinity, and B is not preempted (tickle_score is never reached).
    host, a, va, vb = _two_busy_vcpus()
    cpu_a, cpu_b = va.processor, vb.processor
    va.credit, vb.credit = 9000, 5000  # A could outscore B by preemption
    host.set_vcpu_affinity(a.domid, 0, None, 1 << cpu_b)
    assert (va.running, va.processor) == (True, cpu_a)
    assert (vb.running, vb.processor) == (True, cpu_b)
    host.run(0.5)  # two busy vCPUs on two pCPUs: nothing moves either afterwards
    assert (va.processor, vb.processor) == (cpu_a, cpu_b)


def test_the_balancer_in_that_schedule_sees_the_leaving_vcpu_not_runnable():
    # Xen runs balance_load inside csched2_schedule, before context_saved: the vCPU being
    # moved has _VPF_migrating set, so update_svc_load counts the time since its last
    # update as not runnable (0); context_saved's own update then adds nothing
    host = Host(Topology.uniform(2, 2, 1 << 30), "credit2", 0)  # run queues {0,1} and {2,3}
    for name in ("a", "b", "c"):
        host.create_domain(name, 1, 256, hard=0b0011, load="busy")
    host.create_domain("d", 1, 256, hard=0b1100, load="busy")
    host.run(1.5)
    s = host.sched
    v = s.curr[0]
    assert v is not None and len(s.rqs[0].runq) == 1
    for w in s.rqs[0].svc:
        w.credit = -1  # the next schedule on pCPU 0 ends the epoch: balance_load runs
    # as mid-tick on a pCPU whose schedule has not run yet this tick: last updated 3 ticks ago
    v.load_last = last = host.tick - 3
    avg = v.avgload
    host.set_vcpu_affinity(v.dom.domid, 0, None, 0b0010)
    assert v.avgload == updated_load(avg, 0, load_time(last), load_time(host.tick))
