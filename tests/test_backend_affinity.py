"""dom0 and the PV backends on the guest's node (issue 16): the planner on hand-built
inputs, the dom0 adapter against a fake /proc tree, and the daemon's cycle on the
simulated host and on a fake dom0 with work that is not ours."""
import json
import os
import subprocess
import signal
import sys
import time

import pytest

from xapi_numa import daemon
from xapi_numa.backends.dom0 import Dom0Proc, POLICY_SCRIPT, parse_cpu_list
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.dom0_tree import SimDom0
from xapi_numa.ops.backend_alignment import LOOK_EVERY
from xapi_numa.core import backend_affinity as ba
from xapi_numa.core.cpuset import format_ids
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology
from xapi_numa.ops import observe
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.backend_pins import BackendJournal
from xapi_numa.state.db import Database

TOPO = Topology.uniform(2, 2, 4 << 30)      # node 0: pCPUs 0-1, node 1: pCPUs 2-3
N0, N1, ALL = frozenset({0, 1}), frozenset({2, 3}), frozenset(range(4))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- the planner, on hand-built inputs ------------------------------------------------------------
def snap(guests, dom0_hard=(N0, N1)):
    """guests: domid -> soft affinity of its one vCPU."""
    domains = [DomainInfo(0, "Domain-0", "dom0-uuid", len(dom0_hard), 1 << 30, 1 << 30, False)]
    vcpus = {0: tuple(VcpuInfo(0, i, min(h), "running", h, ALL) for i, h in enumerate(dom0_hard))}
    for domid, soft in guests.items():
        domains.append(DomainInfo(domid, "g{}".format(domid), "uuid-{}".format(domid), 1, 1 << 30, 1 << 30,
                                  False, "pvh"))
        vcpus[domid] = (VcpuInfo(domid, 0, min(soft), "running", ALL, soft),)
    return HostSnapshot(TOPO, 0.0, tuple(domains), vcpus)


def task(domid, tid, allowed=frozenset({0, 1}), kind="netback"):
    return ba.BackendTask(domid, kind, tid, "vif{}.0-q0-guest".format(domid), 77, allowed)


def irq(domid, n, allowed=frozenset({0, 1})):
    return ba.BackendIrq(domid, n, "vif{}.0-q0-tx".format(domid), allowed)


def state(s, **kw):
    return ba.BackendState(ba.read_layout(s.vcpus[0], TOPO), **kw)


def kinds(actions):
    return [(type(a).__name__, getattr(a, "tid", getattr(a, "irq", getattr(a, "ident", None))),
             None if getattr(a, "cpus", None) is None else sorted(a.cpus)) for a in actions]


@pytest.mark.parametrize("case", [
    # (name, guests, tasks, irqs, extra state, expected)
    ("homed on node 1: thread and IRQ to dom0 vCPU 1", {1: N1}, [task(1, 500)], [irq(1, 90)], {},
     [("SetThreadAffinity", 500, [1]), ("SetIrqAffinity", 90, [1])]),
    ("homed on node 0", {1: N0}, [task(1, 500)], [irq(1, 90)], {},
     [("SetThreadAffinity", 500, [0]), ("SetIrqAffinity", 90, [0])]),
    ("already aligned and ours: nothing", {1: N1}, [task(1, 500, frozenset({1}))], [irq(1, 90, frozenset({1}))],
     {"owned": (ba.Owned("uuid-1", "thread", 500, "vif1.0-q0-guest", 77), ba.Owned("uuid-1", "irq", 90,
                                                                                 "vif1.0-q0-tx"))}, []),
    # a thread started by one we moved has its mask (Linux copies it): written once, to be journalled
    ("already aligned, not ours: the thread taken in hand, the IRQ left", {1: N1}, [task(1, 500, frozenset({1}))],
     [irq(1, 90, frozenset({1}))], {}, [("SetThreadAffinity", 500, [1])]),
    ("home over both nodes: both dom0 vCPUs", {1: ALL}, [task(1, 500, frozenset({1}))], [],
     {"owned": (ba.Owned("uuid-1", "thread", 500, "vif1.0-q0-guest", 77),)}, [("SetThreadAffinity", 500, [0, 1])]),
    # an admin's taskset is theirs: neither dom0's default nor a mask of ours, so never overwritten
    ("a thread someone else pinned: left alone", {1: N1}, [task(1, 500, frozenset({0}))], [], {}, []),
    ("the same with its home on both nodes: still left alone", {1: ALL}, [task(1, 500, frozenset({1}))], [], {}, []),
    # born to a thread we hold, with its mask; the guest's home moved since: both ours to align
    ("a sibling of a thread we hold, with its mask from an older home: aligned", {1: N1},
     [task(1, 500, frozenset({0})), task(1, 501, frozenset({0}))], [],
     {"owned": (ba.Owned("uuid-1", "thread", 500, "vif1.0-q0-guest", 77, cpus=frozenset({0})),)},
     [("SetThreadAffinity", 500, [1]), ("SetThreadAffinity", 501, [1])]),
    ("dom0's own and an unknown domain's work is never planned", {1: N1},
     [task(0, 10), task(7, 700)], [irq(0, 9), irq(7, 91)], {}, []),
    ("irqbalance in the way: threads only", {1: N1}, [task(1, 500)], [irq(1, 90)], {"irqs_allowed": False},
     [("SetThreadAffinity", 500, [1])]),
    ("opted out: nothing", {1: N1}, [task(1, 500)], [irq(1, 90)], {"opted_out": frozenset({"uuid-1"})}, []),
    ("opted out after we aligned: handed back to every dom0 vCPU", {1: N1}, [task(1, 500, frozenset({1}))], [],
     {"opted_out": frozenset({"uuid-1"}), "owned": (ba.Owned("uuid-1", "thread", 500, "vif1.0-q0-guest", 77),)},
     [("RestoreBackendAffinity", 500, [0, 1])]),
    ("switched off host-wide: IRQs back to default_smp_affinity", {1: N1}, [], [irq(1, 90, frozenset({1}))],
     {"enabled": False, "default_irq_cpus": frozenset({0}),
      "owned": (ba.Owned("uuid-1", "irq", 90, "vif1.0-q0-tx"),)},
     [("RestoreBackendAffinity", 90, [0])]),
    # the hand-back below writes only to a thread that is still the one journalled (name, start time)
    ("guest gone: the default back on whatever of it is left, and the entry goes", {}, [], [],
     {"owned": (ba.Owned("uuid-1", "thread", 500, "vif1.0-q0-guest", 77),)},
     [("RestoreBackendAffinity", 500, [0, 1])]),
    ("a reused tid (other start time): aligned anew, the old entry's write finds nothing", {1: N1},
     [task(1, 500)], [], {"owned": (ba.Owned("uuid-1", "thread", 500, "vif1.0-q0-guest", 12),)},
     [("SetThreadAffinity", 500, [1]), ("RestoreBackendAffinity", 500, [0, 1])]),
    ("still running, no longer the guest's alone (a tapdisk now shared): handed back", {1: N1}, [], [],
     {"owned": (ba.Owned("uuid-1", "thread", 700, "tapdisk", 77),)},
     [("RestoreBackendAffinity", 700, [0, 1])]),
], ids=lambda c: c[0])
def test_the_planner(case):
    _, guests, tasks, irqs, extra, expected = case
    s = snap(guests)
    assert kinds(ba.plan(s, state(s, tasks=tuple(tasks), irqs=tuple(irqs), **extra))) == expected


