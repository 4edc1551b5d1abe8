"""The credit2 model's load averages against Xen 4.17's sched/credit2.c: a vCPU's
own average changes only where Xen calls update_svc_load, with its arithmetic
(times are NOW() >> 10, the window 2^20 of those, 18 fractional bits), and
migrate() carries whatever load a vCPU last had between run queues."""
from xapi_numa.backends.sim.model import Host
from xapi_numa.core.topology import Topology

TICK_NS = 10 * 1000 * 1000


def xen_update(avg, load, last_tick, now_tick):
    """update_svc_load / update_runq_load, written out from Xen 4.17's source."""
    P, W = 18, 30 - 10  # load_precision_shift; load_window_shift less LOADAVG_GRANULARITY_SHIFT
    last, now = (last_tick * TICK_NS) >> 10, (now_tick * TICK_NS) >> 10
    if last + (1 << W) < now:
        return load << P
    delta = now - last
    return avg + ((delta * (load << P)) >> W) - ((delta * avg) >> W)


def _busy_then_paused(host, hard=None):
    """A busy one-vCPU guest run for 0.3 s, then paused: csched2_context_saved updates its
    load (runnable until then) as it leaves its pCPU."""
    d = host.create_domain("a", 1, 256, hard=hard, load="busy")
    host.run(0.3)
    v = d.vcpus[0]
    assert v.running
    host.pause(d.domid)
    assert not v.running
    return d, v


def test_a_paused_vcpus_load_stays_until_it_wakes_then_decays_by_the_time_asleep():
    host = Host(Topology.uniform(1, 2, 1 << 30), "credit2", 0)
    d, v = _busy_then_paused(host)
    paused_at, load = host.tick, v.avgload
    host.run(0.5)  # half the window: nothing calls update_svc_load on it
    assert v.avgload == load
    host.unpause(d.domid)  # csched2_unit_wake: update_load(+1), not runnable since
    delta = (host.tick * TICK_NS >> 10) - (paused_at * TICK_NS >> 10)
    assert v.avgload == xen_update(load, 0, paused_at, host.tick) == load - (delta * load >> 20)
    assert v.load_last == host.tick


def test_a_load_not_updated_for_more_than_the_window_restarts():
    host = Host(Topology.uniform(1, 2, 1 << 30), "credit2", 0)
    d, v = _busy_then_paused(host)
    assert v.avgload > 0
    host.run(1.1)  # over 2^30 ns
    host.unpause(d.domid)
    assert v.avgload == 0  # avgload = unit_load << P, unit_load 0 on a wake


def test_an_affinity_write_moves_a_paused_vcpus_stale_load_between_run_queues():
    # vcpu_set_affinity -> csched2_unit_sleep (not queued: no update) -> csched2_unit_migrate ->
    # migrate(): _runq_deassign and _runq_assign carry svc->avgload as it is
    host = Host(Topology.uniform(2, 2, 1 << 30), "credit2", 0)
    d, v = _busy_then_paused(host, hard=0b0011)
    paused_at, load = host.tick, v.avgload
    host.run(0.5)
    s = host.sched
    assert v.rqd == 0 and v.avgload == load
    before = [rq.b_avgload for rq in s.rqs]
    host.set_vcpu_affinity(d.domid, 0, 0b1100, None)
    assert v.rqd == 1 and v.avgload == load
    assert [rq.b_avgload for rq in s.rqs] == [max(before[0] - load, 0), before[1] + load]
    assert v.load_last == paused_at


def test_an_affinity_write_updates_a_queued_vcpus_load_before_moving_it():
    # csched2_unit_sleep takes a queued vCPU off its run queue with update_load(-1): runnable since
    host = Host(Topology.uniform(2, 1, 1 << 30), "credit2", 0)
    a = host.create_domain("a", 1, 256, hard=0b01, load="busy").vcpus[0]
    b = host.create_domain("b", 1, 256, hard=0b01, load="busy").vcpus[0]
    for name in ("c", "d"):  # as loaded as the first run queue: balance_load stops at its tolerance check
        host.create_domain(name, 1, 256, hard=0b10, load="busy")
    host.run(0.3)
    queued = a if a.queued else b
    assert queued.queued and queued.load_last < host.tick
    load, last = queued.avgload, queued.load_last
    host.set_vcpu_affinity(queued.dom.domid, 0, 0b10, None)
    assert queued.rqd == 1
    assert queued.avgload == xen_update(load, 1, last, host.tick) and queued.load_last == host.tick


def test_a_run_queue_average_takes_in_the_count_that_held_until_the_event():
    # update_runq_load runs before the count changes: a vCPU that stops at a tick was
    # running (load 1) through the tick before
    host = Host(Topology.uniform(1, 2, 1 << 30), "credit2", 0)
    d = host.create_domain("a", 1, 256, load="busy")
    host.run(0.3)
    rq = host.sched.rqs[0]
    before, t0 = rq.b_avgload, host.tick
    host.tick += 1  # what Host.step does first, before the vCPUs' wakes and sleeps
    host.pause(d.domid)
    host.sched.tick()
    assert rq.b_avgload == xen_update(before, 1, t0, host.tick)


def test_a_run_queue_with_no_event_keeps_its_average_until_the_next_one():
    # idle pCPUs do not schedule: nothing calls update_runq_load on their run queue until a
    # vCPU of it wakes (then it decays, once, by all the time it stood empty)
    host = Host(Topology.uniform(2, 2, 1 << 30), "credit2", 0)
    d, v = _busy_then_paused(host, hard=0b0011)
    rq = host.sched.rqs[0]
    paused_at, load = host.tick, rq.b_avgload
    assert rq.load_last == paused_at
    host.run(0.5)
    assert rq.b_avgload == load
    host.unpause(d.domid)
    assert rq.b_avgload == xen_update(load, 0, paused_at, host.tick)
