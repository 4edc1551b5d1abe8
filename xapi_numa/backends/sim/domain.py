"""A simulated domain and its vCPUs: their state (affinities, load, memory per node,
pause count, the performance counters) and how it is saved in the state file.
What happens to them over time is the :class:`~xapi_numa.backends.sim.model.Host`'s."""

from typing import Dict, List, Optional

from xapi_numa.backends.sim.loads import LoadProfile
from xapi_numa.backends.sim.perf import CostCache
from xapi_numa.core.xenalloc import NEW_DOMAIN_LAST_NODE


class Vcpu:
    """One simulated vCPU; scheduler fields are owned by the scheduler."""

    __slots__ = ("dom", "id", "hard", "soft", "processor", "running", "queued", "credit", "pri",
                 "migrating", "avgload", "rqd", "migrate_rqd", "tickled_cpu", "phase", "outside_since",
                 "cpu_ticks", "load_last", "picked")

    def __init__(self, dom: "Domain", vid: int, hard: int, soft: int, phase: int = 0) -> None:
        self.dom = dom
        self.id = vid
        self.hard = hard
        self.soft = soft
        self.processor = 0
        self.running = False
        self.queued = False
        self.credit = 0
        self.pri = -1
        self.migrating = False
        self.avgload = 0
        self.rqd = -1
        self.migrate_rqd = -1
        self.tickled_cpu = -1
        self.phase = phase
        self.outside_since = -1
        self.cpu_ticks = 0  # ticks this vCPU has run (its CPU time)
        self.load_last = -1  # credit2: the tick its avgload was last updated at (-1: not known)
        self.picked = False  # credit1: CSCHED_FLAG_UNIT_MIGRATING (a pick ran; no boost on the next wake)

    @property
    def key(self):
        return (self.dom.domid, self.id)

    def to_list(self) -> list:
        return [self.id, self.hard, self.soft, self.processor, self.running, self.queued, self.credit,
                self.pri, self.migrating, self.avgload, self.rqd, self.migrate_rqd, self.tickled_cpu,
                self.phase, self.outside_since, self.cpu_ticks, self.load_last, self.picked]

    @classmethod
    def from_list(cls, dom: "Domain", data: list) -> "Vcpu":
        v = cls(dom, data[0], data[1], data[2])
        (v.processor, v.running, v.queued, v.credit, v.pri, v.migrating, v.avgload, v.rqd,
         v.migrate_rqd, v.tickled_cpu, v.phase, v.outside_since) = data[3:15]
        v.cpu_ticks = data[15] if len(data) > 15 else 0  # files written before CPU time was counted
        v.load_last = data[16] if len(data) > 16 else -1  # before credit2 updated loads lazily
        v.picked = data[17] if len(data) > 17 else False  # before credit1 kept its pick flag
        return v


