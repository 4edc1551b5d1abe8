"""State of the simulated host and the hypervisor operations on it.

A :class:`Host` holds the topology, free pages per node, the domains with
their vCPUs and memory, the scheduler, and simulated time (ticks of 10 ms).
Every tick it also counts, per :mod:`.perf`, each vCPU's CPU time, each
domain's work done and remote share, and each node's run and wait time.
Its methods are the hypervisor's operations with Xen's semantics (creating
a domain allocates its memory through :mod:`.heap`; pausing puts vCPUs
to sleep in the scheduler; changing affinity re-picks a pCPU, like
``vcpu_set_affinity``).  It is deterministic for a given seed.
"""

import errno
import random
import uuid as uuidlib
from typing import Dict, Iterator, List, Optional

from xapi_numa.core.host import DOMAIN_TYPES, find_domain
from xapi_numa.errors import HypervisorError, InvalidArgument
from xapi_numa.core.topology import Topology
from xapi_numa.backends.sim.loads import TICK_MS, LoadProfile
from xapi_numa.backends.sim.masks import cycle, has, iter_bits, soft_effective
from xapi_numa.backends.sim.domain import Domain, Vcpu
from xapi_numa.backends.sim.heap import Heap

STATE_VERSION = 1


def scheduler_class(name: str):
    from xapi_numa.backends.sim.credit1 import Credit1
    from xapi_numa.backends.sim.credit2 import Credit2

    table = {"credit": Credit1, "credit2": Credit2}
    if name not in table:
        raise InvalidArgument("scheduler", f"unknown scheduler {name!r}", "credit, credit2")
    return table[name]


