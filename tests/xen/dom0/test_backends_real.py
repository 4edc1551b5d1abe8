"""Backend alignment on real Xen (issue 16): a PVH guest homed on node 1 with a disk
(blkback over a loop device) and a network device (netback), and a stand-in for XenServer's
tapdisk (a process named tapdisk, recorded in xenstore as blktap3's tapback records it: Debian has
no blktap3); xapi-numad's cycle puts their threads and IRQs on dom0's node-1 vCPU, moves them when the home moves,
leaves nothing behind when the guest goes, and never touches dom0's own work.

dom0 is laid out for it first: two vCPUs online, vCPU 0 pinned to node 0's first pCPU
and vCPU 1 to node 1's (what ``dom0_max_vcpus=2 dom0_vcpus_pin`` plus one
``xl vcpu-pin`` give); the dom0 suite's own layout is put back afterwards."""
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import expected_scheduler
from xenlib import GUEST_KERNEL, wait_console, xl

from xapi_numa.backends.dom0 import Dom0Proc
from xapi_numa.backends.xenstore import XenstoreReader
from xapi_numa.core import backend_affinity as ba
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.backend_pins import BackendJournal
from xapi_numa.state.db import Database

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = os.path.join(HERE, "modules")
HOTPLUG = os.path.join(HERE, "hotplug")
IO_INITRD = "/opt/guest/initrd-io.cpio"
NAME = "backends"


def sh(*cmd, check=True):
    proc = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError("{} failed: {}".format(" ".join(cmd), proc.stderr.strip()))
    return proc.stdout


def wait(what, predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.5)


@pytest.fixture(scope="module", autouse=True)
def once_per_run(xen_cmdline):
    if expected_scheduler(xen_cmdline) != "credit2":
        pytest.skip("backend threads and IRQs are dom0's, not the scheduler's: they run in the credit2 boot only")


@pytest.fixture
def dom0_per_node(hv):
    """dom0 with one online vCPU per node, each pinned there; the suite's layout afterwards."""
    topo = hv.topology()
    for name in ("loop", "xen-blkback", "xen-netback"):
        if not os.path.isdir("/sys/module/" + name.replace("-", "_")):
            sh("insmod", os.path.join(MODULES, name + ".ko"))
    before = len([v for v in hv.vcpus(0) if v.state != "offline"])
    xl("vcpu-set", "0", str(len(topo.nodes)))
    wait("dom0 vCPUs offline", lambda: len([v for v in hv.vcpus(0) if v.state != "offline"]) == len(topo.nodes), 30)
    for node in topo.nodes:
        xl("vcpu-pin", "0", str(node.id), str(min(node.cpus)))
    yield ba.read_layout(hv.vcpus(0), topo)
    xl("vcpu-set", "0", str(before))
    for v in hv.vcpus(0):
        subprocess.run(["xl", "vcpu-pin", "0", str(v.vcpu), "all"], timeout=60)


@pytest.fixture
def io_guest(tmp_path):
    image = str(tmp_path / "disk.img")
    sh("dd", "if=/dev/zero", "of=" + image, "bs=1M", "count=32")
    loop = sh("losetup", "-f", "--show", image).strip()
    cfg = str(tmp_path / "guest.cfg")
    with open(cfg, "w") as f:
        f.write("\n".join([
            'name = "{}"'.format(NAME), 'type = "pvh"', 'kernel = "{}"'.format(GUEST_KERNEL),
            'ramdisk = "{}"'.format(IO_INITRD), 'extra = "console=hvc0 rdinit=/init quiet"',
            "memory = 256", "vcpus = 1", 'tsc_mode = "native"', 'on_crash = "destroy"',
            'cpus_soft = "nodes:1"',
            "disk = ['format=raw, vdev=xvda, access=rw, script={}/vbd-test, target={}']".format(HOTPLUG, loop),
            "vif = ['script={}/vif-test']".format(HOTPLUG)]) + "\n")
    xl("create", cfg)
    domid = int(xl("domid", NAME).strip())
    try:
        yield domid
    finally:
        subprocess.run(["xl", "destroy", NAME], timeout=60)
        subprocess.run(["losetup", "-d", loop], timeout=60)


def tapdisk_stand_in(tmp_path, domid):
    """A process whose comm is tapdisk, recorded as the tapdisk of the guest's disk 768."""
    binary = str(tmp_path / "tapdisk")
    shutil.copy("/bin/sleep", binary)
    proc = subprocess.Popen([binary, "600"])
    sh("xenstore-write", "/local/domain/0/backend/vbd3/{}/768/kthread-pid".format(domid), str(proc.pid))
    return proc


def thread_ticks(tid):
    """(utime + stime in ticks, the dom0 vCPU it is on) of a thread, or None if gone."""
    try:
        with open("/proc/{}/stat".format(tid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12]), int(fields[36])


