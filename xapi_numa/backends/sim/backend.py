"""The Hypervisor port over a simulated host stored in a file (``sim:PATH``).

Every call is one locked transaction on the state file (see :mod:`.store`),
so separate processes see one consistent host.  Besides the port it offers
the simulator's own controls: ``init``, ``create``, ``destroy`` and ``run``.
"""

import contextlib
import errno
import os
from typing import Dict, FrozenSet, List, Optional, Sequence

from xapi_numa.core import dma_zone
from xapi_numa.core.cpuset import format_ids, ids_of, mask_of
from xapi_numa.errors import HypervisorError, InvalidArgument
from xapi_numa.ports.hypervisor import DEVICE_MODEL_BLOCKER, Capabilities, Hypervisor
from xapi_numa.core.host import BatchResult, DomainInfo, MemoryMap, NodeMemory, VcpuInfo
from xapi_numa.core.live_domains import LiveDomains
from xapi_numa.core.topology import Topology
from xapi_numa.core.vnuma import MemRange, VnumaLayout, VnumaPlan, layout_from_dict, layout_of
from xapi_numa.core.vnuma_guest import MAX_VNODES
from xapi_numa.core.units import PAGE_SHIFT, SizeRange, bytes_to_pages, exact_size, format_size
from xapi_numa.backends.sim import guestmem
from xapi_numa.backends.sim.dom0_tree import forget_dom0_tree
from xapi_numa.backends.sim.heap import build_overhead
from xapi_numa.backends.sim.model import Host
from xapi_numa.backends.sim.store import SimStore
from xapi_numa.backends.sim.perf import TICK_SECONDS
from xapi_numa.backends.sim.toolstack import largest_guest, video_pages, xl_create
from xapi_numa.backends.xen_vnuma import check_plan_shape

# xl create reads a guest's memory= as a whole number of MiB, so 1 MiB is the least it can
# ask for; below that a size would round to a page or two, a domain no toolstack builds
MIN_GUEST_MEMORY = 1 << 20
# dma_bits= a simulated host boots with: from a zone of one page to none (x86's zones end at 52 bits)
DMA_BITS = (PAGE_SHIFT, dma_zone.NO_ZONE_ABOVE)


