"""Handing back guests' backend work in dom0: when a managed guest's home moves to
nodes that have no dom0 vCPU, and when dom0 refuses a re-alignment of work we had
already moved (the journal must still name it, or it is never handed back)."""
import errno

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.dom0_tree import SimDom0
from xapi_numa.core import actions as act
from xapi_numa.core import backend_affinity as ba
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.locality import home_nodes
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology
from xapi_numa.ops.executor import DONE, REFUSED, Executor
from xapi_numa.errors import HypervisorError
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.backend_pins import BackendJournal
from xapi_numa.state.db import Database

TOPO3 = Topology.uniform(3, 2, 4 << 30)     # node 0: pCPUs 0-1, node 1: 2-3, node 2: 4-5
N0, N1, N2 = frozenset({0, 1}), frozenset({2, 3}), frozenset({4, 5})
ALL3 = frozenset(range(6))
NAME = "vif1.0-q0-guest"


# --- the planner: a home with no dom0 vCPU ----------------------------------------------------------
def snap_homed_on(soft):
    """dom0 with vCPU 0 on node 0 and vCPU 1 on node 1 (none on node 2); guest 1 homed by ``soft``."""
    domains = (DomainInfo(0, "Domain-0", "dom0-uuid", 2, 1 << 30, 1 << 30, False),
               DomainInfo(1, "g1", "uuid-1", 1, 1 << 30, 1 << 30, False, "pvh"))
    vcpus = {0: (VcpuInfo(0, 0, 0, "running", N0, ALL3), VcpuInfo(0, 1, 2, "running", N1, ALL3)),
             1: (VcpuInfo(1, 0, min(soft), "running", ALL3, soft),)}
    return HostSnapshot(TOPO3, 0.0, domains, vcpus)


def test_a_managed_guest_whose_home_has_no_dom0_vcpu_gets_its_backend_work_handed_back():
    s = snap_homed_on(N2)
    owned = (ba.Owned("uuid-1", ba.THREAD, 500, NAME, 77), ba.Owned("uuid-1", ba.IRQ, 90, "vif1.0-q0-tx"))
    st = ba.BackendState(ba.read_layout(s.vcpus[0], TOPO3),
                         tasks=(ba.BackendTask(1, "netback", 500, NAME, 77, frozenset({1})),),
                         irqs=(ba.BackendIrq(1, 90, "vif1.0-q0-tx", frozenset({1})),), owned=owned,
                         default_irq_cpus=frozenset({0}))
    actions = ba.plan(s, st)
    assert [(type(a).__name__, a.kind, a.ident, sorted(a.cpus)) for a in actions] == [
        ("RestoreBackendAffinity", ba.THREAD, 500, [0, 1]), ("RestoreBackendAffinity", ba.IRQ, 90, [0])]
    assert all("no dom0 vCPU" in a.reason for a in actions)


def test_the_backend_work_of_a_guest_not_read_this_time_stays_where_we_put_it(tmp_path):
    """A guest whose vCPUs could not be read is left out of the snapshot but is not gone:
    its backend work was handed back to dom0's default (and moved again next cycle)."""
    hv = SimHypervisor.init(str(tmp_path / "host"), TOPO3, "credit2", seed=1, dom0_vcpus=2)
    hv.set_vcpu_affinity(0, 0, hard=N0)
    hv.set_vcpu_affinity(0, 1, hard=N1)
    g = hv.create("g", 1, 512 << 20, soft=N1, dtype="pvh")

    class Unreadable:
        failing = False

        def __getattr__(self, name):
            return getattr(hv, name)

        def vcpus(self, domid):
            if self.failing and domid == g:
                raise HypervisorError(errno.EIO, "reading the vCPUs of domain {}".format(domid))
            return hv.vcpus(domid)

    view = Unreadable()
    dom0 = SimDom0(hv, str(tmp_path / "host"))
    db = Database(str(tmp_path / "l.db"))
    rt = Runtime(view, db, Settings(rebalancing=False, fixup_every=0), dom0=dom0)
    rt.cycle()
    placed = {t.tid: t.allowed for t in dom0.tasks([g])}
    journal = BackendJournal(db).entries()
    assert journal and all(cpus == frozenset({1}) for cpus in placed.values())  # on dom0's vCPU of node 1
    view.failing = True
    rt.cycle()
    assert {t.tid: t.allowed for t in dom0.tasks([g])} == placed and BackendJournal(db).entries() == journal
    hv.destroy(g)
    rt.cycle()
    assert BackendJournal(db).entries() == []  # gone for good: handed back


def test_a_home_with_no_dom0_vcpu_leaves_work_we_never_moved_alone():
    s = snap_homed_on(N2)
    st = ba.BackendState(ba.read_layout(s.vcpus[0], TOPO3),
                         tasks=(ba.BackendTask(1, "netback", 500, NAME, 77, frozenset({1})),))
    assert ba.plan(s, st) == []


def test_backends_are_handed_back_when_the_home_moves_to_a_node_without_dom0_vcpus(tmp_path):
    """The simulated host of the report: the guest's memory is on node 2, which has no
    dom0 vCPU; its soft affinity says node 1, so the first cycle aligns its backend work
    to dom0 vCPU 1 and the fix-up moves its home to node 2.  The next cycle hands the
    work back to every dom0 vCPU and unbans its IRQs."""
    hv = SimHypervisor.init(str(tmp_path / "host"), TOPO3, "credit2", seed=1, dom0_vcpus=2)
    hv.set_vcpu_affinity(0, 0, hard=N0)
    hv.set_vcpu_affinity(0, 1, hard=N1)
    g = hv.create("g", 1, 512 << 20, soft=N2, dtype="pvh")
    hv.set_vcpu_affinity(g, 0, soft=N1)
    dom0 = SimDom0(hv, str(tmp_path / "host"))
    db = Database(str(tmp_path / "l.db"))
    rt = Runtime(hv, db, Settings(rebalancing=False), dom0=dom0)
    rt.cycle()
    assert {tuple(sorted(t.allowed)) for t in dom0.tasks([g])} == {(1,)}
    assert home_nodes(hv.vcpus(g), TOPO3) == frozenset({2})
    rt.cycle()
    assert {tuple(sorted(t.allowed)) for t in dom0.tasks([g])} == {(0, 1)}
    assert {tuple(sorted(q.allowed)) for q in dom0.irqs([g])} == {(0, 1)}
    assert BackendJournal(db).entries() == [] and dom0.banned() == frozenset()


