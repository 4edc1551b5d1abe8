"""dom0 as an adapter: its vCPU layout, the guests' backend work in its /proc, and
the affinity of that work.

Read from dom0's procfs (``root`` lets tests and the simulator point it at a
tree of their own):

* backend threads, attributed to a guest by the domid in their name: the
  device model (``qemu-dm-<domid>``, or a qemu whose command line says
  ``-xen-domid <domid>``; every thread of it), tapdisk on XenServer/XCP-ng
  (every thread of the process the toolstack's device record names, see
  ``tapdisks`` below; a tapdisk serving several guests' disks, or dom0's
  own, is left alone: it has no one home), netback kernel threads
  (``vif<domid>.<dev>-q<N>-guest-rx``, ``-dealloc``; comm is cut at 15
  characters, which keeps the domid and may leave nothing after the queue
  number) and blkback kernel threads (``<domid>.<dev>-<ring>`` since Linux
  4.6, ``blkback.<domid>.<dev>`` before); only kernel threads match those two;
* the event-channel IRQs of netback devices (``vif<domid>.<dev>-q<N>[-tx|-rx]``
  in ``/proc/interrupts``).  blkback names its IRQs ``blkif-backend`` with no
  domid, so they cannot be attributed from /proc and are left alone; the
  blkback thread, which does the I/O, is aligned;
* whether irqbalance runs, and with which policy script.

Every write first re-reads the thread's comm and start time (or the IRQ's
action name) and does nothing if they changed: a tid or IRQ number reused by
something else is never touched.  CPU numbers here are dom0's own (its
vCPUs), which is what Linux in dom0 calls CPUs.
"""
import os
import re
import signal
from typing import Callable, FrozenSet, Iterable, Iterator, List, Mapping, Optional, Tuple

from xapi_numa.core.backend_affinity import BackendIrq, BackendTask, Dom0Layout, read_layout
from xapi_numa.core.cpuset import format_ids
from xapi_numa.errors import BackendUnavailable
from xapi_numa.ports.hypervisor import Hypervisor

# the comm may end right after the queue number: "vif12345.10-q10-guest-rx" is cut to "vif12345.10-q10"
NETBACK_THREAD = re.compile(r"^vif(\d+)\.(\d+)-q\d+(?:-|$)")
# "<domid>.<dev>-<ring>" since multi-queue blkback (Linux 4.6); "blkback.<domid>.<dev>" before
BLKBACK_THREAD = re.compile(r"^(?:blkback\.)?(\d+)\.[a-z]+[0-9]*[a-z]*(?:-\d+)?$")
PF_KTHREAD = 0x00200000  # stat field 9: netback and blkback threads are kernel threads
QEMU_DM = re.compile(r"^qemu-dm-(\d+)$")
NETBACK_IRQ = re.compile(r"^vif(\d+)\.(\d+)(-q\d+)?(-tx|-rx)?$")
POLICY_SCRIPT = "/opt/xapi-numa/libexec/irqbalance-policy"
BANNED_FILE = "irqbalance-banned-irqs"
DEFAULT_RUN_DIR = "/run/xapi-numa"

AffinitySetter = Callable[[int, FrozenSet[int]], None]
# pid -> domids whose disks it serves (dom0's own as 0); raises OSError when it cannot tell
TapdiskPids = Callable[[], Mapping[int, FrozenSet[int]]]
Signaller = Callable[[int, int], None]  # (pid, signal), as os.kill
TAPDISK_COMM = "tapdisk"


def parse_cpu_list(text: str) -> FrozenSet[int]:
    """A kernel CPU list (``0-3,6``) as ids; the kernel writes it, so it is well formed."""
    out = set()
    for part in text.strip().split(","):
        if part:
            first, _, last = part.partition("-")
            out.update(range(int(first), int(last or first) + 1))
    return frozenset(out)


