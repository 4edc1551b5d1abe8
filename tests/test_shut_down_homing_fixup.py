"""A domain shut down and not yet destroyed is left alone by homing and the affinity fix-up.

Between a guest's shutdown (a poweroff, a crash being handled, a coredump taken) and its
destruction, Xen keeps the domain (``DomainInfo.shutdown``, from XEN_DOMINF_shutdown)
with its vCPUs paused for the shutdown.  The rebalancer already leaves it alone
(tests/test_rebalance_shut_down.py); the fix-up still pointed its soft affinity at its
memory, and homing would pin it if a snapshot showed one of its vCPUs running.  A pin of
ours it holds is still undone: that is our own write taken back, which a domain
destroyed meanwhile turns into 'gone' (the executor drops the record)."""
import attrs

from xapi_numa.core import affinity_fixup, homing
from xapi_numa.core.homing import PinRecord

from test_planners import ALL, LONG_AGO, N0, N1, SWAPPED, dom, snap, vcpu


def shut_down(domid, vcpus=2):
    return attrs.evolve(dom(domid, vcpus), shutdown=True)


def test_the_fixup_leaves_a_shut_down_domains_soft_affinity_alone():
    """Its memory (still there until it is destroyed) mostly on node 1, its soft affinity on
    node 0, its vCPUs paused for the shutdown as the Xen adapter reads them."""
    vs = [vcpu(1, 0, 0, N0, state="paused"), vcpu(1, 1, 1, N0, state="paused")]
    assert affinity_fixup.plan(snap(vs, pages={1: {0: 3, 1: 97}}, domains=[shut_down(1)])) == []
    # the same domain running (or only paused by a controller) is fixed up, as before
    assert [a.soft for a in affinity_fixup.plan(snap(vs, pages={1: {0: 3, 1: 97}}, domains=[dom(1)]))] == [N1, N1]


def test_homing_pins_no_vcpu_of_a_shut_down_domain_nor_holds_it_with_a_partner():
    """A and C swapped (see test_planners): C shut down, say a snapshot shows its vCPU
    running.  Only A's vCPU is brought home; under credit2, held whole, nothing of C's."""
    s = snap(SWAPPED, domains=[dom(1), shut_down(2)])
    assert [(p.domid, p.vcpu) for p in homing.plan(s, LONG_AGO, threshold=1.0)] == [(1, 0)]
    c2 = attrs.evolve(s, scheduler="credit2")
    pins = homing.plan(c2, LONG_AGO, threshold=1.0, escalate={1, 2}, settling=True)
    assert {p.domid for p in pins} == {1}
    assert [(p.domid, p.vcpu) for p in homing.plan(snap(SWAPPED), LONG_AGO, threshold=1.0)] == [(1, 0), (2, 0)]


def test_a_pin_of_ours_on_a_domain_that_shut_down_is_still_undone():
    """Our own pin taken back (the domain may come back: a suspend cancelled resumes it);
    once the domain is no longer listed (dying, destroyed) the record is only forgotten."""
    record = PinRecord("uuid-1", 0, 1, N0, ALL, 8.0)
    pinned = [vcpu(1, 0, 1, N0, hard=N0, state="paused")]
    out = homing.plan_restores(snap(pinned, time=9.0, domains=[shut_down(1, 1)]), [record], timeout=5.0)
    assert [(r.domid, r.vcpu, r.hard) for r in out] == [(1, 0, ALL)]
    gone = homing.plan_restores(snap([vcpu(3, 0, 0, N0)], time=9.0), [record], timeout=5.0)
    assert [(r.domid, r.hard, r.reason) for r in gone] == [(None, None, "the VM is gone")]