def test_an_unpinned_dom0_plans_nothing_and_says_which_vcpu():
    s = snap({1: N1}, dom0_hard=(N0, ALL))
    layout = ba.read_layout(s.vcpus[0], TOPO)
    assert not layout.usable
    assert "dom0 vCPU 1" in layout.problems[0] and "not pinned to one node" in layout.problems[0]
    owned = (ba.Owned("uuid-1", "thread", 500, "vif1.0-q0-guest", 77),)
    # nothing new, and nothing undone just because the layout is unusable this cycle
    assert ba.plan(s, ba.BackendState(layout, (task(1, 500, frozenset({1})),), owned=owned)) == []


def test_offline_dom0_vcpus_are_not_part_of_the_layout():
    vcpus = (VcpuInfo(0, 0, 0, "running", N0, ALL), VcpuInfo(0, 1, 2, "blocked", N1, ALL),
             VcpuInfo(0, 2, 1, "offline", ALL, ALL))
    assert dict(ba.read_layout(vcpus, TOPO).node_of_vcpu) == {0: 0, 1: 1}
    assert not ba.read_layout(vcpus[:2] + (VcpuInfo(0, 2, 1, "blocked", ALL, ALL),), TOPO).usable


def test_topology_lookups_refuse_ids_the_host_lacks():
    """CPU -1 was read as the last CPU, and CPU 7 of a 4-CPU host raised IndexError
    (Xen's maps are as wide as its possible CPUs, hotplug ones too: the Xen adapter reads
    them as the online CPUs, tests/test_native_c.py)."""
    from xapi_numa.errors import InvalidArgument
    for lookup in (lambda: TOPO.node_of(-1), lambda: TOPO.node_of(4), lambda: TOPO.nodes_of_cpus({7}),
                   lambda: TOPO.cpus_of_nodes({2}), lambda: TOPO.cpus_near({-1})):
        with pytest.raises(InvalidArgument):
            lookup()


def test_a_home_with_no_dom0_vcpu_plans_nothing():
    s = snap({1: N1}, dom0_hard=(N0,))  # one dom0 vCPU, on node 0
    assert ba.plan(s, state(s, tasks=(task(1, 500),))) == []