class SimHypervisor(Hypervisor):
    """Hypervisor port implementation backed by :class:`SimStore`."""

    def __init__(self, path: str) -> None:
        self.store = SimStore(path)
        self.path = self.store.path

    # --- the simulator's own controls ---------------------------------------------
    @classmethod
    def init(cls, path: str, topology: Topology, scheduler: str = "credit2", seed: int = 0,
             dom0_vcpus: int = 4, dom0_memory: Optional[int] = None, force: bool = False,
             dma_bits: Optional[int] = None) -> "SimHypervisor":
        """A new host, booted as Xen with dom0's size and (where given) ``dma_bits=`` on its
        command line: without it, Xen's default DMA width (see :mod:`.heap`)."""
        if dma_bits is not None and not DMA_BITS[0] <= dma_bits <= DMA_BITS[1]:
            raise InvalidArgument("dma_bits", str(dma_bits), "{}..{} (Xen's DMA width in bits; {}: no DMA zone)".format(
                DMA_BITS[0], DMA_BITS[1], DMA_BITS[1]))
        offline = frozenset(range(len(topology.cpu_node))) - topology.all_cpus
        if offline:  # (the model's CPUs are 0..N-1, every one online: the state file says so)
            raise InvalidArgument("topology", "CPUs {} are not online".format(format_ids(offline)),
                                  "a simulated host with every CPU online")
        total = topology.memory_total()
        if dom0_memory is None:
            dom0_memory = min(1 << 30, total // 10)
        dom0_vcpus = max(1, min(dom0_vcpus, len(topology.cpus)))
        host = Host(topology, scheduler, seed, _xen_commandline(dom0_memory, dom0_vcpus, dma_bits))
        host.create_domain("Domain-0", dom0_vcpus, max(1, bytes_to_pages(dom0_memory)), load="idle",
                           dtype="pv", uuid="00000000-0000-0000-0000-000000000000")
        store = SimStore(path)
        store.create(host, overwrite=force)
        # a new host starts with no state: a database left beside the path by the host
        # it replaces would hold that host's reservations, moves and pins
        for beside in store.ledger_files():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(beside)
        for reached_as in sorted({path, store.path}):  # (the tree is beside the path as given)
            forget_dom0_tree(reached_as)  # nor the old dom0's backend threads and IRQs, for its vCPUs
        return cls(path)

    def create(self, name: str, vcpus: int, memory: int, hard: Optional[FrozenSet[int]] = None,
               soft: Optional[FrozenSet[int]] = None, load: str = "busy", dtype: str = "pv",
               paused: bool = False, uuid: Optional[str] = None, auto_numa: bool = True,
               passthrough: bool = False, video: Optional[int] = None) -> int:
        """Create a guest as ``xl create`` would (libxl placement when no affinity).  ``video``: bytes
        of ``memory`` that are an HVM guest's video RAM, which QEMU populates after the build, page
        by page; None, libxl's default (:func:`.toolstack.video_pages`)."""
        sizes = self.guest_memory(vcpus, dtype, video)
        if memory < sizes.low:  # (more than the host can give: NoCapacity, from the build)
            raise InvalidArgument("memory", f"{format_size(memory)} is less than {exact_size(sizes.low)}",
                                  sizes.allowed)
        with self.store.transaction() as host:
            pages = bytes_to_pages(memory)
            hard_mask = mask_of(hard) if hard is not None else None
            soft_mask = mask_of(soft) if soft is not None else None
            # libxl's placement (toolstack.py) runs unless a soft affinity is given.
            d = xl_create(host, name, vcpus, pages, hard_mask, soft_mask, load, dtype, paused, uuid, auto_numa,
                          None if video is None else bytes_to_pages(video))
            d.passthrough = passthrough
            return d.domid

    def guest_memory(self, vcpus: int = 1, dtype: str = "pv", video: Optional[int] = None) -> SizeRange:
        """The memory :meth:`create` can give a guest of ``vcpus`` and ``dtype`` now: from the least xl's
        memory= can say, beyond an HVM guest's video RAM (``video``, as :meth:`create` takes it), to what
        the host's free memory after other domains' claims holds with the build's overhead."""
        video = video_pages(dtype) << PAGE_SHIFT if video is None else video
        with self.store.snapshot() as host:
            free = host.room_for(None)[1]  # (a host-wide claim too, which no node's claimable counts)
        return SizeRange(MIN_GUEST_MEMORY + video, largest_guest(free, vcpus, dtype) << PAGE_SHIFT,
                         "the host's free memory after other domains' claims, less the build's overhead")

    def create_shell(self, name: str, vcpus: int, memory: int, uuid: Optional[str] = None,
                     load: str = "idle", dtype: str = "pv", video: int = 0, overhead: Optional[int] = None) -> int:
        """A paused domain with its maximum set and no memory yet, as xenopsd's domain_create and
        build_pre leave it: its build's overhead (a shadow/HAP pool for every type, PV's too, and
        Xen's per-vCPU memory: :func:`.heap.build_overhead`) taken round every node with CPUs, as
        build_pre sets the pool before any affinity; claims (the port's :meth:`claim`) can be made
        on it before :meth:`build`.  ``video``: bytes of ``memory`` that are an HVM guest's video RAM,
        which xenopsd's build leaves out of the RAM and QEMU populates after it, page by page.  ``overhead``:
        bytes of the overhead as xenopsd sizes it for the VM (``core.overhead.xapi_model``); None, the planner's."""
        if overhead is not None and overhead < 0:
            raise InvalidArgument("overhead", f"{overhead} bytes", "0 or more bytes")
        with self.store.transaction() as host:
            pages = bytes_to_pages(memory)
            extra = build_overhead(dtype, vcpus, pages) if overhead is None else bytes_to_pages(overhead)
            d = host.create_domain(name, vcpus, pages, load=load, dtype=dtype, paused=True, uuid=uuid, populate=False,
                                   overhead=extra, video=bytes_to_pages(video))
            return d.domid

    def build(self, domid: int, node: Optional[int] = None, paused: bool = False) -> Dict[int, int]:
        """Populate the rest of a shell's memory as xenguest does (from ``node`` first, as its
        ``-mem_pnode``; the domain's own claims are used up) and unpause it unless ``paused`` (a start
        paused); pages per node.
        A shell given a vNUMA layout (:meth:`set_vnuma`) is built vnode by vnode, as libxc builds
        one (:func:`.guestmem.build_vnuma`): a pnode short of pages fails the build, changing nothing."""
        with self.store.transaction() as host:
            d = host.domain(domid)
            if d.vnuma is None or d.tot_pages:
                got = host.allocate(d, d.max_pages - d.tot_pages, node)
            elif node is not None:
                raise InvalidArgument("node", f"{node}, but domain {domid} has a vNUMA layout: each vnode is "
                                              "built from its pnode", "none (the layout says where)")
            else:
                got = guestmem.build_vnuma(host, d)
            if not paused:
                host.unpause(domid)
            return got

    def set_max_memory(self, domid: int, memory: int) -> None:
        """The toolstack sets the domain's maximum, as xc_domain_setmaxmem (squeezed caps a guest
        whose balloon driver is to give memory back): below the pages it has too, as Xen allows;
        no new frame is then given to it beyond the maximum."""
        if memory < 0:
            raise InvalidArgument("memory", f"{memory} bytes", "0 or more bytes")
        with self.store.transaction() as host:
            host.domain(domid).max_pages = memory >> PAGE_SHIFT

    def hold(self, domid: int, gfn: int) -> None:
        """A backend maps this guest frame (it cannot be freed while held)."""
        with self.store.transaction() as host:
            host.domain(domid).held.append(gfn)

    def grant(self, domid: int, gfn: int) -> None:
        """The guest grants this frame to a backend (as a frontend does for each new I/O
        buffer): scans from now on see it granted, and a move leaves it where it is."""
        with self.store.transaction() as host:
            host.domain(domid).granted.append(gfn)

    def give_back(self, domid: int, gfn: int) -> None:
        """The guest's balloon driver gives this gfn back to Xen (its frame is freed, the gfn
        no longer populated): a move planned before leaves it out."""
        with self.store.transaction() as host:
            guestmem.give_back(host, host.domain(domid), gfn)

    def release_hold(self, domid: int, gfn: int) -> None:
        with self.store.transaction() as host:
            guestmem.release_hold(host, host.domain(domid), gfn)

    def destroy(self, domid: int) -> None:
        with self.store.transaction() as host:
            host.destroy(domid)

    def run(self, seconds: float) -> None:
        if not 0 <= seconds <= 24 * 3600:
            raise InvalidArgument("seconds", f"{seconds}", "0..86400")
        with self.store.transaction() as host:
            host.run(seconds)

    def find(self, ref: str) -> int:
        with self.store.snapshot() as host:
            return host.find(ref).domid

    def now_ms(self) -> int:
        with self.store.snapshot() as host:
            return host.now_ms

    def scheduler(self) -> str:
        with self.store.snapshot() as host:
            return host.sched.name

    # --- the performance model's controls and counters (see perf.py) ---------------------
    def set_load(self, domid: int, load: str) -> None:
        """Give a domain a new load profile from now on (syntax: loads.LOAD_SYNTAX)."""
        with self.store.transaction() as host:
            host.set_load(domid, load)

    def work_done(self, domid: int) -> float:
        """Seconds of all-local CPU work the domain has done since it was created."""
        with self.store.snapshot() as host:
            return host.domain(domid).work_ticks * TICK_SECONDS

    def locality_stats(self, domid: int) -> dict:
        """CPU time, work done and the run-time-weighted share of remote memory accesses."""
        with self.store.snapshot() as host:
            return _perf_of(host.domain(domid))

    def perf_counters(self) -> dict:
        """Every domain's :meth:`locality_stats` and each node's run and wait
        seconds (vCPU-seconds running on, or runnable and queued on, its pCPUs)."""
        with self.store.snapshot() as host:
            return {"domains": {d.domid: _perf_of(d) for d in host.domains.values()},
                    "node_run": [t * TICK_SECONDS for t in host.node_run_ticks],
                    "node_wait": [t * TICK_SECONDS for t in host.node_wait_ticks]}

    def placement_view(self) -> Dict[int, tuple]:
        """Every domain's vCPUs and pages per node, read in one go (what
        :meth:`vcpus` and :meth:`node_pages` give, without a file read per call)."""
        with self.store.snapshot() as host:
            return {d.domid: ([VcpuInfo(d.domid, v.id, v.processor, host.vcpu_state(v), ids_of(v.hard),
                                        ids_of(v.soft), v.cpu_ticks * TICK_SECONDS) for v in d.vcpus],
                              dict(enumerate(d.node_pages)))
                    for d in host.domains.values()}

    # --- the Hypervisor port ----------------------------------------------------------
    def topology(self) -> Topology:
        with self.store.snapshot() as host:
            return host.topology.with_free({n: f << PAGE_SHIFT for n, f in enumerate(host.free)})

    def node_memory(self) -> List[NodeMemory]:
        with self.store.snapshot() as host:
            claimed = host.outstanding()
            # as the Xen adapter reports it: each node's free memory below Xen's DMA width
            return [NodeMemory(n, size << PAGE_SHIFT, free << PAGE_SHIFT, claimed[n] << PAGE_SHIFT,
                               min(low, free) << PAGE_SHIFT)
                    for n, (size, free, low) in enumerate(zip(host.size, host.free, host.zone_free))]

    def domains(self) -> List[DomainInfo]:
        with self.store.snapshot() as host:
            return [_info(d) for d in host.domains.values()]

    def domain_uuids(self) -> LiveDomains:
        with self.store.snapshot() as host:
            return LiveDomains.of({d.domid: d.uuid for d in host.domains.values()})

    def domain(self, domid: int, named: bool = True) -> Optional[DomainInfo]:
        with self.store.snapshot() as host:
            d = host.domains.get(domid)
            return None if d is None else _info(d)

    def vcpus(self, domid: int) -> List[VcpuInfo]:
        with self.store.snapshot() as host:
            d = host.domain(domid)
            return [VcpuInfo(domid, v.id, v.processor, host.vcpu_state(v), ids_of(v.hard), ids_of(v.soft),
                             v.cpu_ticks * TICK_SECONDS)
                    for v in d.vcpus]

    def set_vcpu_affinity(self, domid: int, vcpu: int, hard: Optional[FrozenSet[int]] = None,
                          soft: Optional[FrozenSet[int]] = None) -> None:
        with self.store.transaction() as host:
            host.set_vcpu_affinity(domid, vcpu, None if hard is None else mask_of(hard),
                                   None if soft is None else mask_of(soft))

    def node_affinity(self, domid: int) -> FrozenSet[int]:
        with self.store.snapshot() as host:
            return ids_of(host.effective_node_affinity(host.domain(domid)))

    def set_node_affinity(self, domid: int, nodes: Optional[FrozenSet[int]]) -> None:
        with self.store.transaction() as host:
            host.set_node_affinity(domid, None if nodes is None else mask_of(nodes))

    def node_pages(self, domid: int) -> Dict[int, int]:
        with self.store.snapshot() as host:
            return dict(enumerate(host.domain(domid).node_pages))

    def claim(self, domid: int, pages: int, node: Optional[int] = None) -> None:
        with self.store.transaction() as host:
            host.claim(domid, pages, node)

    def pause(self, domid: int) -> None:
        _not_self(domid)
        with self.store.transaction() as host:
            host.pause(domid)

    def unpause(self, domid: int) -> None:
        _not_self(domid)
        with self.store.transaction() as host:
            host.unpause(domid)

    def capabilities(self) -> Capabilities:
        # The simulated hypervisor offers every primitive natively, per-node
        # claims included (stock Xen 4.17 has host-wide claims only).
        features = {"topology": "native", "vcpu_affinity": "native", "node_affinity": "native",
                    "node_pages": "native", "claims": "native", "node_claims": "native"}
        return Capabilities(self.scheduler(), True, features, modelled_time=True, node_claims_read=True)

    def cpupools(self) -> Dict[int, FrozenSet[int]]:
        """The simulated host has one pool, Pool-0, with every pCPU."""
        return {0: self.topology().all_cpus}

    def clock(self) -> float:
        """Simulated time: thresholds and timeouts count in simulated seconds."""
        return self.now_ms() / 1000.0

    def sleep(self, seconds: float) -> None:
        """Pacing between page-move batches: simulated pauses are modelled, not
        waited for, so neither is the pacing."""

    def memory_map(self, domid: int, probe_ms: int = 0) -> MemoryMap:
        with self.store.snapshot() as host:
            return guestmem.memory_map(host, host.domain(domid), probe_ms)

    def move_pages(self, domid: int, gfns: Sequence[int], node: int, verify_chunk: int = 16,
                   allow_fallback: bool = False, fault: Optional[str] = None,
                   uuid: Optional[str] = None) -> BatchResult:
        """A batch is one transaction: the domain checked in it is the one whose pages move."""
        with self.store.transaction() as host:
            d = host.domain(domid)
            if uuid is not None and d.uuid != uuid:
                raise HypervisorError(errno.ESTALE, f"moving memory of domain {domid}: it is no longer VM {uuid}'s "
                                                    f"(VM {d.uuid}'s now): nothing moved")
            return guestmem.move(host, d, list(gfns), node, verify_chunk, allow_fallback, fault)

    def batch_records(self) -> List[int]:
        """A simulated batch record is in its domain's state: a mover there is never mid-batch
        (a batch is one transaction), so every record found is a dead or failed mover's."""
        with self.store.snapshot() as host:
            return sorted(domid for domid, d in host.domains.items() if d.record is not None)

    def recover_move(self, domid: int) -> Optional[str]:
        with self.store.transaction() as host:
            if domid not in host.domains:
                return None  # a simulated batch record goes with its domain
            return guestmem.recover(host, host.domain(domid))

    def move_blockers(self, domid: int) -> List[str]:
        with self.store.snapshot() as host:
            d = host.domain(domid)
            found = ["PCI passthrough"] if d.passthrough else []
            # a simulated HVM guest stands for one with QEMU in dom0 (PVH has none)
            return found + ([DEVICE_MODEL_BLOCKER] if d.type == "hvm" else [])

    def set_vnuma(self, domid: int, plan: VnumaPlan, ranges: Sequence[MemRange]) -> None:
        """Checked as Xen's XEN_DOMCTL_setvnumainfo checks it (EINVAL otherwise), and kept
        for :meth:`vnuma`; as on Xen, a later call replaces the layout.  A plan the Xen adapter
        refuses before the hypercall (arrays libxenuma would misread) is refused alike."""
        check_plan_shape(plan)
        with self.store.transaction() as host:
            d = host.domain(domid)
            vcpus = sorted(c for v in plan.vnodes for c in v.vcpus)
            pnodes_known = all(0 <= p < len(host.free) for p in plan.pnodes)
            covered = {r.vnode for r in ranges} == {v.index for v in plan.vnodes}
            if vcpus != list(range(len(d.vcpus))) or not pnodes_known or not covered or not plan.vnodes \
                    or len(plan.vnodes) > MAX_VNODES:
                raise HypervisorError(errno.EINVAL, f"setting the vNUMA layout of domain {domid}")
            d.vnuma = layout_of(plan, ranges).to_dict()

    def static_max(self, domid: int) -> Optional[int]:
        """The simulator builds with no slack: a domain's maximum (the toolstack's, under a page
        mover's raise) is its static max."""
        with self.store.snapshot() as host:
            d = host.domain(domid)
            return (d.max_raise[0] if d.max_raise else d.max_pages) << PAGE_SHIFT

    def vnuma(self, domid: int) -> Optional[VnumaLayout]:
        with self.store.snapshot() as host:
            d = host.domain(domid)
            return None if d.vnuma is None else layout_from_dict(d.vnuma)

def _xen_commandline(dom0_memory: int, dom0_vcpus: int, dma_bits: Optional[int]) -> str:
    """Xen's own command line for a host booted so (dom0's options as a XenServer host has them)."""
    kib = bytes_to_pages(dom0_memory) << (PAGE_SHIFT - 10)
    words = ["dom0_mem={0}K,max:{0}K".format(kib), "dom0_max_vcpus={}".format(dom0_vcpus)]
    return " ".join(words + ([] if dma_bits is None else ["dma_bits={}".format(dma_bits)]))


def _perf_of(d) -> dict:
    cpu_ticks = d.cpu_ticks
    return {"name": d.name, "cpu_time": cpu_ticks * TICK_SECONDS, "work": d.work_ticks * TICK_SECONDS,
            "remote_share": d.remote_ticks / cpu_ticks if cpu_ticks else 0.0,
            "remote_cpu_time": d.remote_ticks * TICK_SECONDS, "wait_time": d.wait_ticks * TICK_SECONDS,
            "mem_bound": d.load.mem_bound, "load": str(d.load)}


def _not_self(domid: int) -> None:
    """Xen refuses XEN_DOMCTL_(un)pausedomain on the caller's own domain: dom0 here."""
    if domid == 0:
        raise HypervisorError(errno.EINVAL, "domain 0 cannot pause or unpause itself")


def _info(d) -> DomainInfo:
    return DomainInfo(d.domid, d.name, d.uuid, len(d.vcpus), d.tot_pages << PAGE_SHIFT, d.max_pages << PAGE_SHIFT,
                      d.pause_count > 0, d.type, (d.claim + sum(d.node_claims.values())) << PAGE_SHIFT,
                      claim_node=next(iter(d.node_claims), None))  # (one claim per domain: on one node at most)