class Host(Heap):
    """The simulated hypervisor: state plus Xen's operations on it (its memory: :class:`Heap`)."""

    def __init__(self, topology: Topology, scheduler: str = "credit2", seed: int = 0,
                 commandline: str = "") -> None:
        self.topology = topology
        self.seed = seed
        self.tick = 0
        self.free = [n.memory_size >> 12 for n in topology.nodes]
        self.size = list(self.free)
        self.domains: Dict[int, Domain] = {}
        self.next_domid = 0
        self.rng = random.Random(seed)
        self.online = (1 << len(topology.cpus)) - 1
        self.node_mask = [sum(1 << c for c in n.cpus) for n in topology.nodes]
        self.cpu_node = [c.node for c in topology.cpus]
        self.node_run_ticks = [0] * len(topology.nodes)   # vCPU-ticks run on each node's pCPUs
        self.node_wait_ticks = [0] * len(topology.nodes)  # vCPU-ticks runnable but waiting there
        self.sched = scheduler_class(scheduler)(self)
        self.set_dma_zone(commandline)  # Xen's own command line: as a boot without dma_bits= by default

    # --- time ------------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        return self.tick * TICK_MS

    def runnable(self, v: Vcpu) -> bool:
        d = v.dom
        if d.pause_count:
            return False
        load = d.load
        if not load.varies:
            return load.kind == "busy"
        t = self.tick
        return (t + v.phase) % load.window < d.level_at(t)

    def step(self) -> None:
        """Advance simulated time by one tick (10 ms)."""
        self.tick += 1
        t = self.tick
        for d in self.domains.values():
            load = d.load
            if not load.varies or d.pause_count:
                continue
            window, now, before = load.window, d.level_at(t), load.level(t - 1)
            for v in d.vcpus:
                active = (t + v.phase) % window < now
                if active != ((t - 1 + v.phase) % window < before):
                    if active:
                        self.sched.wake(v)
                    else:
                        self.sched.sleep(v)
        self.sched.tick()
        self._account_tick()

    def run(self, seconds: float, observer=None) -> None:
        ticks = int(round(seconds * 1000 / TICK_MS))
        for _ in range(ticks):
            self.step()
            if observer is not None:
                observer(self)

    def _account_tick(self) -> None:
        """After a tick: CPU time, work and remote share (see perf), node run and
        wait time, and since when each vCPU has run outside its soft affinity."""
        online = self.online
        cpu_node = self.cpu_node
        run, wait = self.node_run_ticks, self.node_wait_ticks
        distances = self.topology.distances
        for d in self.domains.values():
            costs = None
            for v in d.vcpus:
                if v.running:
                    node = cpu_node[v.processor]
                    run[node] += 1
                    v.cpu_ticks += 1
                    if costs is None:
                        costs = d.costs.get(distances, d.node_pages, d.load.mem)
                    cost, remote = costs[node]
                    d.work_ticks += 1.0 / cost
                    d.remote_ticks += remote
                    if soft_effective(v.hard, v.soft, online) and not has(v.soft, v.processor):
                        if v.outside_since < 0:
                            v.outside_since = self.tick
                        continue
                elif v.queued:
                    wait[cpu_node[v.processor]] += 1
                    d.wait_ticks += 1
                v.outside_since = -1

    def set_load(self, domid: int, load: str) -> None:
        """Change a domain's load profile now (a new phase of its workload)."""
        d = self.domain(domid)
        profile = LoadProfile.parse(load)
        d.load = profile
        d._level_tick = -1
        for v in d.vcpus:
            v.phase = profile.vcpu_phase(v.phase)
            if d.pause_count:
                continue
            if self.runnable(v):
                self.sched.wake(v)
            else:
                self.sched.sleep(v)

    # --- lookups ---------------------------------------------------------------
    def domain(self, domid: int) -> Domain:
        d = self.domains.get(domid)
        if d is None:
            raise HypervisorError(errno.ESRCH, f"domain {domid}")
        return d

    def vcpu(self, domid: int, vid: int) -> Vcpu:
        d = self.domain(domid)
        if not 0 <= vid < len(d.vcpus):
            raise HypervisorError(errno.EINVAL, f"domain {domid} has no vCPU {vid}")
        return d.vcpus[vid]

    def find(self, ref: str) -> Domain:
        """By domid, UUID or name, read as users' tools read them (core.host.find_domain)."""
        return find_domain(list(self.domains.values()), ref)  # type: ignore[arg-type]

    def all_vcpus(self) -> Iterator[Vcpu]:
        for d in self.domains.values():
            yield from d.vcpus

    def vcpu_state(self, v: Vcpu) -> str:
        if v.dom.pause_count:
            return "paused"
        if v.running:
            return "running"
        if v.queued:
            return "runnable"
        return "blocked"

    # --- affinity ----------------------------------------------------------------
    def effective_node_affinity(self, d: Domain) -> int:
        """Xen's domain_update_node_affinity for an automatic node affinity."""
        if d.node_affinity is not None:
            return d.node_affinity
        hard = 0
        soft = 0
        for v in d.vcpus:  # domain_update_node_aff: the unions first, then their intersection
            hard |= v.hard
            soft |= v.soft
        cpus = (soft & hard & self.online) or (hard & self.online)
        nodes = 0
        for cpu in iter_bits(cpus):
            nodes |= 1 << self.cpu_node[cpu]
        return nodes

    def set_vcpu_affinity(self, domid: int, vid: int, hard: Optional[int], soft: Optional[int]) -> None:
        v = self.vcpu(domid, vid)
        new_hard = v.hard if hard is None else hard
        new_soft = v.soft if soft is None else soft
        if new_hard & self.online == 0:
            raise HypervisorError(errno.EINVAL, "hard affinity has no online CPU")
        if (new_hard | new_soft) & ~self.online:
            raise HypervisorError(errno.EINVAL, "affinity names CPUs that do not exist")
        v.hard, v.soft = new_hard, new_soft
        # vcpu_set_affinity always goes through vcpu_migrate: re-pick a pCPU.
        self.sched.affinity_changed(v)

    def set_node_affinity(self, domid: int, nodes: Optional[int]) -> None:
        d = self.domain(domid)
        full = (1 << len(self.topology.nodes)) - 1
        if nodes is not None and nodes & full == 0:
            raise HypervisorError(errno.EINVAL, "empty node affinity")
        if nodes is not None and nodes & ~full:
            raise HypervisorError(errno.EINVAL, "node affinity names nodes that do not exist")
        # Xen (domain_set_node_affinity): only a mask with all MAX_NUMNODES (64) bits set means
        # "automatic" again, and a caller's mask has only the host's nodes set (libxl's candidate,
        # ours): a mask naming every node of the host stays explicit.  None is automatic (the
        # Xen adapter sends all 64 bits for it).
        d.node_affinity = nodes

    # --- domain lifecycle --------------------------------------------------------
    def create_domain(self, name: str, vcpus: int, memory_pages: int, hard: Optional[int] = None,
                      soft: Optional[int] = None, load: str = "busy", dtype: str = "pv",
                      paused: bool = False, uuid: Optional[str] = None,
                      node_affinity: Optional[int] = None, populate: bool = True, overhead: int = 0,
                      video: int = 0) -> Domain:
        """Build a domain as Xen does for a toolstack: memory, vCPUs, then unpause.

        ``node_affinity`` is a node mask the toolstack sets before the memory is
        populated (libxl does after its automatic placement); None leaves it automatic.
        ``overhead``: pages of the build's overhead (:func:`.heap.build_overhead`), taken round the
        node affinity as it is then (:meth:`Heap.take_overhead`) before any of the memory.
        ``video``: of ``memory_pages``, an HVM guest's video RAM, which its toolstack leaves out of the
        build and QEMU populates after it, page by page round the node affinity (Domain.video).
        """
        if dtype not in DOMAIN_TYPES:
            raise InvalidArgument("type", f"unknown domain type {dtype!r}", ", ".join(DOMAIN_TYPES))
        if vcpus < 1 or vcpus > 512:
            raise InvalidArgument("vcpus", f"{vcpus} vCPUs", "1..512")
        if memory_pages < 1:
            raise InvalidArgument("memory", "a domain needs some memory")
        if not 0 <= video <= memory_pages or (video and dtype != "hvm"):
            raise InvalidArgument("video", f"{video} pages for a {dtype} guest of {memory_pages}",
                                  "0, or for an HVM guest up to its memory")
        if not name.strip() or name.isdigit():
            raise InvalidArgument("name", f"{name!r}", "a non-empty name that is not all digits (those are domids)")
        if any(d.name == name for d in self.domains.values()):
            raise InvalidArgument("name", f"a domain called {name!r} already exists", "a name no other domain has")
        try:  # Xen keeps a handle's 16 bytes: its UUID reads back in lower case, and nothing else is one
            uuid = None if uuid is None else str(uuidlib.UUID(uuid))
        except ValueError:
            raise InvalidArgument("uuid", repr(uuid), "a UUID (32 hex digits, 8-4-4-4-12)") from None
        self._check_unambiguous(name, uuid)
        hard = self.online if hard is None else hard
        soft = self.online if soft is None else soft
        if hard & self.online == 0:
            raise InvalidArgument("hard", "hard affinity has no CPU of this host")
        profile = LoadProfile.parse(load)
        domid = self.next_domid
        d = Domain(domid, name, uuid or str(uuidlib.UUID(int=self.rng.getrandbits(128), version=4)),
                   dtype, memory_pages, len(self.free), profile)
        d.pause_count = 1  # domains are created paused
        d.video = video
        lo, hi = profile.phase_range()
        # Xen spreads new vCPUs: vCPU 0 anywhere, then cpumask_cycle from the previous.
        processor = self.rng.randrange(len(self.cpu_node))
        for i in range(vcpus):
            v = Vcpu(d, i, hard, soft, profile.vcpu_phase(self.rng.randrange(lo, hi)))
            v.processor = processor if has(hard, processor) else cycle(processor, hard)
            processor = cycle(v.processor, self.online)
            d.vcpus.append(v)
        self.domains[domid] = d
        self.next_domid += 1
        if node_affinity is not None:
            self.set_node_affinity(domid, node_affinity)
        if overhead:
            self.take_overhead(d, overhead)
        if populate:  # else no memory yet (xenopsd's domain_create; xenguest populates it later)
            self.allocate(d, memory_pages)
        for v in d.vcpus:
            self.sched.insert(v)
        if not paused:
            self.unpause(domid)
        return d

    def _check_unambiguous(self, name: str, uuid: Optional[str]) -> None:
        """Domains are found by domid, UUID (in any case) or name (:meth:`find`): a name that
        is another domain's UUID, or a UUID that is another's name, would make that lookup
        reach the wrong domain.  (Two domains may share a UUID, as on Xen while a VM
        migrates to its own host.)"""
        for d in self.domains.values():
            if d.uuid.lower() == name.lower():
                raise InvalidArgument("name", f"{name!r} is the UUID of domain {d.domid} ({d.name})",
                                      "a name that is not another domain's UUID")
            if uuid is not None and uuid.lower() == d.name.lower():
                raise InvalidArgument("uuid", f"{uuid!r} is the name of domain {d.domid}",
                                      "a UUID that is not another domain's name")

    def destroy(self, domid: int) -> None:
        d = self.domain(domid)
        if domid == 0:
            raise HypervisorError(errno.EPERM, "domain 0 cannot be destroyed")
        self.pause(domid)  # domain_kill pauses the domain before tearing it down
        for v in d.vcpus:
            self.sched.remove(v)
        for n, p in enumerate(list(d.node_pages)):
            self.release(d, n, p)
        self.release_overhead(d)
        del self.domains[domid]

    def pause(self, domid: int) -> None:
        d = self.domain(domid)
        d.pause_count += 1
        if d.pause_count == 1:
            for v in d.vcpus:
                self.sched.sleep(v)

    def unpause(self, domid: int) -> None:
        d = self.domain(domid)
        if d.pause_count == 0:
            raise HypervisorError(errno.EINVAL, f"domain {domid} is not paused")
        d.pause_count -= 1
        if d.pause_count == 0:
            for v in d.vcpus:
                if self.runnable(v):
                    self.sched.wake(v)

    # --- invariants (used by property tests and --check) -------------------------
    def check_invariants(self) -> None:
        """Raise AssertionError if the state is impossible for Xen."""
        for n, size in enumerate(self.size):
            used = sum(d.held_on(n) for d in self.domains.values())
            assert self.free[n] >= 0, f"node {n} free < 0"
            assert used + self.free[n] == size, f"node {n}: pages not conserved"
            zone_used = sum(d.held_below(n) for d in self.domains.values())
            assert zone_used + self.zone_free[n] == self.zone_size[n], f"node {n}: DMA zone pages not conserved"
            assert all(d.dma_pages[n] <= d.node_pages[n] and d.overhead_dma[n] <= d.overhead_pages[n]
                       for d in self.domains.values()), f"node {n}: zone pages"
        seen = {}
        for cpu in range(len(self.cpu_node)):
            v = self.sched.current(cpu)
            if v is not None:
                assert v.key not in seen, f"vCPU {v.key} runs on pCPUs {seen[v.key]} and {cpu}"
                seen[v.key] = cpu
                assert v.running and v.processor == cpu, f"vCPU {v.key} bookkeeping"
                assert has(v.hard, cpu), f"vCPU {v.key} runs on pCPU {cpu} outside its hard affinity"
                assert self.runnable(v), f"vCPU {v.key} runs while not runnable"
        for v in self.all_vcpus():
            assert not v.running or v.key in seen, f"vCPU {v.key} marked running but on no pCPU"
            assert has(v.hard, v.processor), f"vCPU {v.key} assigned to pCPU {v.processor} outside hard"

    # --- persistence ---------------------------------------------------------------
