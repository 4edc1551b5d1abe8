"""Placing a VM that is about to start: snapshot -> decision -> reservation.

Reads the world once (free memory and claims from the hypervisor, other
starts' reservations and the sizes of the VMs started here from the ledger,
vCPU homes), asks the pure placement engine, and has the executor reserve the
result, counting the VM's size with it (a dry run counts nothing); the ledger re-checks it
against fresh free memory in its own transaction.  If another start took the
memory in between, it plans again with fresh numbers (optimistic concurrency;
nobody waits on a global lock).  A dry run reserves nothing and changes
nothing: it counts reservations as a reconcile would leave them.
"""
import functools
import os
import time
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import attrs

from xapi_numa.core import dma_zone
from xapi_numa.core.actions import Reserve
from xapi_numa.core.host import NodeMemory, uuid4_text
from xapi_numa.core.live_domains import LiveDomains
from xapi_numa.core.locality import single_homes
from xapi_numa.core.placement import NodeLoads, Placement, Planner, Request
from xapi_numa.core.reservation import NO_OVERLAP, ClaimOverlap, Reservation
from xapi_numa.core.start_sizes import NO_STARTS, StartSizes
from xapi_numa.core.topology import Topology
from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.errors import NoCapacity, NumaError, RoomReserved
from xapi_numa.ops import observe, upkeep
from xapi_numa.ops.executor import Executor
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.home_tally import HomeTally
from xapi_numa.state.ledger import DEFAULT_TTL, Ledger
from xapi_numa.state import start_sizes
from xapi_numa.state.moves import MoveJournal

ATTEMPTS = 8
# How long a start whose only room is a DMA zone waits for builds under way to land (the
# memory Xen would give it first is theirs: core/dma_zone), looking every BUILDS_POLL s;
# well within a place's budget (ops/start_placement.PLACE_BUDGET)
BUILDS_WAIT = 20.0
BUILDS_POLL = 0.25
# A start's request for the host's free memory (a reader of it, called only where the request needs it:
# place_request.start_sizing): what place_sized asks again at each read of the host its planner makes
Sizing = Callable[[Callable[[], int]], Request]


def node_loads(hv: Hypervisor, reserved: Mapping[int, int], topology: Optional[Topology] = None,
               leave_out: Optional[int] = None, moving: Optional[Mapping[int, int]] = None,
               tally: Optional[HomeTally] = None, uuids: Optional[LiveDomains] = None,
               known: Optional[Mapping[int, int]] = None, overlap: ClaimOverlap = NO_OVERLAP,
               memory: Optional[Sequence[NodeMemory]] = None, starts: StartSizes = NO_STARTS) -> NodeLoads:
    """Per-node free memory (less hypervisor claims, and less the pages ``moving``, per
    node, that running memory moves have yet to bring), reservations and vCPUs homed
    there; ``leave_out``: a domain whose vCPUs are not counted; ``tally``: xapi-numad's
    counts (:mod:`xapi_numa.state.home_tally`), used while fresh for the domains it
    names; ``uuids``: the live domains (domid -> UUID), read just now; ``known``: node
    claims the hypervisor reports as host-wide (:func:`observe.known_node_claims`);
    ``overlap``: what of ``reserved`` claims hold too (:func:`observe.claims_overlap`); ``memory``:
    the node memory, where the caller read it (for :func:`start_free` too); ``starts``: the sizes of
    the VMs started here (:func:`xapi_numa.state.start_sizes.read`)."""
    topology = topology or hv.topology()
    live = hv.domain_uuids() if uuids is None else uuids
    skip = (0, leave_out)
    counted = tally.count(live, len(topology.nodes), skip) if tally is not None else None
    vcpus, unread = counted if counted is not None else ([0] * len(topology.nodes),
                                                         [d for d in live if d not in skip])
    for domid in unread:
        try:
            homes = single_homes(hv.vcpus(domid), topology)
        except NumaError:
            continue  # the domain went away meanwhile
        for node, count in homes.items():
            if 0 <= node < len(vcpus):
                vcpus[node] += count
    # a host-wide claim bounds every node; a node's DMA zone is apart (Xen's last resort)
    with_dma, free = observe.claimable_split(hv, known=known, overlap=overlap, memory=memory)
    for node, pages in (moving or {}).items():
        if node in free:  # (into the room first: a mover asks for its node's memory above the zone first)
            with_dma[node] = max(0, with_dma[node] - (pages << PAGE_SHIFT))
            free[node] = max(0, free[node] - (pages << PAGE_SHIFT))
    nodes = sorted(free)
    return NodeLoads([free[n] for n in nodes], [reserved.get(n, 0) for n in nodes], vcpus,
                     [with_dma[n] - free[n] for n in nodes], starts)


