"""World -> snapshot: read a host through the Hypervisor port into values.

Reads tolerate domains that go away mid-read (they are left out); one whose
vCPUs could not be read for another reason is left out too, but named in
:attr:`HostSnapshot.unread`, so that nothing remembered of it is dropped as if
it were gone.  Nothing here decides anything.
"""
import errno
import os
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import attrs

from xapi_numa.errors import HypervisorError, NumaError, UnknownVM
from xapi_numa.core import reservation
from xapi_numa.core.host import DomainInfo, NodeMemory, VcpuInfo, find_domain
from xapi_numa.core.live_domains import LiveDomains
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.ports.hypervisor import Capabilities, Hypervisor
from xapi_numa.state.ledger import Ledger


def take(hv: Hypervisor, now: Optional[float] = None, with_pages: bool = False,
         pages_of: Optional[Iterable[int]] = None) -> HostSnapshot:
    """The host now.  ``with_pages``: pages per node of every guest; ``pages_of``:
    of these domids only."""
    now = hv.clock() if now is None else now
    # first: the vCPU maps are read against it (the Xen adapter cuts them to the CPUs online as
    # of its last topology read; read after them, a CPU offline since would be in a map and on no node)
    topology = hv.topology()
    domains = tuple(hv.domains())
    wanted = None if pages_of is None else set(pages_of)
    vcpus: Dict[int, Tuple[VcpuInfo, ...]] = {}
    pages: Dict[int, Dict[int, int]] = {}
    unread: Dict[str, int] = {}
    for d in domains:
        try:
            vcpus[d.domid] = tuple(hv.vcpus(d.domid))
            if d.domid != 0 and (with_pages or (wanted is not None and d.domid in wanted)):
                pages[d.domid] = dict(hv.node_pages(d.domid))
        except NumaError as err:
            if d.domid not in vcpus and not gone(err):
                unread[d.uuid] = d.domid  # there, but not read: not to be taken for gone
            continue  # gone during the read, or its pages not known this time
    # the pools read last: a CPU online since the topology was read (xen-hptool cpu-online) is on no node of it
    online = topology.all_cpus
    pools = {pool: cpus if cpus <= online else cpus & online for pool, cpus in hv.cpupools().items()}
    return HostSnapshot(topology, now, tuple(d for d in domains if d.domid in vcpus), vcpus, pages,
                        hv.capabilities().scheduler, pools, unread)


def gone(err: NumaError) -> bool:
    """Does ``err`` say the domain no longer exists?"""
    return isinstance(err, HypervisorError) and err.errno == errno.ESRCH


def known_node_claims(hv: Hypervisor, ledger: Optional[Ledger],
                      caps: Optional[Capabilities] = None) -> Dict[int, int]:
    """Bytes claimed per node by the claims the ledger says we made on one node, where the
    hypervisor does not read claims per node (XenServer's patched Xen: the Xen adapter
    reports them as host-wide): what is left of each such claim (the domain's record says;
    Xen keeps one claim per domain), on its node.  Nothing where the hypervisor reads them.
    ``caps``: the hypervisor's capabilities, read already (else read here)."""
    caps = hv.capabilities() if caps is None else caps
    if ledger is None or not caps.node_claims or caps.node_claims_read:
        return {}
    out: Dict[int, int] = {}
    for vm, domid, node in ledger.node_claims_made():
        try:
            d = hv.domain(domid, named=False)
        except NumaError:
            continue
        if d is not None and d.uuid == vm and d.claimed > 0:  # (not another domain by that domid now)
            out[node] = out.get(node, 0) + d.claimed
    return out


def on_their_nodes(memory: Sequence[NodeMemory], known: Optional[Mapping[int, int]]) -> List[NodeMemory]:
    """``memory`` with the ``known`` node claims (bytes per node) counted on their nodes
    where it says less is claimed there (a node claim it reports as host-wide)."""
    if not known:
        return list(memory)
    return [attrs.evolve(m, claimed=max(m.claimed, known.get(m.node, 0))) for m in memory]


def reserved_domains(hv: Hypervisor, reservations: Iterable[reservation.Reservation],
                     uuids: Optional[LiveDomains] = None) -> Dict[str, DomainInfo]:
    """The domains of the reserved VMs, by UUID (found in ``uuids``, the live domains read
    just now, or read here): only theirs are read, a few on a host of a thousand."""
    live = hv.domain_uuids() if uuids is None else uuids
    out: Dict[str, DomainInfo] = {}
    for r in reservations:
        domid = live.domid_of(r.vm)  # (of two domains with its UUID, the one being built)
        if domid is None:
            continue
        d = hv.domain(domid, named=False)
        if d is not None and d.uuid == r.vm:  # (not gone since the list, its domid another's now)
            out[r.vm] = d
    return out


