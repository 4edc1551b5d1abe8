"""A guest shut down and not yet destroyed (a poweroff or crash being handled, a suspend
being saved; it may yet resume, as after a failed suspend) keeps its backend work as it is:
none of its threads or IRQs is moved to its home, and what we moved for it is not handed
back meanwhile.  It was aligned as a running guest (one write per thread or IRQ to work
about to go), as homing and the affinity fix-up no longer act on such a domain."""
import attrs

from test_backend_affinity import N1, irq, kinds, snap, state, task

from xapi_numa.core import backend_affinity as ba
from xapi_numa.core.snapshot import HostSnapshot


def _shut_down(s: HostSnapshot, domid: int) -> HostSnapshot:
    return attrs.evolve(s, domains=tuple(attrs.evolve(d, shutdown=True) if d.domid == domid else d
                                         for d in s.domains))


def test_a_shut_down_guests_backend_work_is_not_moved():
    s = snap({1: N1})
    tasks, irqs = (task(1, 500),), (irq(1, 90),)
    assert kinds(ba.plan(s, state(s, tasks=tasks, irqs=irqs))) == [
        ("SetThreadAffinity", 500, [1]), ("SetIrqAffinity", 90, [1])]  # running: aligned
    assert kinds(ba.plan(_shut_down(s, 1), state(s, tasks=tasks, irqs=irqs))) == []


def test_what_we_moved_for_a_shut_down_guest_stays_until_it_is_gone():
    s = _shut_down(snap({1: N1}), 1)
    owned = (ba.Owned("uuid-1", "thread", 500, "vif1.0-q0-guest", 77, cpus=frozenset({1})),)
    assert kinds(ba.plan(s, state(s, tasks=(task(1, 500, frozenset({1})),), owned=owned))) == []
    # its thread gone (the backend torn down): the journal entry is dropped as for any other
    gone = ba.plan(s, state(s, tasks=(), owned=owned))
    assert [type(a).__name__ for a in gone] == ["RestoreBackendAffinity"]