# --- the dom0 adapter against a fake /proc ------------------------------------------------------------
class FakeProc:
    """A /proc tree as Linux in a 4-vCPU dom0 shows it, built in tmp_path."""

    def __init__(self, root):
        self.root = str(root)
        self.proc = os.path.join(self.root, "proc")
        self.irqs = []
        self.where = {}
        os.makedirs(self.proc)
        self.write("irq/default_smp_affinity", "f\n")

    def write(self, rel, text):
        path = os.path.join(self.proc, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def read(self, rel):
        with open(os.path.join(self.proc, rel)) as f:
            return f.read()

    def thread(self, tid, comm, allowed="0-3", start=1000, cpu=2, cmdline="", pid=None, kthread=False):
        f = ["S"] + ["0"] * 36
        f[6] = str(0x00208040 if kthread else 0x00400100)  # flags: PF_KTHREAD for kernel threads
        f[11], f[12], f[19], f[36] = "150", "50", str(start), str(cpu)
        base = str(tid) if pid is None else "{}/task/{}".format(pid, tid)
        self.where[tid] = {base, str(tid)}
        for where in self.where[tid]:
            self.write(where + "/stat", "{} ({}) {}\n".format(tid, comm, " ".join(f)))
            self.write(where + "/status", "Name:\t{}\nCpus_allowed_list:\t{}\n".format(comm, allowed))
            self.write(where + "/cmdline", cmdline)

    def irq(self, n, name, allowed="0-3"):
        self.irqs.append((n, name))
        self.write("irq/{}/smp_affinity_list".format(n), allowed + "\n")
        lines = ["           CPU0       CPU1       CPU2       CPU3"]
        lines += ["{:>4}:  5  0  7  0  xen-dyn    -edge      {}".format(i, nm) for i, nm in self.irqs]
        lines.append(" NMI:  0  0  0  0  Non-maskable interrupts")
        self.write("interrupts", "\n".join(lines) + "\n")

    def set_affinity(self, calls, tid, cpus):
        """What sched_setaffinity does, as far as /proc shows it; and a record of the call."""
        calls.append((tid, sorted(cpus)))
        for where in self.where[tid]:    # /proc/<tid> and, for a non-leader thread, /proc/<pid>/task/<tid>
            text = self.read("{}/status".format(where))
            old = [line for line in text.splitlines() if line.startswith("Cpus_allowed_list:")][0]
            self.write("{}/status".format(where), text.replace(old, "Cpus_allowed_list:\t" + format_ids(cpus)))

    def dom0(self, calls):
        return Dom0Proc(self.root, set_affinity=lambda tid, cpus: self.set_affinity(calls, tid, cpus),
                        run_dir=os.path.join(self.root, "run"), clock_ticks=100)


@pytest.fixture
def fake(tmp_path):
    p = FakeProc(tmp_path / "dom0")
    p.thread(1, "systemd")
    p.thread(412, "sshd")
    p.thread(300, "vif3.0-q0-guest", kthread=True)  # netback, guest-rx (comm cut at 15)
    p.thread(301, "vif3.0-q0-deall", kthread=True)
    p.thread(302, "3.xvda-0", kthread=True)          # blkback since Linux 4.6
    p.thread(303, "blkback.3.xvdb", kthread=True)    # blkback before
    p.thread(304, "3.xvda-0")                        # a process named like one: not a kernel thread
    p.thread(305, "vif3.0-q0-guest")                 # likewise
    p.thread(310, "qemu-dm-3")
    p.thread(311, "qemu-dm-3", pid=310)          # a second thread of the device model
    p.thread(320, "qemu-system-i38", cmdline="qemu-system-i386\0-xen-domid\0004\0-nographic\0")
    p.thread(330, "qemu-system-i38", cmdline="qemu-system-i386\0-machine\0pc\0")   # not a Xen device model
    p.irq(9, "acpi")
    p.irq(80, "vif3.0-q0-tx")
    p.irq(81, "vif3.0-q0-rx")
    p.irq(82, "blkif-backend")                   # no domid in its name: never attributed
    return p


def test_the_adapter_finds_each_guests_backend_work_and_nothing_else(fake):
    dom0 = fake.dom0([])
    tasks = dom0.tasks()
    assert [(t.domid, t.kind, t.tid, t.name) for t in tasks] == [
        (3, "blkback", 302, "3.xvda-0"), (3, "blkback", 303, "blkback.3.xvdb"), (3, "netback", 300, "vif3.0-q0-guest"),
        (3, "netback", 301, "vif3.0-q0-deall"), (3, "qemu", 310, "qemu-dm-3"), (3, "qemu", 311, "qemu-dm-3"),
        (4, "qemu", 320, "qemu-system-i38")]
    t = tasks[0]
    assert t.allowed == frozenset(range(4)) and t.last_cpu == 2 and t.starttime == 1000 and t.cpu_time == 2.0
    assert [(q.domid, q.irq, q.name, q.counts) for q in dom0.irqs()] == [
        (3, 80, "vif3.0-q0-tx", ((0, 5), (1, 0), (2, 7), (3, 0))),
        (3, 81, "vif3.0-q0-rx", ((0, 5), (1, 0), (2, 7), (3, 0)))]
    assert [t.domid for t in dom0.tasks([4])] == [4]
    assert dom0.default_irq_cpus() == frozenset(range(4))


def test_interrupt_counts_go_to_the_cpus_the_header_names(fake):
    """/proc/interrupts has a column per online CPU only: with dom0 vCPU 1 offline, the
    third column is CPU3's (it was counted as CPU2's)."""
    fake.write("interrupts", "           CPU0       CPU2       CPU3\n  80:  5  0  700  xen-dyn    -edge      "
                             "vif3.0-q0-tx\n")
    assert [q.counts for q in fake.dom0([]).irqs()] == [((0, 5), (2, 0), (3, 700))]


def test_netback_threads_cut_right_after_the_queue_number_are_found(fake):
    """A 5-digit domid with device and queue numbers >= 10: comm (15 characters) ends
    right after the queue number, with no '-' left."""
    fake.thread(600, "vif12345.10-q10-guest-rx"[:15], kthread=True)
    fake.thread(601, "vif12345.10-q10-dealloc"[:15], kthread=True)
    fake.thread(602, "vif12345.1-q10-guest-rx"[:15], kthread=True)
    fake.thread(603, "vif12345.10-q10"[:15])                      # a process named like one: not a kernel thread
    assert [(t.tid, t.name, t.kind) for t in fake.dom0([]).tasks([12345])] == [
        (600, "vif12345.10-q10", "netback"), (601, "vif12345.10-q10", "netback"), (602, "vif12345.1-q10-", "netback")]


def test_writes_check_identity_first(fake):
    calls = []
    dom0 = fake.dom0(calls)
    assert dom0.set_thread(300, "vif3.0-q0-guest", 1000, frozenset({2, 3}))
    assert not dom0.set_thread(300, "vif3.0-q0-guest", 999, frozenset({2}))   # another start time: a reused tid
    assert not dom0.set_thread(412, "vif3.0-q0-guest", 1000, frozenset({2}))  # another comm
    assert not dom0.set_thread(4242, "vif3.0-q0-guest", 1000, frozenset({2}))  # gone
    assert calls == [(300, [2, 3])]
    assert dom0.set_irq(80, "vif3.0-q0-tx", frozenset({2, 3}))
    assert fake.read("irq/80/smp_affinity_list") == "2-3\n"
    assert not dom0.set_irq(9, "vif3.0-q0-tx", frozenset({2}))                 # IRQ 9 is someone else's
    assert fake.read("irq/9/smp_affinity_list") == "0-3\n"


def test_irqbalance_without_our_policy_script_is_a_conflict(fake):
    dom0 = fake.dom0([])
    assert dom0.irqbalance_conflict() is None
    fake.thread(600, "irqbalance", cmdline="/usr/sbin/irqbalance\0--foreground\0")
    message = dom0.irqbalance_conflict()
    assert "irqbalance (pid 600)" in message and POLICY_SCRIPT in message
    fake.thread(600, "irqbalance", cmdline="/usr/sbin/irqbalance\0--policyscript={}\0".format(POLICY_SCRIPT))
    assert dom0.irqbalance_conflict() is None
    dom0.ban_irq(80)
    dom0.ban_irq(81)
    dom0.unban_irq(80)
    assert dom0.banned() == frozenset({81})


def test_irqbalance_is_told_to_rescan_when_the_ban_list_changes(fake):
    """irqbalance runs the policy script only for an IRQ it has not seen: one it saw before
    we listed it stayed balanced (moved back every 10 s) until something made it rescan."""
    sent = []
    dom0 = Dom0Proc(fake.root, set_affinity=lambda tid, cpus: None, run_dir=os.path.join(fake.root, "run"),
                    clock_ticks=100, signaller=lambda pid, sig: sent.append((pid, sig)))
    fake.thread(600, "irqbalance", cmdline="/usr/sbin/irqbalance\0--policyscript={}\0".format(POLICY_SCRIPT))
    fake.thread(601, "irqbalance", cmdline="/usr/sbin/irqbalance\0")   # not ours: not asked
    dom0.ban_irq(80)
    assert sent == [(600, signal.SIGHUP)]
    dom0.ban_irq(80)                                     # no change, no rescan
    dom0.unban_irq(80)                                   # handed back: irqbalance takes it again
    assert sent == [(600, signal.SIGHUP)] * 2
    assert fake.dom0([]).signaller is None               # a tree that is not / names no process here


def test_the_irqbalance_policy_script_bans_exactly_the_listed_irqs(tmp_path):
    banned = tmp_path / "banned"
    banned.write_text("80\n81\n")
    script = os.path.join(REPO, "packaging", "irqbalance-policy")
    env = dict(os.environ, XAPI_NUMA_BANNED_IRQS=str(banned))

    def run(irq):
        return subprocess.run(["sh", script, "/sys/devices/x", str(irq)], stdout=subprocess.PIPE,
                              universal_newlines=True, env=env, check=True).stdout
    assert run(80) == "ban=true\n"
    assert run(8) == "" and run(180) == ""


# --- the cycle: on the simulated host, and on a fake dom0 with work that is not ours -------------------
def sim_host(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "host"), TOPO, "credit2", seed=1, dom0_vcpus=2)
    hv.set_vcpu_affinity(0, 0, hard=N0)     # dom0_vcpus_pin, one vCPU per node
    hv.set_vcpu_affinity(0, 1, hard=N1)
    return hv


