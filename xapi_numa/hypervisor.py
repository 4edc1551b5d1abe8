"""The Hypervisor port: the one interface between xapi-numa and a hypervisor.

Everything that reads or changes the world goes through :class:`Hypervisor`.
Two adapters implement it: the simulated host (``sim:PATH``, see
:mod:`xapi_numa.sim`) and the real Xen backend over our libxc extension
(``xen``).  The values it returns are immutable snapshots; callers never
hold hypervisor state.

Units: memory in bytes unless a name says ``pages`` (4 KiB pages, as Xen
counts); CPU and node sets are frozensets of ids.
"""
from __future__ import annotations

import os
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import attrs

try:  # Python >= 3.8 has Protocol in typing
    from typing import Protocol, runtime_checkable
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol, runtime_checkable  # type: ignore

from .errors import BackendUnavailable, InvalidArgument
from .topology import Topology

DOMAIN_TYPES = ("pv", "pvh", "hvm")


@attrs.frozen
class NodeMemory:
    """Memory of one node: size, free, and outstanding claims (bytes)."""

    node: int
    size: int
    free: int
    claimed: int = 0

    @property
    def claimable(self) -> int:
        """Free memory not promised to anyone by an outstanding claim."""
        return max(0, self.free - self.claimed)


@attrs.frozen
class DomainInfo:
    """One domain as the hypervisor sees it."""

    domid: int
    name: str
    uuid: str
    vcpus: int
    memory: int  # bytes currently allocated (tot_pages)
    max_memory: int
    paused: bool
    type: str = "pv"
    claimed: int = 0  # bytes still outstanding on this domain's claim


@attrs.frozen
class VcpuInfo:
    """One vCPU: where it is, what it is doing and where it may run."""

    domid: int
    vcpu: int
    cpu: int  # pCPU it runs on, or last ran on / is queued on
    state: str  # running, runnable, blocked, paused or offline
    hard: FrozenSet[int]
    soft: FrozenSet[int]


@attrs.frozen
class MemoryMap:
    """A guest's memory as seen for moving it between nodes.

    ``classes`` holds one byte per gfn (0 .. max gfn): 0 is ordinary RAM that
    may move; the other values say why a gfn stays (see
    :data:`xapi_numa.pagemove.SKIP_REASONS`).
    """

    classes: bytes
    busy_grants: int = 0  # granted frames their grantee is using right now
    scan_phases: Tuple[Tuple[str, float], ...] = ()  # (phase, seconds) where the backend measures them


@attrs.frozen
class BatchResult:
    """What one pause window of a move did (see libxenuma's xn_mig_move)."""

    released: int       # gfns whose old frames were given back
    moved: int          # of those, now on the target node
    fallback: int       # of those, on another node (target short, or after a failure)
    lost: int           # of those, left without a frame: must be 0
    superpages: int     # 2 MiB extents populated on the target
    not_freed: int      # old frames something still references
    stuck_gfns: Tuple[int, ...]  # the chunk that held them
    raised_max: int     # pages added to max_pages so every gfn got a frame back
    pause: float        # seconds the domain was paused
    stage: str          # how far it got: "done" on success
    error: int = 0      # errno of the failure


@runtime_checkable
class Hypervisor(Protocol):
    """What xapi-numa needs from a hypervisor.  All methods may raise NumaError."""

    def topology(self) -> Topology: ...

    def node_memory(self) -> List[NodeMemory]: ...

    def domains(self) -> List[DomainInfo]: ...

    def vcpus(self, domid: int) -> List[VcpuInfo]: ...

    def set_vcpu_affinity(self, domid: int, vcpu: int, hard: Optional[FrozenSet[int]] = None,
                          soft: Optional[FrozenSet[int]] = None) -> None: ...

    def node_affinity(self, domid: int) -> FrozenSet[int]: ...

    def set_node_affinity(self, domid: int, nodes: Optional[FrozenSet[int]]) -> None:
        """Set the domain's node affinity; ``None`` returns it to automatic."""

    def node_pages(self, domid: int) -> Dict[int, int]:
        """Pages of the domain's memory on each node."""

    def claim(self, domid: int, pages: int, node: Optional[int] = None) -> None:
        """Claim ``pages`` for the domain (0 cancels), host-wide or on one node."""

    def pause(self, domid: int) -> None: ...

    def unpause(self, domid: int) -> None: ...

    def features(self) -> Dict[str, str]:
        """For each primitive: ``native``, ``fallback`` or ``unavailable`` here."""

    def memory_map(self, domid: int, probe_ms: int = 0) -> MemoryMap:
        """Classify the guest's gfns for moving; ``probe_ms`` pauses it that long to spot
        frames that change while no vCPU runs."""

    def move_pages(self, domid: int, gfns: Sequence[int], node: int, verify_chunk: int = 16,
                   allow_fallback: bool = False, fault: Optional[str] = None) -> BatchResult:
        """Move one batch of gfns (ascending) to ``node`` in one pause window."""

    def move_blockers(self, domid: int) -> List[str]:
        """Why this domain's memory must not be moved (PCI passthrough ...), if anything."""

    def recover_move(self, domid: int) -> Optional[str]:
        """Finish a batch whose mover died inside its pause window (restore, unpause);
        what was done, or None if nothing was left."""


def backend_spec(explicit: Optional[str] = None) -> str:
    """Which backend to use: the flag, else $XAPI_NUMA_BACKEND, else ``xen``."""
    return explicit or os.environ.get("XAPI_NUMA_BACKEND") or "xen"


BACKEND_SYNTAX = "xen, or sim:PATH for a simulated host stored at PATH"


def open_hypervisor(spec: Optional[str] = None) -> Hypervisor:
    """Open the backend named by ``spec`` (see :func:`backend_spec`)."""
    spec = backend_spec(spec)
    if spec.startswith("sim:"):
        path = spec[4:]
        if not path:
            raise InvalidArgument("backend", "sim: needs a path", BACKEND_SYNTAX)
        from .sim.backend import SimHypervisor

        return SimHypervisor(path)
    if spec == "xen":
        return _open_xen()
    raise InvalidArgument("backend", f"unknown backend {spec!r}", BACKEND_SYNTAX)


def _open_xen() -> Hypervisor:
    try:
        from .xen import XenHypervisor  # type: ignore[import-not-found]
    except ImportError:
        raise BackendUnavailable(
            "the Xen backend needs libxenuma, xapi-numa's native libxc extension, which is not "
            "built in this installation; use --backend sim:PATH for a simulated host"
        ) from None
    return XenHypervisor()


def domain_by_name_or_id(hv: Hypervisor, ref: str) -> DomainInfo:
    """Find a domain by domid, name or UUID (what users type)."""
    from .errors import UnknownVM

    doms = hv.domains()
    for d in doms:
        if ref in (str(d.domid), d.name, d.uuid):
            return d
    raise UnknownVM(ref)

