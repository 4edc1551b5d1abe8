"""The simulated host's dom0: its guests' backend work, as a procfs tree and as load.

Real backend alignment reads dom0's /proc; on a simulated host this module
keeps a tree shaped like it beside the state file (``PATH.dom0/proc``), so
the very same adapter (:class:`xapi_numa.backends.dom0.Dom0Proc`) and the
daemon's planner run unchanged.  Each guest gets the backend work a PVH or
HVM guest with one disk and one network device has under Xen 4.17: a netback
``vif<domid>.0-q0-guest-rx`` kernel thread (comm cut at 15 characters as
Linux does), a ``<domid>.xvda-0`` blkback thread, a ``qemu-dm-<domid>`` process
for HVM guests, and the ``vif<domid>.0-q0-tx``/``-rx`` event-channel IRQs.
A few of dom0's own processes and IRQs are there too: never ours to touch.

Backend work as load: every sync charges each guest's backend threads a
share (:data:`BACKEND_SHARE`) of the CPU time the guest ran since the last
sync, on a dom0 vCPU they are allowed on (the least loaded), and its IRQs
the matching interrupts.  dom0's load profile becomes the mean backend load
over its vCPUs (the simulated schedulers load a domain's vCPUs alike: which
dom0 vCPU, hence which node, carries it is reported by
:func:`backend_load_by_node`, not scheduled).
"""
import contextlib
import errno
import fcntl
import json
import os
import shutil
import zlib
from typing import Any, Dict, FrozenSet, Iterator, List, Mapping, Optional, Tuple

from xapi_numa.backends.dom0 import PF_KTHREAD, Dom0Proc, parse_cpu_list
from xapi_numa.backends.sim.state_shape import (
    COUNT, CPU, Context, Damaged, Kind, ListOf, MapOf, Number, Record, Row, Shape, Where, check, found)
from xapi_numa.core.cpuset import format_ids, parse_ids
from xapi_numa.errors import HypervisorError, StateError

BACKEND_SHARE = 0.1         # backend CPU seconds per guest CPU second (disk and network I/O)
DOM0_OWN = ((1, "systemd"), (412, "sshd"), (977, "xenstored"))
DOM0_OWN_IRQS = ((9, "acpi"), (24, "xenbus"), (25, "hvc_console"))
STATE_FILE = "sim-backend.json"
# held while the tree is read, changed and written: xapi-numad and `xapi-numa backends` (or two
# commands) use one simulated dom0 at once, and without it one lost the other's writes
LOCK_FILE = "sim-backend.lock"


# The tree's own state, as _save writes it: checked at every read, so that a hand edit is
# one line naming the field, never a Python error in the middle of a sync.
class _CpuList(Shape):
    """A CPU list of dom0's vCPUs (the IRQ counts are indexed by it)."""

    def check(self, value: Any, where: Where, ctx: Context) -> None:
        try:
            parse_ids(value, ctx["cpus"] - 1)
        except (TypeError, ValueError, AttributeError):
            raise Damaged("{} must be a CPU list of dom0's vCPUs 0..{} such as 0-1, not {}".format(
                where, ctx["cpus"] - 1, found(value))) from None


_ALLOWED = _CpuList()
_THREAD = Record([("comm", Kind(str)), ("start", COUNT), ("allowed", _ALLOWED), ("ticks", COUNT), ("cpu", CPU),
                  ("domid", COUNT)], [("per_cpu", MapOf(COUNT, "a dom0 vCPU"))])
_IRQ = Record([("name", Kind(str)), ("allowed", _ALLOWED), ("counts", ListOf(COUNT, per="cpus")),
               ("domid", COUNT)])
_TREE = Record([("threads", MapOf(_THREAD, "a thread id")), ("irqs", MapOf(_IRQ, "an IRQ")),
                ("guest_cpu", MapOf(Row([("uuid", Kind(str)), ("CPU seconds", Number(0))]), "a domid"))])


def tree_root(state_path: str) -> str:
    return state_path + ".dom0"