def host_with_guest_3(tmp_path, dtype="pvh"):
    """sim_host with domain 3 (after two others, all homed on node 1): the fake dom0
    trees name domain 3's backends."""
    hv = sim_host(tmp_path)
    hv.create("a", 1, 256 << 20, soft=N1, dtype="pvh")
    hv.create("b", 1, 256 << 20, soft=N1, dtype="pvh")
    assert hv.create("g", 1, 256 << 20, soft=N1, dtype=dtype) == 3
    return hv


def dom0_tree(tmp_path, irqbalance=True):
    """A fake dom0 /proc with systemd and, by default, irqbalance running our policy script."""
    fake = FakeProc(tmp_path / "dom0")
    fake.thread(1, "systemd", allowed="0-1")
    if irqbalance:
        fake.thread(600, "irqbalance", cmdline="/usr/sbin/irqbalance\0--foreground\0--policyscript={}\0"
                    .format(POLICY_SCRIPT))
    return fake


def allowed(dom0, domid):
    return ({t.tid: sorted(t.allowed) for t in dom0.tasks([domid])},
            {q.irq: sorted(q.allowed) for q in dom0.irqs([domid])})


def test_backends_follow_the_home_and_nothing_is_left_after_shutdown(tmp_path):
    hv = sim_host(tmp_path)
    g = hv.create("g", 1, 512 << 20, soft=N1, dtype="pvh")
    dom0 = SimDom0(hv, str(tmp_path / "host"))
    db = Database(str(tmp_path / "l.db"))
    rt = Runtime(hv, db, Settings(rebalancing=False), dom0=dom0)
    own_before = [dom0.tree.proc + "/1/status", dom0.tree.proc + "/irq/9/smp_affinity_list"]
    hv.run(1.0)
    rt.cycle()
    threads, irqs = allowed(dom0, g)
    assert set(map(tuple, threads.values())) == {(1,)} and set(map(tuple, irqs.values())) == {(1,)}
    assert sorted(dom0.banned()) == sorted(irqs)
    before = dom0.tree.backend_load_by_node({0: 0, 1: 1})
    hv.run(2.0)
    dom0.sync()
    after = dom0.tree.backend_load_by_node({0: 0, 1: 1})
    assert {t.last_cpu for t in dom0.tasks([g])} == {1}
    # from alignment on, all of the backend CPU time is on dom0's node-1 vCPU (and there is some)
    assert after.get(0, 0.0) == before.get(0, 0.0) and after[1] > before.get(1, 0.0)
    # the home moves to node 0: within one cycle the backend work follows
    hv.set_vcpu_affinity(g, 0, soft=N0)
    rt.cycle()
    threads, irqs = allowed(dom0, g)
    assert set(map(tuple, threads.values())) == {(0,)} and set(map(tuple, irqs.values())) == {(0,)}
    # dom0's own work was never touched
    assert "Cpus_allowed_list:\t0-1" in open(own_before[0]).read()
    assert open(own_before[1]).read() == "0-1\n"
    # the guest goes: the next cycle leaves nothing of ours behind
    hv.destroy(g)
    rt.cycle()
    assert BackendJournal(db).entries() == [] and dom0.banned() == frozenset()
    assert dom0.tasks([g]) == ()


def aligned_guest(tmp_path, dtype):
    """A guest homed on node 1 and its backend work aligned there; ``out["opt"]`` opts it out."""
    hv = sim_host(tmp_path)
    g = hv.create("g", 1, 512 << 20, soft=N1, dtype=dtype)
    dom0 = SimDom0(hv, str(tmp_path / "host"))
    db = Database(str(tmp_path / "l.db"))
    out = {"opt": False}
    rt = Runtime(hv, db, Settings(rebalancing=False), dom0=dom0, backend_opt_out=lambda uuid: out["opt"])
    rt.cycle()
    assert {tuple(v) for v in allowed(dom0, g)[0].values()} == {(1,)}
    return hv, g, dom0, db, rt, out