class Domain:
    """One simulated domain: memory per node, claims, affinity, vCPUs."""

    def __init__(self, domid: int, name: str, uuid: str, dtype: str, max_pages: int, nr_nodes: int,
                 load: LoadProfile) -> None:
        self.domid = domid
        self.name = name
        self.uuid = uuid
        self.type = dtype
        self.max_pages = max_pages
        self.video = 0  # of max_pages, an HVM guest's video RAM: QEMU populates it after the build, page by page
        self.node_pages = [0] * nr_nodes
        self.dma_pages = [0] * nr_nodes  # of node_pages, those below Xen's DMA width (see heap)
        # the build's overhead Xen allocates for the domain but not as its pages (the paging pool, its per-vCPU
        # memory: MEMF_no_owner, so in neither tot_pages nor node_pages), per node, and of it below the DMA width
        self.overhead_pages = [0] * nr_nodes
        self.overhead_dma = [0] * nr_nodes
        self.claim = 0  # host-wide outstanding claim (pages)
        self.node_claims: Dict[int, int] = {}
        self.node_affinity: Optional[int] = None  # node mask; None = automatic
        # Xen clears a new struct domain (alloc_domain_struct): its first striped extent comes from
        # cycle_node(0), the affinity's first node after node 0 (-1, in older state files: its first)
        self.last_alloc_node = NEW_DOMAIN_LAST_NODE
        self.pause_count = 0
        self.load = load
        self.vcpus: List[Vcpu] = []
        self.passthrough = False
        # page moves (see guestmem): gfn layout once a move has touched it,
        # frames a backend holds, old frames not freed yet ([node, pages])
        self.gfn_runs: Optional[List[List[int]]] = None
        self.held: List[int] = []
        self.granted: List[int] = []  # frames the guest granted since it booted (beyond its rings)
        self.stale: List[List[int]] = []
        self.record: Optional[List[int]] = None  # a dead mover's batch: released gfns awaiting recovery
        # a raise of max_pages in force, as its batch record keeps it: [the toolstack's, the one set]
        self.max_raise: Optional[List[int]] = None
        self.vnuma: Optional[dict] = None  # the vNUMA layout set on it (VnumaLayout.to_dict), if any
        # the performance model (see perf): work done in ticks of local-memory CPU,
        # and the remote share of memory summed over the ticks its vCPUs ran
        self.work_ticks = 0.0
        self.remote_ticks = 0.0
        self.wait_ticks = 0  # vCPU-ticks runnable but not running (CPU demand not met)
        self.costs = CostCache()
        self._level_tick = -1  # the load's runnable level, computed once per tick
        self._level = 0

    def level_at(self, tick: int) -> int:
        if tick != self._level_tick:
            self._level_tick, self._level = tick, self.load.level(tick)
        return self._level

    @property
    def cpu_ticks(self) -> int:
        return sum(v.cpu_ticks for v in self.vcpus)

    @property
    def tot_pages(self) -> int:
        return sum(self.node_pages)

    def held_on(self, node: int) -> int:
        """Pages of ``node`` the domain holds: its own and its build's overhead."""
        return self.node_pages[node] + self.overhead_pages[node]

    def held_below(self, node: int) -> int:
        """Of :meth:`held_on`, those below Xen's DMA width."""
        return self.dma_pages[node] + self.overhead_dma[node]

    def to_dict(self) -> dict:
        return {"domid": self.domid, "name": self.name, "uuid": self.uuid, "type": self.type,
                "max_pages": self.max_pages, "video": self.video, "node_pages": self.node_pages,
                "dma_pages": self.dma_pages, "overhead_pages": self.overhead_pages, "overhead_dma": self.overhead_dma,
                "claim": self.claim,
                "node_claims": {str(k): v for k, v in self.node_claims.items()},
                "node_affinity": self.node_affinity, "last_alloc_node": self.last_alloc_node,
                "pause_count": self.pause_count, "load": str(self.load),
                "vcpus": [v.to_list() for v in self.vcpus], "passthrough": self.passthrough,
                "gfn_runs": self.gfn_runs, "held": self.held, "granted": self.granted, "stale": self.stale,
                "record": self.record, "max_raise": self.max_raise,
                "work_ticks": self.work_ticks, "remote_ticks": self.remote_ticks, "wait_ticks": self.wait_ticks,
                "vnuma": self.vnuma}

    @classmethod
    def from_dict(cls, data: dict) -> "Domain":
        d = cls(data["domid"], data["name"], data["uuid"], data["type"], data["max_pages"],
                len(data["node_pages"]), LoadProfile.parse(data["load"]))
        d.node_pages = list(data["node_pages"])
        d.video = data.get("video", 0)  # (files written before video RAM was modelled: none)
        if "dma_pages" in data:  # (a file written before the DMA zone: the host works them out)
            d.dma_pages = list(data["dma_pages"])
        # (files written before the build's overhead was allocated: none)
        d.overhead_pages = list(data.get("overhead_pages", d.overhead_pages))
        d.overhead_dma = list(data.get("overhead_dma", d.overhead_dma))
        d.claim = data["claim"]
        d.node_claims = {int(k): v for k, v in data["node_claims"].items()}
        d.node_affinity = data["node_affinity"]
        d.last_alloc_node = data["last_alloc_node"]
        d.pause_count = data["pause_count"]
        d.vcpus = [Vcpu.from_list(d, v) for v in data["vcpus"]]
        d.passthrough = data.get("passthrough", False)
        d.gfn_runs = data.get("gfn_runs")
        d.held = list(data.get("held", []))
        d.granted = list(data.get("granted", []))
        d.stale = [list(x) for x in data.get("stale", [])]
        d.record = data.get("record")
        d.max_raise = data.get("max_raise")  # (files written before max_pages raises were modelled: none)
        d.work_ticks = float(data.get("work_ticks", 0.0))
        d.remote_ticks = float(data.get("remote_ticks", 0.0))
        d.wait_ticks = int(data.get("wait_ticks", 0))
        d.vnuma = data.get("vnuma")
        return d