def room_pages(hv: Hypervisor, ledger: Ledger, exclude_move: Optional[str] = None) -> Dict[int, int]:
    """Pages each node can take for memory we move there: free less the hypervisor's
    claims, what starts have reserved in the ledger (a page move must never take the
    memory a VM about to start was promised) and what movers still running will bring
    (but ``exclude_move``'s, the VM whose move asks).  Every mover checks this figure;
    :meth:`Ledger.reserve` counts the moves the same way.  Called inside a write
    transaction of ``ledger``'s database (a mover's claim), it reads in that one.

    A host-wide claim (stock Xen's, and the fallback where per-node claims are missing)
    is on no node, but Xen keeps it from every allocation, so no node has more room than
    the whole host has left after it."""
    # reservations as a reconcile would leave them: memory a started VM's build took counts once
    # not into a DMA zone: Xen would give a mover's exact-node request that memory only once
    # its node is out of the rest, and leaves it for what needs low addresses
    reserved, overlap = upkeep.held_after_reconcile(hv, ledger)
    free = observe.claimable(hv, reserved, dma=False, known=observe.known_node_claims(hv, ledger), overlap=overlap)
    room = {n: b >> PAGE_SHIFT for n, b in free.items()}
    # a mover still running brings the rest of its pages yet (the host as a whole: each page moved frees one)
    for node, left in MoveJournal.of_host(ledger.db, hv).pending(exclude_move).items():
        if node in room:
            room[node] = max(0, room[node] - left)
    return room


def host_free(hv: Hypervisor, ledger: Optional[Ledger], vm: Optional[str] = None) -> int:
    """Bytes the whole host has free for ``vm``'s start, as a dry run's planner counts them
    (:func:`start_free` of the reads :func:`place_sized` makes), read on their own: a check before
    the place (its start target refused before the VM is held); the place sizes its start from its
    planner's own read."""
    if ledger is None:
        return start_free(hv, {}, {}, None, NO_OVERLAP)
    caps = hv.capabilities()
    with ledger.db.read():  # (one snapshot, as a dry run's)
        reserved, overlap = upkeep.held_after_reconcile(hv, ledger, vm, caps=caps)
        return start_free(hv, reserved, _moving(hv, ledger), observe.known_node_claims(hv, ledger, caps), overlap)


def start_free(hv: Hypervisor, reserved: Mapping[int, int], moving: Mapping[int, int],
               known: Optional[Mapping[int, int]], overlap: ClaimOverlap,
               memory: Optional[Sequence[NodeMemory]] = None) -> int:
    """Bytes the whole host has free for a start, from what a planner's read gave (``reserved``,
    ``moving``, ``known``, ``overlap`` and ``memory``, as :func:`node_loads` takes them): Xen's free
    memory, its DMA zones too, less every claim, other starts' reservations and the pages memory
    moves have yet to bring: what squeezed sizes a start from
    (:func:`xapi_numa.core.xenopsd_build.squeezed_target`; squeezed itself does not know the
    reservations, which a start planned here may not take)."""
    total = observe.claimable_total(hv, memory, known=known, overlap=overlap)
    return max(0, total - sum(reserved.values()) - (sum(moving.values()) << PAGE_SHIFT))


def place_and_reserve(hv: Hypervisor, ledger: Optional[Ledger], request: Request, vm: Optional[str] = None,
                      ttl: float = DEFAULT_TTL, dry_run: bool = False, planner: Optional[Planner] = None,
                      owner: str = "") -> Tuple[Placement, Optional[Reservation], NodeLoads]:
    """Decide where the VM goes and, unless ``dry_run``, reserve it for ``owner``: :func:`place_sized`
    for a request whose size the host's free memory does not change."""
    return place_sized(hv, ledger, lambda _free: request, vm, ttl, dry_run, planner, owner)[1:]