def forget_dom0_tree(state_path: str) -> None:
    """Remove the simulated dom0 of the host at ``state_path`` (one being made again), only
    if it is ours: a directory of that name without our record is left alone.  Under the
    tree's lock, as every writer of it: a process syncing the tree meanwhile (a command
    reading dom0's threads) finishes first, rather than writing files into it while it
    goes, which then stayed with the old host's threads or made the removal fail."""
    root = tree_root(state_path)
    if os.path.isfile(os.path.join(root, STATE_FILE)) and not os.path.islink(root):
        try:
            with Dom0Tree(root, 0).locked():
                shutil.rmtree(root)
        except OSError as err:
            raise StateError("the new host is made, but the replaced host's simulated dom0 {} cannot be removed "
                             "({}): remove it by hand".format(root, err.strerror or err)) from None


def _guest_threads(domid: int, dtype: str) -> List[Tuple[int, str]]:
    """(tid, comm) of a guest's backend threads: tids derived from the domid."""
    base = 100000 + 16 * domid
    out = [(base, "vif{}.0-q0-guest-rx".format(domid)[:15]), (base + 1, "vif{}.0-q0-dealloc".format(domid)[:15]),
           (base + 2, "{}.xvda-0".format(domid)[:15])]
    if dtype == "hvm":
        out.append((base + 3, "qemu-dm-{}".format(domid)))
    return out


def _guest_irqs(domid: int) -> List[Tuple[int, str]]:
    return [(1000 + 2 * domid, "vif{}.0-q0-tx".format(domid)), (1001 + 2 * domid, "vif{}.0-q0-rx".format(domid))]


def _starttime(uuid: str) -> int:
    """A start time unique to the guest (a reused domid gets new backend threads)."""
    return zlib.crc32(uuid.encode()) & 0xFFFFFF