class Dom0Proc:
    """dom0's procfs, read and written for backend alignment."""

    def __init__(self, root: str = "/", set_affinity: Optional[AffinitySetter] = None,
                 run_dir: str = DEFAULT_RUN_DIR, clock_ticks: Optional[int] = None,
                 tapdisks: Optional[TapdiskPids] = None, signaller: Optional[Signaller] = None) -> None:
        """``tapdisks`` reads the toolstack's record of which tapdisk serves
        which guest (:meth:`xapi_numa.backends.xenstore.XenstoreReader.tapdisk_pids`
        on a real dom0); without it no tapdisk is attributed.  ``signaller``
        tells irqbalance to read our list again (os.kill, only over the real /proc:
        a tree elsewhere names no process of this machine)."""
        self.proc = os.path.join(root, "proc")
        self.set_affinity = set_affinity or os.sched_setaffinity
        self.run_dir = run_dir
        self.clock_ticks = clock_ticks or os.sysconf("SC_CLK_TCK")
        self.tapdisks = tapdisks
        self.signaller = signaller if signaller is not None else (os.kill if os.path.abspath(root) == "/" else None)

    # --- dom0's own layout ---------------------------------------------------------------------
    @staticmethod
    def layout(hv: Hypervisor) -> Dom0Layout:
        return read_layout(hv.vcpus(0), hv.topology())

    # --- threads ----------------------------------------------------------------------------------
    def _read(self, *parts: str) -> Optional[str]:
        try:
            with open(os.path.join(self.proc, *parts), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return None  # the thread or IRQ went away while we looked: not ours to report

    def _pids(self) -> Iterator[int]:
        try:
            names = os.listdir(self.proc)
        except OSError as err:
            raise BackendUnavailable("cannot list dom0's processes in {}: {}".format(self.proc, err.strerror)) from None
        for name in names:
            if name.isdigit():
                yield int(name)

    def _stat(self, *parts: str) -> Optional[Tuple[str, List[str]]]:
        """(comm, fields after comm) of a stat file; comm may hold spaces and parentheses."""
        text = self._read(*parts)
        if not text or "(" not in text:
            return None
        comm = text[text.index("(") + 1:text.rindex(")")]
        return comm, text[text.rindex(")") + 2:].split()

    def _task(self, domid: int, kind: str, pid: int, tid: int) -> Optional[BackendTask]:
        base = (str(pid), "task", str(tid)) if pid != tid else (str(tid),)
        stat = self._stat(*base, "stat")
        status = self._read(*base, "status")
        if stat is None or status is None:
            return None
        comm, f = stat
        allowed = frozenset()
        for line in status.splitlines():
            if line.startswith("Cpus_allowed_list:"):
                allowed = parse_cpu_list(line.split(":", 1)[1])
        # fields after comm start at field 3: utime 14, stime 15, starttime 22, processor 39
        return BackendTask(domid, kind, tid, comm, int(f[19]), allowed, int(f[36]) if len(f) > 36 else -1,
                           (int(f[11]) + int(f[12])) / float(self.clock_ticks))

    def _threads_of(self, pid: int) -> List[int]:
        try:
            tids = {int(t) for t in os.listdir(os.path.join(self.proc, str(pid), "task")) if t.isdigit()}
            return sorted(tids | {pid})
        except OSError:
            return [pid]

    def _owner(self, pid: int, comm: str, flags: int,
               served: FrozenSet[int] = frozenset()) -> Optional[Tuple[int, str, bool]]:
        """(domid, kind, whole process?) of a backend process or kernel thread, else None.
        ``served``: the guests the toolstack's records say this pid serves disks for."""
        if comm == TAPDISK_COMM and not flags & PF_KTHREAD:
            # by the toolstack's record only (a stale one names a pid now not a tapdisk), and only
            # when it serves one guest alone
            return (next(iter(served)), "tapdisk", True) if len(served) == 1 else None
        for pattern, kind in ((NETBACK_THREAD, "netback"), (BLKBACK_THREAD, "blkback")):
            m = pattern.match(comm)
            if m and flags & PF_KTHREAD:
                return int(m.group(1)), kind, False
        m = QEMU_DM.match(comm)
        if m:
            return int(m.group(1)), "qemu", True
        if comm.startswith("qemu"):
            args = (self._read(str(pid), "cmdline") or "").split("\0")
            if "-xen-domid" in args[:-1]:
                value = args[args.index("-xen-domid") + 1]
                if value.isdigit() and int(value) != 0:
                    return int(value), "qemu", True
        return None

    def tasks(self, domids: Optional[Iterable[int]] = None) -> Tuple[BackendTask, ...]:
        """Backend threads of guests (of these domids only, if given)."""
        wanted = None if domids is None else set(domids)
        served = self.tapdisks() if self.tapdisks is not None else {}  # every guest's: who else it serves matters
        out = {}
        for pid in self._pids():
            stat = self._stat(str(pid), "stat")
            if stat is None:
                continue
            owner = self._owner(pid, stat[0], int(stat[1][6]), served.get(pid, frozenset()))
            if owner is None or owner[0] == 0 or (wanted is not None and owner[0] not in wanted):
                continue
            domid, kind, whole = owner
            for tid in (self._threads_of(pid) if whole else [pid]):
                task = self._task(domid, kind, pid, tid)
                if task is not None:
                    out[tid] = task  # once, whether reached as a process or as a thread of one
        return tuple(sorted(out.values(), key=lambda t: (t.domid, t.kind, t.tid)))

    def _identity(self, tid: int) -> Optional[Tuple[str, int]]:
        stat = self._stat(str(tid), "stat")  # /proc/<tid> also names non-leader threads
        return None if stat is None else (stat[0], int(stat[1][19]))

    def set_thread(self, tid: int, name: str, starttime: int, cpus: FrozenSet[int]) -> bool:
        """Set a thread's affinity if it is still the thread we saw; False if it is gone."""
        if self._identity(tid) != (name, starttime):
            return False
        try:
            self.set_affinity(tid, cpus)
        except ProcessLookupError:
            return False
        return True

    # --- IRQs -----------------------------------------------------------------------------------
    def _interrupts(self) -> Iterator[Tuple[int, str, Tuple[Tuple[int, int], ...]]]:
        text = self._read("interrupts") or ""
        lines = text.splitlines()
        if not lines:
            return
        # one column per online CPU, named in the header (CPU0 CPU2 ...: an offline one has none)
        cpus = [int(c[3:]) if c.startswith("CPU") and c[3:].isdigit() else i for i, c in enumerate(lines[0].split())]
        ncpu = len(cpus)
        for line in lines[1:]:
            head, _, rest = line.partition(":")
            if not head.strip().isdigit():
                continue  # NMI, LOC ...: not device IRQs
            fields = rest.split()
            counts = tuple((cpu, int(c)) for cpu, c in zip(cpus, fields[:ncpu]) if c.isdigit())
            yield int(head), (fields[-1] if len(fields) > ncpu else ""), counts

    def irq_allowed(self, irq: int) -> FrozenSet[int]:
        return parse_cpu_list(self._read("irq", str(irq), "smp_affinity_list") or "")

    def irqs(self, domids: Optional[Iterable[int]] = None) -> Tuple[BackendIrq, ...]:
        wanted = None if domids is None else set(domids)
        out = []
        for irq, name, counts in self._interrupts():
            m = NETBACK_IRQ.match(name)
            if not m or int(m.group(1)) == 0 or (wanted is not None and int(m.group(1)) not in wanted):
                continue
            out.append(BackendIrq(int(m.group(1)), irq, name, self.irq_allowed(irq), counts))
        return tuple(out)

    def default_irq_cpus(self) -> Optional[FrozenSet[int]]:
        text = self._read("irq", "default_smp_affinity")
        if not text:
            return None
        mask = int(text.strip().replace(",", ""), 16)
        return frozenset(i for i in range(mask.bit_length()) if mask >> i & 1)

    def set_irq(self, irq: int, name: str, cpus: FrozenSet[int]) -> bool:
        """Set an IRQ's affinity if it still belongs to the device we saw; False if not."""
        if not any(i == irq and n == name for i, n, _ in self._interrupts()):
            return False
        try:
            with open(os.path.join(self.proc, "irq", str(irq), "smp_affinity_list"), "w") as f:
                f.write(format_ids(cpus) + "\n")
        except FileNotFoundError:
            return False
        return True

    # --- irqbalance ---------------------------------------------------------------------------------
    def _irqbalances(self) -> Iterator[Tuple[int, bool]]:
        """(pid, runs with our policy script) of each irqbalance running."""
        for pid in self._pids():
            stat = self._stat(str(pid), "stat")
            if stat is not None and stat[0] == "irqbalance":
                yield pid, POLICY_SCRIPT in (self._read(str(pid), "cmdline") or "").replace("\0", " ")

    def irqbalance_conflict(self) -> Optional[str]:
        """Why IRQ alignment would fight irqbalance, or None when it would not."""
        for pid, ours in self._irqbalances():
            if not ours:
                return ("irqbalance (pid {}) runs without --policyscript={}: it would move the backend "
                        "IRQs back, so they are left alone (threads are still aligned); add that option "
                        "to IRQBALANCE_ARGS and restart irqbalance, or stop it".format(pid, POLICY_SCRIPT))
        return None

    def _banned_path(self) -> str:
        return os.path.join(self.run_dir, BANNED_FILE)

    def banned(self) -> FrozenSet[int]:
        try:
            with open(self._banned_path()) as f:
                return frozenset(int(x) for x in f.read().split() if x.isdigit())
        except FileNotFoundError:
            return frozenset()

    def _write_banned(self, irqs: FrozenSet[int]) -> None:
        """Rewrite the list our irqbalance policy script reads (atomically: it may read any time)."""
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)  # (as the lock's and the batch records')
        tmp = self._banned_path() + ".tmp"
        with open(tmp, "w") as f:
            f.write("".join("{}\n".format(i) for i in sorted(irqs)))
        os.replace(tmp, self._banned_path())
        self.remind_irqbalance()

    def remind_irqbalance(self) -> None:
        """SIGHUP to each irqbalance running our policy script.  irqbalance asks the script
        only of an IRQ it has not seen: one it took before we listed it stays its own until
        it rescans, which SIGHUP makes it do.  But it ignores SIGHUP during the first
        iteration after it starts or rescans (its own rescan on a new IRQ: when a guest's
        vif appears), so the caller sends it again later (BackendAlignment)."""
        for pid, ours in self._irqbalances() if self.signaller else ():
            if ours:
                try:
                    self.signaller(pid, signal.SIGHUP)
                except OSError:
                    pass  # gone meanwhile: the one that starts next runs the script for every IRQ

    def ban_irq(self, irq: int) -> None:
        current = self.banned()
        if irq not in current:
            self._write_banned(current | {irq})

    def unban_irq(self, irq: int) -> None:
        current = self.banned()
        if irq in current:
            self._write_banned(current - {irq})