def place_sized(hv: Hypervisor, ledger: Optional[Ledger], sized: Sizing, vm: Optional[str] = None,
                ttl: float = DEFAULT_TTL, dry_run: bool = False, planner: Optional[Planner] = None,
                owner: str = "") -> Tuple[Request, Placement, Optional[Reservation], NodeLoads]:
    """Decide where the VM goes and, unless ``dry_run``, reserve it for ``owner`` and count its
    size in the host's start sizes (if it fits a node: :meth:`Planner.fits_a_node`); with the request
    ``sized`` for the host's free memory as each read of the planner finds it (:func:`start_free`
    of that read: a start target squeezed sizes from it, :mod:`.place_request`), made again with
    the fresh numbers where another start took the memory meanwhile.  Returns the request too."""
    planner = planner or Planner(hv.topology())
    # a VM placed again (after a failed start, say) is not in its own way: its reservation is replaced
    tally = HomeTally(ledger.db) if ledger is not None else None
    if ledger is None or dry_run:
        uuids = hv.domain_uuids()  # one read for both: nothing changes in a dry run
        if ledger is None:
            reserved, moving, known, overlap, memory = {}, {}, None, NO_OVERLAP, hv.node_memory()
            loads = node_loads(hv, reserved, planner.topology, uuids=uuids, memory=memory)
        else:
            caps = hv.capabilities()  # (one read for the reconcile's view, the node claims and the overlap)
            with ledger.db.read():  # the reservations, the moves and the tally in one transaction (one snapshot)
                reserved, overlap = upkeep.held_after_reconcile(hv, ledger, vm, uuids, caps)
                moving, known, memory = _moving(hv, ledger), observe.known_node_claims(hv, ledger, caps), \
                    hv.node_memory()
                loads = node_loads(hv, reserved, planner.topology, moving=moving, tally=tally, uuids=uuids,
                                   known=known, overlap=overlap, memory=memory, starts=start_sizes.read(ledger.db))
        request = sized(functools.partial(start_free, hv, reserved, moving, known, overlap, memory))
        # (as once the builds under way have landed: the start itself waits for them)
        return request, dma_zone.place(planner, loads, request, builds_landed=True), None, loads
    executor = Executor(hv, ledger.db)
    upkeep.reconcile(hv, ledger, executor)  # memory already landed is not counted twice
    key = vm or new_vm_key()
    starts = start_sizes.read(ledger.db)
    last: Optional[NoCapacity] = None
    waiting_until, attempt = time.monotonic() + BUILDS_WAIT, 0
    while attempt < ATTEMPTS:
        caps = hv.capabilities()
        reserved, moving, memory = ledger.outstanding(exclude=key), _moving(hv, ledger), hv.node_memory()
        known = observe.known_node_claims(hv, ledger, caps)
        overlap = observe.claims_overlap(hv, ledger, exclude=key, caps=caps)
        loads = node_loads(hv, reserved, planner.topology, moving=moving, tally=tally, known=known,
                           overlap=overlap, memory=memory, starts=starts)
        request = sized(functools.partial(start_free, hv, reserved, moving, known, overlap, memory))
        try:
            placement = dma_zone.place(planner, loads, request)
        except RoomReserved:
            if time.monotonic() >= waiting_until:
                raise
            time.sleep(BUILDS_POLL)  # the builds under way land (or fail) meanwhile
            upkeep.reconcile(hv, ledger, executor)
            continue
        attempt += 1
        started = request.memory if planner.fits_a_node(request) else 0  # (the size as this read sized it)
        try:
            executor.apply([Reserve(key, placement.bytes_per_node, ttl, owner=owner,
                                    zones=dma_zone.takes_zones(loads, placement), started=started)])
        except NoCapacity as err:
            last = err  # another start got there first: plan again with fresh numbers (its target too)
            upkeep.reconcile(hv, ledger, executor)
            continue
        return request, placement, ledger.reservation(key), loads
    raise NoCapacity("could not reserve after {} attempts; last refusal: {}".format(
        ATTEMPTS, last.message if last else "none"), last.params if last else ())


def place_as_if_stopped(hv: Hypervisor, ledger: Optional[Ledger], request: Request, vm: str, domid: int,
                        planner: Optional[Planner] = None) -> Placement:
    """A dry run for the next start of a VM running here now: its own memory counts as
    free and its vCPUs are not counted where they are homed (the plan is for a start
    after it stops, when both are back)."""
    planner = planner or Planner(hv.topology())
    caps = hv.capabilities()
    reserved, overlap = upkeep.held_after_reconcile(hv, ledger, vm, caps=caps) if ledger is not None \
        else ({}, NO_OVERLAP)
    loads = node_loads(hv, reserved, planner.topology, leave_out=domid, moving=_moving(hv, ledger),
                       known=observe.known_node_claims(hv, ledger, caps), overlap=overlap,
                       starts=start_sizes.read(ledger.db) if ledger is not None else NO_STARTS)
    own = hv.node_pages(domid)
    free = [f + (own.get(node, 0) << PAGE_SHIFT) for node, f in enumerate(loads.free)]
    return dma_zone.place(planner, attrs.evolve(loads, free=free), request, builds_landed=True)


def _moving(hv: Hypervisor, ledger: Optional[Ledger]) -> Dict[int, int]:
    """Pages per node running memory moves have yet to bring (what reserve refuses to promise)."""
    return MoveJournal.of_host(ledger.db, hv).pending() if ledger is not None else {}


def new_vm_key() -> str:
    return "adhoc-{}".format(uuid4_text(os.urandom(16)))