# --- the executor: a refused re-alignment -----------------------------------------------------------
class RefusingDom0:
    """dom0's write side, refusing (EINVAL) once ``refuse`` is set; remembers what is allowed and
    banned, and writes only to the thread or IRQ of the identity it has (as Dom0Proc does)."""

    def __init__(self):
        self.allowed = {500: frozenset({0, 1}), 90: frozenset({0, 1})}
        self.identity = {500: (NAME, 77), 90: ("vif1.0-q0-tx",)}
        self.bans = set()
        self.refuse = False

    def _set(self, ident, identity, cpus):
        if self.identity[ident] != identity:
            return False
        if self.refuse:
            raise OSError(errno.EINVAL, "Invalid argument")
        self.allowed[ident] = frozenset(cpus)
        return True

    def set_thread(self, tid, name, starttime, cpus):
        return self._set(tid, (name, starttime), cpus)

    def set_irq(self, irq, name, cpus):
        return self._set(irq, (name,), cpus)

    def ban_irq(self, irq):
        self.bans.add(irq)

    def unban_irq(self, irq):
        self.bans.discard(irq)


class Clock:
    """As much of the hypervisor port as the executor's dom0 writes read: its clock and boot id."""

    def clock(self):
        return 0.0

    def boot_id(self):
        return ""


def executor(tmp_path):
    dom0 = RefusingDom0()
    db = Database(str(tmp_path / "l.db"))
    return Executor(Clock(), db, dom0=dom0), dom0, db


def thread_to(cpus):
    return act.SetThreadAffinity(1, "uuid-1", 500, NAME, 77, frozenset(cpus), reason="test")


def irq_to(cpus):
    return act.SetIrqAffinity(1, "uuid-1", 90, "vif1.0-q0-tx", frozenset(cpus), reason="test")


def test_a_refused_thread_realignment_keeps_the_entry_of_the_change_still_in_effect(tmp_path):
    ex, dom0, db = executor(tmp_path)
    assert [o.status for o in ex.apply([thread_to({1})])] == [DONE]
    dom0.refuse = True
    assert [o.status for o in ex.apply([thread_to({0})])] == [REFUSED]
    assert dom0.allowed[500] == frozenset({1})
    assert BackendJournal(db).entries() == [ba.Owned("uuid-1", ba.THREAD, 500, NAME, 77)]


def test_a_refused_irq_realignment_keeps_its_entry_and_its_ban(tmp_path):
    ex, dom0, db = executor(tmp_path)
    assert [o.status for o in ex.apply([irq_to({1})])] == [DONE]
    dom0.refuse = True
    assert [o.status for o in ex.apply([irq_to({0})])] == [REFUSED]
    assert dom0.allowed[90] == frozenset({1}) and dom0.bans == {90}
    assert BackendJournal(db).entries() == [ba.Owned("uuid-1", ba.IRQ, 90, "vif1.0-q0-tx")]


def test_a_refused_first_alignment_leaves_no_entry_and_no_ban(tmp_path):
    ex, dom0, db = executor(tmp_path)
    dom0.refuse = True
    assert [o.status for o in ex.apply([thread_to({1}), irq_to({1})])] == [REFUSED, REFUSED]
    assert BackendJournal(db).entries() == [] and dom0.bans == set()


def test_handing_back_a_gone_thread_keeps_the_entry_of_the_new_one_with_its_tid(tmp_path):
    """The planner's reused-tid case: the new thread is aligned, then the old entry handed
    back; that write finds the old thread gone, and must not take the new entry with it."""
    ex, dom0, db = executor(tmp_path)
    BackendJournal(db).record(ba.Owned("uuid-1", ba.THREAD, 500, NAME, 12))
    hand_back = act.RestoreBackendAffinity("uuid-1", ba.THREAD, 500, NAME, 12, frozenset({0, 1}), reason="gone")
    assert [o.status for o in ex.apply([thread_to({1}), hand_back])] == [DONE, "gone"]
    assert dom0.allowed[500] == frozenset({1})
    assert BackendJournal(db).entries() == [ba.Owned("uuid-1", ba.THREAD, 500, NAME, 77)]


def test_handing_back_a_gone_irq_keeps_the_entry_and_ban_of_the_new_one_with_its_number(tmp_path):
    ex, dom0, db = executor(tmp_path)
    BackendJournal(db).record(ba.Owned("uuid-9", ba.IRQ, 90, "vif9.0-q0-tx"))
    dom0.ban_irq(90)
    hand_back = act.RestoreBackendAffinity("uuid-9", ba.IRQ, 90, "vif9.0-q0-tx", 0, frozenset({0, 1}), reason="gone")
    assert [o.status for o in ex.apply([irq_to({1}), hand_back])] == [DONE, "gone"]
    assert dom0.bans == {90}
    assert BackendJournal(db).entries() == [ba.Owned("uuid-1", ba.IRQ, 90, "vif1.0-q0-tx")]
