"""Values of a Xen host as xapi-numa sees it: nodes' memory, domains, vCPUs, a
guest's memory map and what one page-move batch did.

Plain immutable values, returned by the :class:`~xapi_numa.ports.hypervisor.Hypervisor`
port and consumed by the pure planners.  Units: memory in bytes unless a name
says ``pages`` (4 KiB pages, as Xen counts); CPU and node sets are frozensets
of ids.
"""
import re
from typing import FrozenSet, Iterable, Optional, Tuple

import attrs

from xapi_numa.core.numbers import is_decimal, shown, trim
from xapi_numa.errors import InvalidArgument, UnknownVM

DOMAIN_TYPES = ("pv", "pvh", "hvm")


@attrs.frozen
class NodeMemory:
    """Memory of one node: size, free, outstanding claims, and the part of the free
    memory in Xen's DMA zone (bytes; :mod:`xapi_numa.core.dma_zone`)."""

    node: int
    size: int
    free: int
    claimed: int = 0
    dma_free: int = 0

    @property
    def claimable(self) -> int:
        """Free memory not promised to anyone by an outstanding claim: what Xen can
        give, the DMA zone included (last, see :attr:`room`)."""
        return max(0, self.free - self.claimed)

    @property
    def room(self) -> int:
        """What a build with node affinity here gets from this node: claimable memory
        less the DMA zone, which Xen gives it only once every node is out of the rest
        (it spills to the other nodes first)."""
        return max(0, self.claimable - self.dma_free)


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
    cpupool: int = 0  # its vCPUs run only on this CPU pool's pCPUs
    shutdown: bool = False  # shut down (a poweroff, a crash being handled), not yet destroyed: its vCPUs never run again
    # the node its claim is on, where the hypervisor says (None: no claim, a host-wide one, or a node claim
    # not read back per node: the Xen adapter's on XenServer's patched Xen)
    claim_node: Optional[int] = None


@attrs.frozen
class VcpuInfo:
    """One vCPU: where it is, what it is doing and where it may run."""

    domid: int
    vcpu: int
    cpu: int  # pCPU it runs on, or last ran on / is queued on
    state: str  # running, runnable, blocked, paused or offline
    hard: FrozenSet[int]
    soft: FrozenSet[int]
    cpu_time: float = 0.0  # seconds this vCPU has run, since it was created


@attrs.frozen
class MemoryMap:
    """A guest's memory as seen for moving it between nodes.

    ``classes`` holds one byte per gfn from 0 as far as the scan classified (every
    gfn past it stays: not RAM the scan reached): 0 is ordinary RAM that may move;
    the other values say why a gfn stays (see :data:`xapi_numa.pagemove.SKIP_REASONS`).
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
    raised_max: int     # pages max_pages was raised by so every gfn got a frame back (then set back)
    pause: float        # seconds the domain was paused
    stage: str          # how far it got: "done" on success
    error: int = 0      # errno of the failure
    granted: int = 0    # gfns left where they were: granted to another domain by the pause, or given back since the scan
    recognised: int = 0  # gfns left where they were: a page Xen maps (vcpu_info, event channels) by then


UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def parse_uuid(text: str, field: str = "vm") -> str:
    """A VM's UUID as xapi spells it (lower case), from what was typed."""
    value = trim(text).lower()
    if not UUID_RE.match(value):
        raise InvalidArgument(field, "{} is not a UUID".format(shown(text)),
                              "a UUID like 01234567-89ab-cdef-0123-456789abcdef")
    return value


def uuid4_text(random16: bytes) -> str:
    """A random (version 4) UUID's text made of 16 random bytes, as ``str(uuid.uuid4())``
    makes it of os.urandom's.  Not uuid.uuid4 itself: on Python 3.6 (dom0's) importing the
    uuid module loads ctypes and runs ldconfig, in every plugin call that makes a token."""
    raw = bytearray(random16)
    raw[6], raw[8] = (raw[6] & 0x0F) | 0x40, (raw[8] & 0x3F) | 0x80  # the version, then the variant (RFC 4122)
    text = raw.hex()
    return "-".join((text[:8], text[8:12], text[12:16], text[16:20], text[20:]))


def refuse_blank(ref: str, allowed: str = "a domid, name or UUID") -> None:
    """A VM named by nothing (empty, or spaces only) is refused input, in one set of words for every command."""
    if not ref.strip():
        raise InvalidArgument("VM", "{} is blank".format(shown(ref)), allowed)


def find_domain(domains: Iterable[DomainInfo], ref: str) -> DomainInfo:
    """The domain a user means by ``ref``: a domid, a UUID or a name.

    As xl reads it: ASCII digits are a domid when a domain has that domid
    (a VM named "5" is then reached by its UUID).  xapi's name labels are not
    unique: a name two running domains share is refused, naming their domids,
    rather than one of them picked."""
    refuse_blank(ref)
    domains = list(domains)
    if is_decimal(ref) and len(ref) <= 10:
        found = [d for d in domains if d.domid == int(ref)]
        if found:
            return found[0]
    found = [d for d in domains if d.uuid.lower() == ref.lower()]
    if found:
        return found[0]
    found = [d for d in domains if d.name == ref]
    if len(found) > 1:
        raise InvalidArgument("VM", "{} domains are named {} (domids {})".format(
            len(found), shown(ref), ", ".join(str(d.domid) for d in found)), "its domid or UUID")
    if found:
        return found[0]
    raise UnknownVM(ref)