def cpu_share_on(tids, cpus, seconds=10.0):
    """Share of these threads' CPU time spent on ``cpus`` while sampled (every 20 ms:
    each tick a thread gains between two samples is put on the vCPU it is on)."""
    last = {t: thread_ticks(t) for t in tids}
    on, total = 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.02)
        for t in tids:
            now = thread_ticks(t)
            if now is None or last[t] is None:
                continue
            gained = now[0] - last[t][0]
            total += gained
            on += gained if now[1] in cpus else 0
            last[t] = now
    return on, total


def test_backend_work_follows_the_guests_home(hv, dom0_per_node, io_guest, tmp_path):
    layout = dom0_per_node
    assert layout.usable, layout.problems
    node0, node1 = layout.vcpus_on(frozenset({0})), layout.vcpus_on(frozenset({1}))
    domid = io_guest
    dom0 = Dom0Proc("/", run_dir=str(tmp_path / "run"), tapdisks=XenstoreReader().tapdisk_pids)
    # the first wait after xl create: nothing under test has acted on the guest yet (the fixtures
    # set up dom0 only), so a guest the emulator kills here gets the harness's rerun
    wait_console(NAME, r"guest: io up \(xvda", timeout=300, untouched=True)
    try:
        wait("netback and blkback threads", lambda: {"netback", "blkback"} <= {t.kind for t in dom0.tasks([domid])})
    except AssertionError:
        comms = sorted({open("/proc/{}/comm".format(p)).read().strip() for p in os.listdir("/proc") if p.isdigit()})
        print("dom0 threads: {}\nbackend tree: {}".format(comms, sh("xenstore-ls", "-f", "/local/domain/0/backend",
                                                                   check=False)))
        raise
    # XenServer's disk backend: a tapdisk named by the record blktap3's tapback writes.  Debian has no
    # blktap3, so a stand-in process named tapdisk gets a record as tapback would write it; what is
    # real is the xenstore read through libxenstore and the affinity Linux gives the process.
    tapdisk = tapdisk_stand_in(tmp_path, domid)
    # dom0's own work that must stay as it is: a process, and an IRQ that is not a guest's
    bystander = subprocess.Popen(["sleep", "600"])
    own_irq = next(i for i, name, _ in dom0._interrupts() if name and not name.startswith("vif"))
    own_before = (sh("grep", "Cpus_allowed_list", "/proc/{}/status".format(bystander.pid)),
                  dom0.irq_allowed(own_irq))
    db = Database(str(tmp_path / "ledger.db"))
    # no rebalancing and no page scans (the affinity fix-up would move the home on its own)
    rt = Runtime(hv, db, Settings(rebalancing=False, page_scan_max_memory=0), dom0=dom0)
    try:
        rt.cycle()
        tasks, irqs = dom0.tasks([domid]), dom0.irqs([domid])
        print("backend threads: {}".format([(t.tid, t.name, sorted(t.allowed)) for t in tasks]))
        print("backend IRQs: {}".format([(q.irq, q.name, sorted(q.allowed)) for q in irqs]))
        assert irqs, "no netback IRQ found in /proc/interrupts"
        assert [t.tid for t in tasks if t.kind == "tapdisk"] == [tapdisk.pid]
        assert os.sched_getaffinity(tapdisk.pid) == node1
        assert all(t.allowed == node1 for t in tasks) and all(q.allowed == node1 for q in irqs)
        # under disk load, the threads' CPU time is spent on dom0's node-1 vCPU
        on, total = cpu_share_on([t.tid for t in tasks], node1)
        print("XEN-BENCH-BACKENDS: {} of {} ticks on node 1's dom0 vCPU".format(on, total))
        assert total > 0 and on >= 0.95 * total
        # the home moves to node 0: one cycle later the backends are there
        xl("vcpu-pin", NAME, "all", "-", "nodes:0")
        started = time.monotonic()
        rt.cycle()
        took = time.monotonic() - started
        tasks, irqs = dom0.tasks([domid]), dom0.irqs([domid])
        assert all(t.allowed == node0 for t in tasks) and all(q.allowed == node0 for q in irqs)
        assert os.sched_getaffinity(tapdisk.pid) == node0
        # as when the disk is unplugged: tapdisk and its record go
        tapdisk.kill()
        tapdisk.wait()
        sh("xenstore-rm", "/local/domain/0/backend/vbd3/{}".format(domid))
        print("XEN-BENCH-BACKENDS: followed the new home in one cycle ({:.2f}s)".format(took))
        # the guest goes: nothing of ours is left
        xl("destroy", NAME)
        wait("backend threads gone", lambda: not dom0.tasks([domid]), 60)
        rt.cycle()
        assert BackendJournal(db).entries() == [] and dom0.banned() == frozenset()
        assert not [q for q in dom0.irqs() if re.match(r"vif{}\.".format(domid), q.name)]
        assert (sh("grep", "Cpus_allowed_list", "/proc/{}/status".format(bystander.pid)),
                dom0.irq_allowed(own_irq)) == own_before
    finally:
        bystander.kill()
        tapdisk.kill()
        subprocess.run(["xenstore-rm", "/local/domain/0/backend/vbd3"], timeout=60)