def test_the_off_switches_hand_back_what_we_changed(tmp_path):
    hv, g, dom0, db, rt, out = aligned_guest(tmp_path, "hvm")
    assert "qemu" in {t.kind for t in dom0.tasks([g])}
    out["opt"] = True                                    # numa_backend_affinity=false on this VM
    rt.cycle()
    assert {tuple(v) for v in allowed(dom0, g)[0].values()} == {(0, 1)}
    assert {tuple(v) for v in allowed(dom0, g)[1].values()} == {(0, 1)}
    assert BackendJournal(db).entries() == [] and dom0.banned() == frozenset()
    out["opt"] = False
    rt.cycle()
    assert len(BackendJournal(db).entries()) > 0
    off = Runtime(hv, db, Settings(rebalancing=False, backend_affinity=False), dom0=dom0)
    off.cycle()                                          # xapi-numad --no-backend-affinity
    assert {tuple(v) for v in allowed(dom0, g)[0].values()} == {(0, 1)}
    assert BackendJournal(db).entries() == []


@pytest.mark.parametrize("unpinned", [[1], [0, 1]])
def test_handed_back_work_gets_every_online_dom0_vcpu_even_after_the_admin_unpinned_some(tmp_path, unpinned):
    """dom0's default was taken from its pinned vCPUs only: with one unpinned, the work went
    back to the other; with both, nothing was written and the journal forgot the pins."""
    hv, g, dom0, db, rt, out = aligned_guest(tmp_path, "pvh")
    for v in unpinned:
        hv.set_vcpu_affinity(0, v, hard=ALL)             # xl vcpu-pin Domain-0 v all
    out["opt"] = True
    rt.cycle()
    assert {tuple(v) for v in allowed(dom0, g)[0].values()} == {(0, 1)}
    assert BackendJournal(db).entries() == []


def test_the_daemon_never_touches_work_that_is_not_a_managed_guests(tmp_path, fake):
    """An unrelated dom0 process and IRQ, and the backends of a domid that runs no guest
    here, stay untouched through the daemon's cycles."""
    hv = sim_host(tmp_path)
    hv.create("a", 1, 256 << 20, soft=N1, dtype="pvh")
    hv.create("b", 1, 256 << 20, soft=N0, dtype="pvh")
    g = hv.create("g", 1, 256 << 20, soft=N1, dtype="pvh")
    assert g == 3  # the fake tree's backends are domain 3's; domain 4's qemu belongs to no guest here
    calls = []
    dom0 = fake.dom0(calls)
    before = {rel: fake.read(rel) for rel in ("irq/9/smp_affinity_list", "irq/82/smp_affinity_list",
                                              "412/status", "330/status", "304/status", "305/status")}
    rt = Runtime(hv, Database(str(tmp_path / "l.db")), Settings(rebalancing=False), dom0=dom0)
    for _ in range(3):
        rt.cycle()
    assert sorted(tid for tid, _ in calls) == [300, 301, 302, 303, 310, 311]
    assert {tuple(cpus) for _, cpus in calls} == {(1,)}
    assert fake.read("irq/80/smp_affinity_list") == "1\n" and fake.read("irq/81/smp_affinity_list") == "1\n"
    assert {rel: fake.read(rel) for rel in before} == before
    assert dom0.banned() == frozenset({80, 81})


# --- tapdisk (XenServer/XCP-ng): attributed through the toolstack's record, never by name -------------
STORE = {  # blktap3's tapback writes kthread-pid once a disk is connected
    "/local/domain/0/backend/vbd3": "0 3 5 6 7",
    "/local/domain/0/backend/vbd3/3": "768 832 51712",
    "/local/domain/0/backend/vbd3/3/768/kthread-pid": "700",
    "/local/domain/0/backend/vbd3/3/832/kthread-pid": "701",   # a second disk of guest 3: its own tapdisk
    "/local/domain/0/backend/vbd3/3/51712": "",                 # not connected yet: no key
    "/local/domain/0/backend/vbd3/0": "1",
    "/local/domain/0/backend/vbd3/0/1/kthread-pid": "703",      # dom0's own disk (an SR scan, say)
    "/local/domain/0/backend/vbd3/5": "768",
    "/local/domain/0/backend/vbd3/5/768/kthread-pid": "704",
    "/local/domain/0/backend/vbd3/6": "768",
    "/local/domain/0/backend/vbd3/6/768/kthread-pid": "704",    # one tapdisk for two guests: no one home
    "/local/domain/0/backend/vbd3/7": "768 832",
    "/local/domain/0/backend/vbd3/7/768/kthread-pid": "\uff17\uff10\uff15",  # fullwidth digits: not a pid
    "/local/domain/0/backend/vbd3/7/832/kthread-pid": "706",   # names a pid that is no tapdisk (a stale record)
}


def store_reader(monkeypatch, store):
    """A XenstoreReader that asks xenstore-read / xenstore-list, answered from ``store``."""
    from xapi_numa.backends import xenstore

    def tool(name, path):
        if path not in store:
            return None
        return store[path] + "\n" if name == "xenstore-read" else "\n".join(store[path].split()) + "\n"
    monkeypatch.setattr(xenstore.XenstoreReader, "_tool", staticmethod(tool))
    reader = xenstore.XenstoreReader()
    reader._lib = None   # no xenstored here: the tools' path, as in a dom0 without the library
    return reader


def test_tapdisks_are_read_from_the_toolstacks_device_records(monkeypatch):
    reader = store_reader(monkeypatch, STORE)
    assert reader.tapdisk_pids() == {700: {3}, 701: {3}, 703: {0}, 704: {5, 6}, 706: {7}}
    assert reader.tapdisk_pids([3]) == {700: {3}, 701: {3}}
    assert store_reader(monkeypatch, {}).tapdisk_pids() == {}    # no vbd3 backend at all (stock Xen)