class Dom0Tree:
    """Writes and updates the simulated dom0's procfs tree."""

    def __init__(self, root: str, ncpus: int) -> None:
        self.root = root
        self.proc = os.path.join(root, "proc")
        self.ncpus = ncpus

    # --- files -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The tree to ourselves (an exclusive flock; not re-entrant: never nested)."""
        os.makedirs(self.root, exist_ok=True)
        fd = os.open(os.path.join(self.root, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _write(self, rel: str, text: str) -> None:
        """Replaced whole (a reader in another process never sees a file cut short); the
        temporary file is beside the tree, not in a /proc/<tid> that may be removed."""
        path = os.path.join(self.proc, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(self.root, "write.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    def _state(self) -> dict:
        path = os.path.join(self.root, STATE_FILE)
        try:
            with open(path) as f:
                state = json.load(f)
        except (OSError, ValueError):  # not made yet, or cut short: the tree is made again from the host
            return {"threads": {}, "irqs": {}, "guest_cpu": {}}
        try:
            check(_TREE, state, "dom0", Context(state, {"cpus": lambda ctx: self.ncpus}))
        except Damaged as err:
            raise StateError("simulated dom0 {} is damaged: {} (delete {} to make it again)".format(
                path, err, self.root)) from None
        return state

    def _save(self, state: dict) -> None:
        os.makedirs(self.root, exist_ok=True)
        tmp = os.path.join(self.root, STATE_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(state, f, sort_keys=True)
        os.replace(tmp, os.path.join(self.root, STATE_FILE))

    def write_thread(self, tid: int, comm: str, start: int, allowed: FrozenSet[int], ticks: int, cpu: int,
                     kthread: bool = False) -> None:
        """/proc/<tid>/stat and status as Linux writes them (the fields the adapter reads)."""
        fields = ["S"] + ["0"] * 36
        fields[6] = str(PF_KTHREAD if kthread else 0)  # flags (field 9)
        fields[11] = str(ticks)            # utime (field 14)
        fields[19] = str(start)            # starttime (field 22)
        fields[36] = str(cpu)              # processor (field 39)
        self._write("{}/stat".format(tid), "{} ({}) {}\n".format(tid, comm, " ".join(fields)))
        self._write("{}/status".format(tid), "Name:\t{}\nPid:\t{}\nCpus_allowed_list:\t{}\n".format(
            comm, tid, format_ids(allowed)))
        self._write("{}/cmdline".format(tid), "")

    def set_affinity(self, tid: int, cpus: FrozenSet[int]) -> None:
        """What sched_setaffinity does to the tree (the simulated dom0's setter)."""
        with self.locked():
            state = self._state()
            entry = state["threads"].get(str(tid))
            if entry is None:
                raise ProcessLookupError(tid)
            if not cpus or max(cpus) >= self.ncpus:
                raise OSError(22, "Invalid argument")
            entry["allowed"] = format_ids(cpus)
            self._save(state)
            self._render(state)

    # --- the tree from the host ----------------------------------------------------------------
    def sync(self, guests: Mapping[int, Tuple[str, str, float]]) -> None:
        """Make the tree hold the backend work of these guests (domid -> (uuid, type, CPU
        seconds run)), charging each guest's threads their share of its CPU time since;
        what was written to /proc/irq/N/smp_affinity_list is taken in first."""
        with self.locked():
            self._sync(guests)

    def _sync(self, guests: Mapping[int, Tuple[str, str, float]]) -> None:
        state = self._state()
        self._fold_irq_allowed(state)
        everyone = format_ids(range(self.ncpus))
        for tid, comm in DOM0_OWN:
            state["threads"].setdefault(str(tid), {"comm": comm, "start": 1, "allowed": everyone, "ticks": 0,
                                                   "cpu": 0, "domid": 0})
        for irq, name in DOM0_OWN_IRQS:
            state["irqs"].setdefault(str(irq), {"name": name, "allowed": everyone, "counts": [0] * self.ncpus,
                                                "domid": 0})
        self._drop_gone(state, guests)
        for domid, (uuid, dtype, cpu_s) in sorted(guests.items()):
            start = _starttime(uuid)
            for tid, comm in _guest_threads(domid, dtype):
                state["threads"].setdefault(str(tid), {"comm": comm, "start": start, "allowed": everyone,
                                                       "ticks": 0, "cpu": 0, "domid": domid})
            for irq, name in _guest_irqs(domid):
                state["irqs"].setdefault(str(irq), {"name": name, "allowed": everyone,
                                                    "counts": [0] * self.ncpus, "domid": domid})
            before = state["guest_cpu"].get(str(domid), [uuid, cpu_s])
            ran = cpu_s - before[1] if before[0] == uuid else 0.0
            state["guest_cpu"][str(domid)] = [uuid, cpu_s]
            self._charge(state, domid, max(0.0, ran) * BACKEND_SHARE)
        self._save(state)
        self._render(state)

    @staticmethod
    def _drop_gone(state: dict, guests: Mapping[int, Tuple[str, str, float]]) -> None:
        alive = {str(d) for d in guests}
        for table in ("threads", "irqs"):
            for key, entry in list(state[table].items()):
                if entry["domid"] and (str(entry["domid"]) not in alive or
                                       ("start" in entry and entry["start"] != _starttime(guests[entry["domid"]][0]))):
                    del state[table][key]
        for key in list(state["guest_cpu"]):
            if key not in alive:
                del state["guest_cpu"][key]

    def _charge(self, state: dict, domid: int, seconds: float) -> None:
        """Backend CPU time, in 10 ms ticks, on the least loaded allowed dom0 vCPU of each thread."""
        threads = [e for e in state["threads"].values() if e["domid"] == domid]
        if not threads or seconds <= 0:
            return
        load = self._load(state)
        for e in threads:
            allowed = sorted(parse_cpu_list(e["allowed"])) or [0]
            cpu = min(allowed, key=lambda c: (load.get(c, 0), c))
            ticks = int(round(100 * seconds / len(threads)))
            e["ticks"] += ticks
            e["cpu"] = cpu
            e.setdefault("per_cpu", {})
            e["per_cpu"][str(cpu)] = e["per_cpu"].get(str(cpu), 0) + ticks
            load[cpu] = load.get(cpu, 0) + ticks
        for q in (q for q in state["irqs"].values() if q["domid"] == domid):
            allowed = sorted(parse_cpu_list(q["allowed"])) or [0]
            q["counts"][allowed[0]] += int(1000 * seconds)

    @staticmethod
    def _load(state: dict) -> Dict[int, int]:
        out: Dict[int, int] = {}
        for e in state["threads"].values():
            for cpu, ticks in e.get("per_cpu", {}).items():
                out[int(cpu)] = out.get(int(cpu), 0) + ticks
        return out

    def _render(self, state: dict) -> None:
        """Rewrite the procfs files from the state (threads, /proc/interrupts, /proc/irq)."""
        wanted = set(state["threads"])
        if os.path.isdir(self.proc):
            for name in os.listdir(self.proc):
                if name.isdigit() and name not in wanted:
                    for leaf in ("stat", "status", "cmdline"):
                        try:
                            os.unlink(os.path.join(self.proc, name, leaf))
                        except FileNotFoundError:
                            pass
                    os.rmdir(os.path.join(self.proc, name))
        for tid, e in state["threads"].items():
            self.write_thread(int(tid), e["comm"], e["start"], parse_cpu_list(e["allowed"]), e["ticks"], e["cpu"],
                              kthread=e["domid"] != 0 and not e["comm"].startswith("qemu"))
        irq_dir = os.path.join(self.proc, "irq")
        if os.path.isdir(irq_dir):
            for name in os.listdir(irq_dir):
                if name.isdigit() and name not in state["irqs"]:
                    os.unlink(os.path.join(irq_dir, name, "smp_affinity_list"))
                    os.rmdir(os.path.join(irq_dir, name))
        header = "    " + " ".join("{:>10}".format("CPU{}".format(c)) for c in range(self.ncpus))
        lines = [header]
        for irq, q in sorted(state["irqs"].items(), key=lambda kv: int(kv[0])):
            counts = " ".join("{:>10}".format(n) for n in q["counts"])
            lines.append("{:>3}: {}  xen-dyn    -edge      {}".format(irq, counts, q["name"]))
            allowed_path = os.path.join(self.proc, "irq", irq, "smp_affinity_list")
            if not os.path.exists(allowed_path):
                self._write("irq/{}/smp_affinity_list".format(irq), q["allowed"] + "\n")
        self._write("interrupts", "\n".join(lines) + "\n")
        self._write("irq/default_smp_affinity", "{:x}\n".format((1 << self.ncpus) - 1))

    def read_irq_allowed(self) -> None:
        """Fold what was written to /proc/irq/N/smp_affinity_list back into the state (the
        caller holds :meth:`locked`)."""
        state = self._state()
        self._fold_irq_allowed(state)
        self._save(state)

    def _fold_irq_allowed(self, state: dict) -> None:
        for irq, q in state["irqs"].items():
            try:
                with open(os.path.join(self.proc, "irq", irq, "smp_affinity_list")) as f:
                    q["allowed"] = f.read().strip() or q["allowed"]
            except FileNotFoundError:
                pass

    def backend_load_by_node(self, node_of_vcpu: Mapping[int, int]) -> Dict[int, float]:
        """Backend CPU seconds charged on each node's dom0 vCPUs since the tree was made."""
        out: Dict[int, float] = {}
        for cpu, ticks in self._load(self._state()).items():
            node = node_of_vcpu.get(cpu, -1)
            out[node] = out.get(node, 0.0) + ticks / 100.0
        return out


class SimDom0(Dom0Proc):
    """The adapter over the simulated dom0: syncs the tree from the host before each read."""

    def __init__(self, hv, state_path: str) -> None:
        self.hv = hv
        ncpus = len(hv.vcpus(0))
        self.tree = Dom0Tree(tree_root(state_path), ncpus)
        super().__init__(self.tree.root, set_affinity=self.tree.set_affinity,
                         run_dir=os.path.join(self.tree.root, "run"), clock_ticks=100)
        self.sync()  # the tree exists from the start, whatever is read first

    def sync(self) -> None:
        guests = {}
        for d in self.hv.domains():
            if d.domid == 0:
                continue
            try:
                guests[d.domid] = (d.uuid, d.type, sum(v.cpu_time for v in self.hv.vcpus(d.domid)))
            except HypervisorError as err:
                if err.errno != errno.ESRCH:
                    raise  # (destroyed since the list, by another process: gone, as at the next sync)
        self.tree.sync(guests)
        self._load_dom0()

    def _load_dom0(self) -> None:
        """dom0's load profile: the backend work charged in the last sync, over its vCPUs."""
        seconds = sum(self.tree.backend_load_by_node({}).values())
        share = min(1.0, seconds / max(1.0, self.hv.clock()) / self.tree.ncpus)
        self.hv.set_load(0, "steady:{:.3f}".format(share) if share > 0 else "idle")

    def tasks(self, domids=None):
        self.sync()
        return super().tasks(domids)

    def set_irq(self, irq: int, name: str, cpus: FrozenSet[int]) -> bool:
        with self.tree.locked():  # (a sync removing the IRQ meanwhile would find its file written again)
            changed = super().set_irq(irq, name, cpus)
            if changed:
                self.tree.read_irq_allowed()
        return changed


def open_sim_dom0(hv, state_path: str) -> Optional[SimDom0]:
    return SimDom0(hv, state_path)
