"""Review 11 (simulator against Xen 4.17): credit1 does not boost the first wake-up after
the pCPU pick logic ran for a vCPU.

xen/common/sched/credit.c: csched_res_pick sets CSCHED_FLAG_UNIT_MIGRATING on every call
("so that later, in csched_unit_wake() ... we won't get boosted"), and csched_unit_wake
boosts UNDER to BOOST only when test_and_clear_bit() finds that flag clear.  The pick runs
for csched_unit_insert (a new domain's vCPUs) and for vcpu_migrate_finish (an affinity
write), also while the vCPU is asleep: its next real wake-up is not boosted.  The model
boosted the first wake of every new vCPU (a started domain preempted running work at
once, where Xen lets it wait for the time slice) and every wake after an affinity write
to a blocked or paused vCPU.
"""
from xapi_numa.backends.sim.credit1 import PRI_BOOST, PRI_UNDER
from xapi_numa.backends.sim.model import Host
from xapi_numa.backends.sim.state_format import host_from_dict, host_to_dict
from xapi_numa.core.topology import Topology

GIB = 1 << 30


def _host():
    return Host(Topology.uniform(1, 1, 4 * GIB), scheduler="credit", seed=3)


def test_a_new_domain_does_not_preempt_running_work_on_its_first_wake():
    host = _host()
    a = host.create_domain("a", 1, 256)
    host.step()  # a runs, its boost (if any) over
    assert a.vcpus[0].running and a.vcpus[0].pri == PRI_UNDER
    b = host.create_domain("b", 1, 256)
    # csched_unit_insert picked b's pCPU: its first wake is not boosted, so a keeps the pCPU
    assert b.vcpus[0].pri == PRI_UNDER
    assert a.vcpus[0].running and b.vcpus[0].queued
    host.check_invariants()


def test_an_affinity_write_while_paused_spends_the_next_wakes_boost():
    host = _host()
    a = host.create_domain("a", 1, 256)
    host.step()
    b = host.create_domain("b", 1, 256, paused=True)
    host.unpause(b.domid)  # the insert's pick is spent on this wake
    host.pause(b.domid)
    host.set_vcpu_affinity(b.domid, 0, None, 1)  # vcpu_migrate_finish picks again, asleep
    host.unpause(b.domid)
    assert b.vcpus[0].pri == PRI_UNDER and a.vcpus[0].running
    host.pause(b.domid)
    host.unpause(b.domid)  # no pick since: an ordinary wake, boosted
    assert b.vcpus[0].pri == PRI_BOOST and b.vcpus[0].running


def test_the_pending_pick_survives_the_state_file():
    host = _host()
    b = host.create_domain("b", 1, 256, paused=True)
    again = host_from_dict(host_to_dict(host))
    again.unpause(b.domid)
    assert again.domains[b.domid].vcpus[0].pri == PRI_UNDER