def test_a_tapdisk_is_a_guests_only_by_its_record_and_alone(monkeypatch, fake):
    fake.thread(700, "tapdisk")
    fake.thread(707, "tapdisk", pid=700)       # a second thread of it: aligned with it
    fake.thread(701, "tapdisk")
    fake.thread(703, "tapdisk")                # dom0's own disk
    fake.thread(704, "tapdisk")                # serves guests 5 and 6
    fake.thread(705, "tapdisk")                # in no record
    fake.thread(706, "sshd")                   # a stale record's pid, reused
    dom0 = fake.dom0([])
    dom0.tapdisks = store_reader(monkeypatch, STORE).tapdisk_pids
    found = [(t.domid, t.tid) for t in dom0.tasks() if t.kind == "tapdisk"]
    assert found == [(3, 700), (3, 701), (3, 707)]
    assert [t.tid for t in dom0.tasks([5, 6, 7])] == []
    # without the records (stock Xen, the simulator) no tapdisk is anybody's
    dom0.tapdisks = None
    assert [t for t in dom0.tasks() if t.kind == "tapdisk"] == []


def test_the_daemon_aligns_a_guests_tapdisks_and_only_those(monkeypatch, tmp_path, fake):
    hv = sim_host(tmp_path)
    hv.create("a", 1, 256 << 20, soft=N1, dtype="pvh")
    hv.create("b", 1, 256 << 20, soft=N0, dtype="pvh")
    g = hv.create("g", 1, 256 << 20, soft=N1, dtype="pvh")
    assert g == 3
    fake.thread(700, "tapdisk")
    fake.thread(707, "tapdisk", pid=700)
    fake.thread(703, "tapdisk")
    fake.thread(704, "tapdisk")
    calls = []
    dom0 = fake.dom0(calls)
    dom0.tapdisks = store_reader(monkeypatch, STORE).tapdisk_pids
    untouched = {rel: fake.read(rel) for rel in ("703/status", "704/status")}
    rt = Runtime(hv, Database(str(tmp_path / "l.db")), Settings(rebalancing=False), dom0=dom0)
    rt.cycle()
    assert {tid for tid, _ in calls} >= {700, 707} and {tuple(cpus) for _, cpus in calls} == {(1,)}
    assert {rel: fake.read(rel) for rel in untouched} == untouched
    # the home moves: the tapdisk follows, like every other backend thread of the guest
    hv.set_vcpu_affinity(g, 0, soft=N0)
    rt.cycle()
    assert {t.tid: sorted(t.allowed) for t in dom0.tasks([g]) if t.kind == "tapdisk"} == {700: [0], 707: [0]}
    # it comes to serve guest 1's disk too: no one home any more, so dom0's default goes back on it
    shared = dict(STORE, **{"/local/domain/0/backend/vbd3/1": "768",
                            "/local/domain/0/backend/vbd3/1/768/kthread-pid": "700"})
    shared["/local/domain/0/backend/vbd3"] += " 1"
    dom0.tapdisks = store_reader(monkeypatch, shared).tapdisk_pids
    rt.cycle()  # a change inside dom0 alone is seen at the next look, within LOOK_EVERY
    assert [t.tid for t in dom0.tasks() if t.kind == "tapdisk"] == []
    assert fake.read("700/status").split("Cpus_allowed_list:\t")[1].strip() == "0"
    hv.run(LOOK_EVERY)
    rt.cycle()
    assert {tid: fake.read("{}/status".format(tid)).split("Cpus_allowed_list:\t")[1].strip()
            for tid in (700, 707)} == {700: "0-1", 707: "0-1"}


def test_dom0_is_read_when_what_the_plan_depends_on_changes_and_otherwise_rarely(tmp_path):
    """dom0's /proc was walked every cycle (about 4 ms a cycle natively with 65 processes,
    more on a big dom0), though what it says changes rarely."""
    hv = sim_host(tmp_path)
    g = hv.create("g", 1, 256 << 20, soft=N1, dtype="pvh")
    dom0 = SimDom0(hv, str(tmp_path / "host"))
    reads = []
    real_tasks = dom0.tasks
    dom0.tasks = lambda domids=None: reads.append(hv.clock()) or real_tasks(domids)
    rt = Runtime(hv, Database(str(tmp_path / "l.db")), Settings(rebalancing=False), dom0=dom0)
    for _ in range(5):
        rt.cycle()
        hv.run(1.0)
    assert len(reads) == 1                   # the first look only: nothing changed since
    hv.set_vcpu_affinity(g, 0, soft=N0)      # its home moves: looked at in the next cycle
    rt.cycle()
    assert len(reads) == 2 and {tuple(t.allowed) for t in real_tasks([g])} == {(0,)}
    h = hv.create("h", 1, 256 << 20, soft=N1, dtype="pvh")  # a guest starts
    rt.cycle()
    assert len(reads) == 3 and {tuple(t.allowed) for t in real_tasks([h])} == {(1,)}
    hv.run(LOOK_EVERY)                       # and otherwise every LOOK_EVERY seconds
    rt.cycle()
    rt.cycle()
    assert len(reads) == 4


def test_the_daemon_has_an_off_switch():
    assert daemon.parse_args(["--no-backend-affinity"]).backend_affinity is False
    assert daemon.parse_args([]).backend_affinity is True


