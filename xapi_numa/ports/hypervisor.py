"""The Hypervisor port: the one interface between xapi-numa and a hypervisor.

Everything that reads or changes a host goes through :class:`Hypervisor`.
Two adapters implement it (:mod:`xapi_numa.backends`): the real Xen backend
over libxenuma and the simulated host.  What a host can do beyond the common
operations is said by :meth:`Hypervisor.capabilities`, never probed with
``hasattr``; time (for thresholds and pacing) comes from the host too, since a
simulated host keeps its own.

The values it returns live in :mod:`xapi_numa.core.host`.  All methods may
raise :class:`~xapi_numa.errors.NumaError`.
"""
import abc
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence

import attrs

from xapi_numa.core.host import BatchResult, DomainInfo, MemoryMap, NodeMemory, VcpuInfo
from xapi_numa.core.live_domains import LiveDomains
from xapi_numa.core.topology import Topology
from xapi_numa.core.vnuma import MemRange, VnumaLayout, VnumaPlan

FEATURE_LEVELS = ("native", "fallback", "unavailable")

# A move blocker both backends report for a guest with an emulating device model
# (QEMU's map cache keeps guest frames mapped; see ops.move_refusals.refuse_unmovable).
DEVICE_MODEL_BLOCKER = "an emulating device model"


@attrs.frozen
class Capabilities:
    """What this host offers beyond the common operations."""

    scheduler: str                # the default scheduler: credit, credit2, ... or unknown
    node_claims: bool             # claims on one node (XenServer's patched Xen), not only host-wide
    features: Mapping[str, str]   # per primitive: native, fallback or unavailable (for reports)
    modelled_time: bool = False   # the host keeps its own time (the simulator)
    # node_memory() says what is claimed on each node; where not (XenServer's patched Xen as
    # libxenuma reads it: no per-node read of claims), node claims count as host-wide there
    # and callers add those the ledger knows it made (ops.observe.known_node_claims)
    node_claims_read: bool = False