def claims_overlap(hv: Hypervisor, ledger: Optional[Ledger],
                   reservations: Optional[Sequence[reservation.Reservation]] = None,
                   domains: Optional[Mapping[str, DomainInfo]] = None, actions: Sequence[object] = (),
                   now: Optional[float] = None, exclude: Optional[str] = None,
                   caps: Optional[Capabilities] = None) -> reservation.ClaimOverlap:
    """What the ledger's reservations (``reservations``, as after ``actions``; all of
    ``ledger``'s by default) hold that their domains' own claims hold back too
    (:func:`xapi_numa.core.reservation.claims_overlap`): to count once, not as both, on the
    claim's node where the hypervisor reads claims per node, else in the host's total.
    ``domains``: theirs by UUID, if read already; ``exclude``: a VM whose row is not counted
    (placed again: the caller leaves its row out).  ``caps``: the hypervisor's capabilities,
    read already (else read here)."""
    if ledger is None:
        return reservation.NO_OVERLAP
    rows = [r for r in (ledger.reservations() if reservations is None else reservations)
            if not (r.claimed or r.claim_ours) and r.vm != exclude]
    if not rows:
        return reservation.NO_OVERLAP
    caps = hv.capabilities() if caps is None else caps
    domains = reserved_domains(hv, rows) if domains is None else domains
    return reservation.claims_overlap(rows, domains, actions, now, on_nodes=caps.node_claims_read)


def claimable_total(hv: Hypervisor, memory: Optional[Sequence[NodeMemory]] = None,
                    known: Optional[Mapping[int, int]] = None,
                    overlap: reservation.ClaimOverlap = reservation.NO_OVERLAP) -> int:
    """Bytes the whole host can give new allocations, after every claim: those on nodes,
    and host-wide ones (stock Xen's, and the fallback where per-node ones are missing),
    which are on no node but which Xen keeps from every allocation.  ``known``: node
    claims the hypervisor does not place on their nodes (:func:`known_node_claims`);
    ``overlap``: what claims hold that reservations hold too (:func:`claims_overlap`),
    left to the reservations, which the caller takes off."""
    memory = on_their_nodes(hv.node_memory() if memory is None else memory, known)
    host_wide = max(0, host_wide_claims(hv, memory) - overlap.host_wide)
    return max(0, sum(m.claimable for m in counted_once(memory, overlap)) - host_wide)


def counted_once(memory: Sequence[NodeMemory], overlap: reservation.ClaimOverlap) -> List[NodeMemory]:
    """``memory`` with what the reservations hold of each node's claims left to them (the
    node claims of ``overlap``: the rows are taken off by the caller)."""
    if not overlap.nodes:
        return list(memory)
    return [attrs.evolve(m, claimed=max(0, m.claimed - overlap.nodes.get(m.node, 0))) for m in memory]


def host_wide_claims(hv: Hypervisor, memory: Sequence[NodeMemory]) -> int:
    """Bytes claimed on no node: the domains' claims less those the nodes hold."""
    return max(0, hv.claims_outstanding() - sum(m.claimed for m in memory))


def claimable(hv: Hypervisor, reserved: Optional[Mapping[int, int]] = None, dma: bool = True,
              known: Optional[Mapping[int, int]] = None,
              overlap: reservation.ClaimOverlap = reservation.NO_OVERLAP) -> Dict[int, int]:
    """Bytes each node can give a new allocation: free less the claims on it and less
    what ``reserved`` (bytes per node) holds there, and never more than the whole host
    has left after all of them (:func:`claimable_total`, which bounds their sum too).
    Without ``dma``, a node's DMA zone is left out (:attr:`NodeMemory.room`: what a
    build with node affinity there gets from it before Xen spills it elsewhere).
    ``known``, ``overlap``: as :func:`claimable_total` takes them."""
    return claimable_split(hv, reserved, known, overlap)[0 if dma else 1]


def claimable_split(hv: Hypervisor, reserved: Optional[Mapping[int, int]] = None,
                    known: Optional[Mapping[int, int]] = None,
                    overlap: reservation.ClaimOverlap = reservation.NO_OVERLAP,
                    memory: Optional[Sequence[NodeMemory]] = None) -> Tuple[Dict[int, int], Dict[int, int]]:
    """:func:`claimable` with and without the DMA zones, from one read of node memory
    (``memory``, where the caller read it: ``hv.node_memory()``)."""
    reserved = reserved or {}
    memory = on_their_nodes(hv.node_memory() if memory is None else memory, known)
    overall = claimable_total(hv, memory, overlap=overlap) - sum(reserved.values())
    with_dma: Dict[int, int] = {}
    room: Dict[int, int] = {}
    for m in counted_once(memory, overlap):
        held = reserved.get(m.node, 0)
        with_dma[m.node] = max(0, min(m.claimable - held, overall))
        room[m.node] = max(0, min(m.room - held, overall))
    return with_dma, room


def domain_by_name_or_id(hv: Hypervisor, ref: str) -> DomainInfo:
    """Find a domain by domid, name or UUID (what users type).  On an ASCII locale
    (dom0's Python 3.6 with no LANG) a name typed in UTF-8 arrives as escaped bytes: it
    is looked for as typed too (arguments that are paths must keep those bytes)."""
    domains = hv.domains()
    try:
        return find_domain(domains, ref)
    except UnknownVM:
        typed = as_typed(ref)
        if typed == ref:
            raise
        return find_domain(domains, typed)


def as_typed(text: str) -> str:
    """``text`` as the user typed it, where an ASCII locale escaped its UTF-8 bytes."""
    if not any("\udc80" <= c <= "\udcff" for c in text):
        return text
    try:
        return os.fsencode(text).decode("utf-8")
    except ValueError:  # not UTF-8 either: as it came
        return text