# --- the command -----------------------------------------------------------------------------------------
def cli(*args):
    return subprocess.run([sys.executable, "-m", "xapi_numa.cli"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, cwd=REPO)


def test_backends_command(tmp_path):
    hv = sim_host(tmp_path)
    g = hv.create("web", 1, 256 << 20, soft=N1, dtype="pvh")
    spec = "sim:" + str(tmp_path / "host")
    r = cli("--backend", spec, "backends", "web", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["dom0_layout"] == {"0": 0, "1": 1} and rep["problems"] == []
    (vm,) = rep["vms"]
    assert vm["domid"] == g and vm["dom0_vcpus"] == "1" and len(vm["threads"]) == 3 and len(vm["irqs"]) == 2
    assert not any(t["aligned"] for t in vm["threads"])  # nothing aligned until the daemon runs
    r = cli("--backend", spec, "backends")
    assert r.returncode == 0 and "web (domid {})".format(g) in r.stdout and "(not aligned)" in r.stdout
    for bad, field in (("nosuch", "nosuch"), ("0", "VM")):
        r = cli("--backend", spec, "backends", bad)
        assert r.returncode != 0 and "Traceback" not in r.stderr and field in r.stderr


def test_backends_of_a_vm_not_there_changes_nothing(tmp_path):
    """The simulated dom0 tree is made at the first look: a VM that is not there made it."""
    sim_host(tmp_path)
    before = sorted(os.listdir(str(tmp_path)))
    r = cli("--backend", "sim:" + str(tmp_path / "host"), "backends", "nosuch")
    assert r.returncode == 1 and "no such VM or domain: nosuch" in r.stderr
    assert sorted(os.listdir(str(tmp_path))) == before


def test_parse_cpu_list():
    assert parse_cpu_list("0-2,5\n") == frozenset({0, 1, 2, 5}) and parse_cpu_list("") == frozenset()


def test_pin_dom0_gives_an_unpinned_dom0_one_node_per_vcpu(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "host"), TOPO, "credit2", seed=1, dom0_vcpus=3)
    assert not ba.read_layout(hv.vcpus(0), TOPO).usable
    rt = Runtime(hv, Database(str(tmp_path / "l.db")), Settings(rebalancing=False))
    daemon.pin_dom0(rt)
    layout = ba.read_layout(hv.vcpus(0), TOPO)
    assert layout.usable and dict(layout.node_of_vcpu) == {0: 0, 1: 1, 2: 0}
    assert ba.plan_dom0_pins(hv.vcpus(0), TOPO) == []   # already laid out: nothing more


def test_pin_dom0_spreads_a_dom0_that_dom0_vcpus_pin_left_on_one_node(tmp_path):
    """dom0_vcpus_pin puts a dom0 smaller than a node all on node 0: a per-node layout, yet no
    dom0 vCPU for a guest on node 1.  --pin-dom0 (docs/dom0-backends.md's remedy) did nothing, and
    nothing said why node 1's guests stayed unaligned."""
    from xapi_numa.ops import backend_alignment
    hv = SimHypervisor.init(str(tmp_path / "host"), TOPO, "credit2", seed=1, dom0_vcpus=2)
    hv.set_vcpu_affinity(0, 0, hard=frozenset({0}))
    hv.set_vcpu_affinity(0, 1, hard=frozenset({1}))
    layout = ba.read_layout(hv.vcpus(0), TOPO)
    assert layout.usable and layout.uncovered == frozenset({1})
    g = hv.create("g", 1, 256 << 20, soft=N1, dtype="pvh")
    dom0 = SimDom0(hv, str(tmp_path / "host"))
    report = backend_alignment.report(observe.take(hv), dom0, None)
    assert any(p.startswith("dom0 has no vCPU on node(s) 1:") for p in report["problems"]), report["problems"]
    rt = Runtime(hv, Database(str(tmp_path / "l.db")), Settings(rebalancing=False))
    daemon.pin_dom0(rt)
    layout = ba.read_layout(hv.vcpus(0), TOPO)
    assert dict(layout.node_of_vcpu) == {0: 0, 1: 1} and layout.uncovered == frozenset()
    assert backend_alignment.report(observe.take(hv), dom0, None)["problems"] == []
    assert ba.read_layout(hv.vcpus(0), TOPO).vcpus_on(frozenset({1})) and g


def test_pin_dom0_leaves_alone_a_layout_that_covers_what_dom0_can(tmp_path):
    """One dom0 vCPU cannot cover two nodes: its pin stays (re-pinning would gain nothing)."""
    from xapi_numa.ops import backend_alignment
    hv = SimHypervisor.init(str(tmp_path / "host"), TOPO, "credit2", seed=1, dom0_vcpus=1)
    hv.set_vcpu_affinity(0, 0, hard=N1)
    assert ba.plan_dom0_pins(hv.vcpus(0), TOPO) == []
    problems = backend_alignment.report(observe.take(hv), SimDom0(hv, str(tmp_path / "host")), None)["problems"]
    assert any("no vCPU to spare" in p for p in problems) and not any("--pin-dom0" in p for p in problems), problems


def test_an_irq_whose_affinity_write_is_refused_is_not_left_banned(tmp_path, fake):
    """The kernel refusing the write (a directory where the file should be stands in for EIO):
    the journal entry goes, and so must the ban, or irqbalance never manages that IRQ again."""
    from xapi_numa.core import actions as act
    from xapi_numa.ops.executor import REFUSED, Executor
    os.remove(os.path.join(fake.proc, "irq", "80", "smp_affinity_list"))
    os.makedirs(os.path.join(fake.proc, "irq", "80", "smp_affinity_list"))
    dom0 = fake.dom0([])
    db = Database(str(tmp_path / "l.db"))
    hv = SimHypervisor.init(str(tmp_path / "host"), TOPO, "credit", seed=1)
    move = act.SetIrqAffinity(3, "uuid-3", 80, "vif3.0-q0-tx", frozenset({1}), reason="test")
    assert [o.status for o in Executor(hv, db, dom0=dom0).apply([move])] == [REFUSED]
    assert dom0.banned() == frozenset() and BackendJournal(db).entries() == []


def test_an_unban_that_fails_is_retried_and_the_rest_of_the_cycle_still_runs(tmp_path, fake, monkeypatch):
    """/run full: handing back a gone guest's IRQ cannot unban it.  The entry stays for the
    next cycle, and the cycle's upkeep (dead movers, leases) still runs."""
    import errno
    from xapi_numa.core import actions as act
    from xapi_numa.state.ledger import Ledger
    dom0 = fake.dom0([])
    hv = SimHypervisor.init(str(tmp_path / "host"), TOPO, "credit", seed=1)
    db = Database(str(tmp_path / "l.db"))
    rt = Runtime(hv, db, Settings(rebalancing=False), dom0=dom0)
    BackendJournal(db).record(ba.Owned("gone-uuid", ba.IRQ, 80, "vif3.0-q0-tx", 0))
    dom0.ban_irq(80)

    def full(irq):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(dom0, "unban_irq", full)
    hand_back = act.RestoreBackendAffinity("gone-uuid", ba.IRQ, 80, "vif3.0-q0-tx", 0, frozenset({0, 1}),
                                           reason="the guest is gone")
    monkeypatch.setattr(rt.backends, "plan", lambda snap, enabled: [hand_back])
    Ledger(db=db).reserve("vm-x", {0: 1 << 30}, 0.001, lambda: {0: 4 << 30})
    time.sleep(0.01)
    report = rt.cycle()
    assert report.get("expired") == 1
    assert [e.ident for e in BackendJournal(db).entries()] == [80]
    monkeypatch.undo()
    rt.cycle()
    assert BackendJournal(db).entries() == [] and dom0.banned() == frozenset()


# --- review: masks of ours and masks of someone else's, on a dom0 with two vCPUs per node ---------
def snap_two_each(guests, offline=()):
    """dom0 vCPUs 0,1 pinned to node 0 and 2,3 to node 1 (``offline`` ones down)."""
    s = snap(guests, dom0_hard=(N0, N0, N1, N1))
    dom0 = tuple(VcpuInfo(0, v.vcpu, v.cpu, "offline" if v.vcpu in offline else v.state, v.hard, v.soft)
                 for v in s.vcpus[0])
    vcpus = dict(s.vcpus)
    vcpus[0] = dom0
    return HostSnapshot(TOPO, 0.0, s.domains, vcpus)


def qemu(tid, allowed):
    return ba.BackendTask(1, "qemu", tid, "qemu-dm-1", 77, allowed)


HELD = (ba.Owned("uuid-1", "thread", 500, "qemu-dm-1", 77),)


# journalled with the mask we gave it: node 0's dom0 vCPUs (its home was node 0 then)
HELD_WITH_MASK = (ba.Owned("uuid-1", "thread", 500, "qemu-dm-1", 77, cpus=frozenset({0, 1})),)


def test_an_admins_taskset_on_a_thread_we_hold_is_left_as_they_set_it():
    """We aligned qemu's thread (journalled); the admin then pinned it to one dom0 vCPU of its
    home: not the mask we gave it, so it is theirs: forgotten (never undone by a hand-back),
    not overwritten at the next look as it was."""
    s = snap_two_each({1: N1})
    assert kinds(ba.plan(s, state(s, tasks=(qemu(500, frozenset({2})),), owned=HELD_WITH_MASK))) == [
        ("ForgetBackendAffinity", 500, None)]
    # the mask we gave it, as the home moved: still aligned
    assert kinds(ba.plan(s, state(s, tasks=(qemu(500, frozenset({0, 1})),), owned=HELD_WITH_MASK))) == [
        ("SetThreadAffinity", 500, [2, 3])]
    # an entry from before masks were journalled: judged as before (ours)
    assert kinds(ba.plan(s, state(s, tasks=(qemu(500, frozenset({2})),), owned=HELD))) == [
        ("SetThreadAffinity", 500, [2, 3])]


def test_a_taskset_to_a_whole_nodes_dom0_vcpus_on_a_guest_we_hold_is_the_admins():
    """The guest's netback thread is ours; the admin pins its qemu (never ours) to node 0's dom0
    vCPUs: with one rule for 'some nodes' dom0 vCPUs' it was taken for ours and overwritten."""
    s = snap_two_each({1: N1})
    tasks = (qemu(500, frozenset({2, 3})), qemu(501, frozenset({0, 1})))
    held = (ba.Owned("uuid-1", "thread", 500, "qemu-dm-1", 77, cpus=frozenset({2, 3})),)
    assert kinds(ba.plan(s, state(s, tasks=tasks, owned=held))) == []


def test_the_journal_keeps_the_mask_we_gave_and_reads_older_entries(tmp_path):
    db = Database(str(tmp_path / "l.db"))
    with db.write() as conn:  # a journal as written before masks were kept
        conn.execute("CREATE TABLE backend_affinity (kind TEXT NOT NULL, ident INTEGER NOT NULL, uuid TEXT NOT NULL, "
                     "name TEXT NOT NULL, starttime INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (kind, ident))")
        conn.execute("INSERT INTO backend_affinity VALUES ('thread', 500, 'uuid-1', 'qemu-dm-1', 77)")
    journal = BackendJournal(db)
    assert [o.cpus for o in journal.entries()] == [None]
    journal.record(ba.Owned("uuid-1", "thread", 501, "qemu-dm-1", 78, cpus=frozenset({2, 3})))
    assert [o.cpus for o in journal.entries()] == [None, frozenset({2, 3})]


def test_a_sibling_with_our_mask_from_before_a_dom0_vcpu_went_offline_is_still_ours():
    """dom0 vCPU 3 went offline: Linux keeps {2,3} on the threads we gave it.  The thread we hold
    is aligned to {2}; its unjournalled sibling, born with {2,3}, was taken for someone else's
    (not a node's dom0 vCPUs by today's layout) and stayed there for good."""
    s = snap_two_each({1: N1}, offline=(3,))
    tasks = (qemu(500, frozenset({2, 3})), qemu(501, frozenset({2, 3})))
    assert kinds(ba.plan(s, state(s, tasks=tasks, owned=HELD))) == [
        ("SetThreadAffinity", 500, [2]), ("SetThreadAffinity", 501, [2])]


def test_a_sibling_with_our_mask_from_before_a_dom0_vcpu_came_back_online_is_still_ours():
    """vCPU 3 was offline when we aligned qemu's thread to {2}; a thread it started since has {2}.
    vCPU 3 is back: the thread we hold goes to {2,3}, the sibling stays on {2} for good."""
    s = snap_two_each({1: N1})
    tasks = (qemu(500, frozenset({2})), qemu(501, frozenset({2})))
    assert kinds(ba.plan(s, state(s, tasks=tasks, owned=HELD))) == [
        ("SetThreadAffinity", 500, [2, 3]), ("SetThreadAffinity", 501, [2, 3])]