class Hypervisor(abc.ABC):
    """What xapi-numa needs from a hypervisor."""

    # --- what this host is ----------------------------------------------------------------
    @abc.abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abc.abstractmethod
    def clock(self) -> float:
        """Seconds on the host's clock (monotonic)."""

    def boot_id(self) -> str:
        """What tells this run of :meth:`clock` from an earlier one (the clock starts again
        at every boot): times stamped under another boot id are an earlier boot's, whatever
        their value.  "" where the host cannot say (then only the stamps themselves tell)."""
        return ""

    @abc.abstractmethod
    def sleep(self, seconds: float) -> None:
        """Wait on the host's clock (a simulated host models the wait instead)."""

    @abc.abstractmethod
    def topology(self) -> Topology: ...

    @abc.abstractmethod
    def node_memory(self) -> List[NodeMemory]: ...

    @abc.abstractmethod
    def cpupools(self) -> Dict[int, FrozenSet[int]]:
        """Each CPU pool's pCPUs (a domain's vCPUs run only on its pool's)."""

    # --- domains and vCPUs ----------------------------------------------------------------
    @abc.abstractmethod
    def domains(self) -> List[DomainInfo]: ...

    def domain_uuids(self) -> LiveDomains:
        """domid -> UUID of every live domain: all a start's count of vCPU homes needs to
        know of the domains.  The Xen adapter reads it without the names (a xenstore read
        per domain in a fresh process, as every plugin call is) or the rest of the records."""
        return LiveDomains.of({d.domid: d.uuid for d in self.domains()})

    def domain(self, domid: int, named: bool = True) -> Optional[DomainInfo]:
        """One domain's record, or None if there is no such live domain.  ``named=False``:
        the caller does not use the name, which may then be ``domain-N`` where reading it
        would cost a xenstore read (a start's reconcile reads the records of the VMs being
        built, a boot storm's worth)."""
        return next((d for d in self.domains() if d.domid == domid), None)

    @abc.abstractmethod
    def vcpus(self, domid: int) -> List[VcpuInfo]: ...

    def claims_outstanding(self) -> int:
        """Bytes every domain has claimed and not yet been given (Xen keeps them from other
        allocations).  Xen counts the total itself (physinfo), one call where the domain
        list is a thousand records: a start reads it inside the ledger's transaction."""
        return sum(d.claimed for d in self.domains())

    @abc.abstractmethod
    def set_vcpu_affinity(self, domid: int, vcpu: int, hard: Optional[FrozenSet[int]] = None,
                          soft: Optional[FrozenSet[int]] = None) -> None: ...

    @abc.abstractmethod
    def node_affinity(self, domid: int) -> FrozenSet[int]: ...

    @abc.abstractmethod
    def set_node_affinity(self, domid: int, nodes: Optional[FrozenSet[int]]) -> None:
        """Set the domain's node affinity; ``None`` returns it to automatic."""

    @abc.abstractmethod
    def pause(self, domid: int) -> None: ...

    @abc.abstractmethod
    def unpause(self, domid: int) -> None: ...

    # --- memory -----------------------------------------------------------------------------
    @abc.abstractmethod
    def node_pages(self, domid: int) -> Dict[int, int]:
        """Pages of the domain's memory on each node."""

    @abc.abstractmethod
    def claim(self, domid: int, pages: int, node: Optional[int] = None) -> None:
        """Claim ``pages`` for the domain (0 cancels), host-wide or on one node."""

    @abc.abstractmethod
    def memory_map(self, domid: int, probe_ms: int = 0) -> MemoryMap:
        """Classify the guest's gfns for moving; ``probe_ms`` pauses it that long to spot
        frames that change while no vCPU runs."""

    @abc.abstractmethod
    def move_pages(self, domid: int, gfns: Sequence[int], node: int, verify_chunk: int = 16,
                   allow_fallback: bool = False, fault: Optional[str] = None,
                   uuid: Optional[str] = None) -> BatchResult:
        """Move one batch of gfns (ascending) to ``node`` in one pause window.  ``uuid``: the
        VM whose domain ``domid`` must still be, checked by the backend while it holds the
        domain, after the caller's own look (HypervisorError ESTALE, nothing moved, if the
        domain was destroyed and its domid given to another since)."""

    @abc.abstractmethod
    def move_blockers(self, domid: int) -> List[str]:
        """Why this domain's memory must not be moved (PCI passthrough ...), if anything."""

    @abc.abstractmethod
    def recover_move(self, domid: int) -> Optional[str]:
        """Finish a batch whose mover died inside its pause window (restore, unpause);
        what was done, or None if nothing was left."""

    def batch_records(self) -> List[int]:
        """Domids that have a page-move batch record (a move's or a probe's pause window),
        whether its mover lives or died: recovery's sweep for the ones no journal row
        names (a foreground scan killed in its probe).  None by default.  A read: it creates
        and removes nothing (dry runs and status queries call it)."""
        return []

    def sweep_batch_records(self) -> List[str]:
        """Remove what a writer killed while writing a batch record left (never a record a
        live process is writing); recovery's alone.  What was removed, for logs; nothing by
        default (a backend whose records are never half written)."""
        return []

    def static_max(self, domid: int) -> Optional[int]:
        """Bytes of the guest's static max as the toolstack that built the domain recorded it
        (libxl and xenopsd both write it when the build is done, before the first unpause);
        None where nothing recorded it (then only Xen's maximum says, with the toolstack's slack)."""
        return None

    @abc.abstractmethod
    def set_vnuma(self, domid: int, plan: VnumaPlan, ranges: Sequence[MemRange]) -> None:
        """Give a domain that has not run yet its vNUMA layout (what a domain builder
        does before the first unpause; xenopsd has no such step today)."""

    @abc.abstractmethod
    def vnuma(self, domid: int) -> Optional[VnumaLayout]:
        """The domain's vNUMA layout as the hypervisor holds it now (None: it has none).
        A vnode's pnode is None where the hypervisor cannot say."""
