"""Reservations of memory for VMs that are starting, and how they follow the build (pure).

A reservation holds bytes per node for a VM between ``place`` and the end of
its build, so that parallel starts never count the same free memory twice.
As the domain's pages land, :func:`plan_reconcile` says what to do with it:

* the build is over (the domain runs, or all its memory is there): release it
  (and cancel claims made for it);
* where the hypervisor has per-node claims, turn it into claims as soon as
  the domain has a page (the hypervisor then protects the memory; the build's
  overhead above the domain's maximum, which no claim of the domain's holds, is out
  of the free memory by then: xenopsd's build_pre and libxl's build_pre allocate
  the shadow/HAP pool, and Xen the per-vCPU memory, before the first guest page);
* otherwise shrink it by what has landed on each node (and, once the domain has a
  page or a claim, by the overhead: out of the free memory by then, as above).

A claimed reservation, or one whose claim call was made (the ledger notes that the
claim is ours before the call, so a process killed right after it leaves the row
saying so), is how the claim gets cancelled when the build ends (a toolstack's own
claim, taken as the build's, is left to the toolstack), so
it never expires with its lease (the ledger keeps it): it goes when the build
is over, or with its domain (the hypervisor drops a domain's claims with it).

The lease and a slow build.  An unclaimed reservation (stock Xen has no per-node
claims, so its rows only shrink) ends with its lease, which is made for a build's
usual length.  A large VM populated slowly, or a slow host, may still be building
when it runs out: dropped then, the row stopped counting memory the domain was about
to take, and a start placed meanwhile was promised it.  So a row whose domain exists,
whose build is not over (:func:`build_over`) and whose pages grew since the last look
(``seen_pages``: what the domain had when its lease was last renewed) keeps its lease:
:func:`plan_reconcile`, given the clock, renews it to a whole lease from now, never
later than :data:`BUILD_LEASE_MAX` after the place (nor the lease itself, if longer).
A build that stops growing (stuck, or its toolstack gone) lapses one lease after its
last growth, as any lease does, and one that grows for ever holds memory no longer
than the cap.  Only reconcile renews (xapi-numad's every cycle, every ``place``): a
lease already run out is never brought back, so with xapi-numad stopped and no
place made, leases end as they always did.
"""
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import attrs

from xapi_numa.core.actions import (CancelClaims, ClaimReservation, ReleaseReservation, RenewLease,
                                    ShrinkReservation)
from xapi_numa.core.boots import of_another_boot
from xapi_numa.core.host import DomainInfo
from xapi_numa.core.units import PAGE_SHIFT

# The longest a build that keeps growing keeps its reservation, from the place (seconds):
# a VM of terabytes populated at a few hundred MiB/s takes most of an hour
BUILD_LEASE_MAX = 3600.0
EARLIER_BOOT = "placed in an earlier boot of the host: its build and claims went with it"


@attrs.frozen
class Reservation:
    vm: str
    created: float
    expires: float
    claimed: bool
    nodes: Mapping[int, int]                              # outstanding bytes per node
    initial: Mapping[int, int] = attrs.field(factory=dict)  # bytes per node when reserved
    owner: str = ""                                       # who made it (a token: only the owner releases it)
    claim_ours: bool = False                              # the domain's claim is (or may be) one we made
    lease: float = 0.0                                    # the lease's length as placed (0: expires - created)
    seen_pages: int = 0                                   # the domain's pages when the lease was last renewed
    boot: str = ""                                        # the host's boot id when placed ("": not known)

    @property
    def ttl(self) -> float:
        return self.lease if self.lease > 0 else self.expires - self.created

    def to_dict(self) -> dict:
        return {"vm": self.vm, "created": self.created, "expires": self.expires, "claimed": self.claimed,
                "nodes": {str(n): b for n, b in sorted(self.nodes.items())},
                "total": sum(self.nodes.values()), "owner": self.owner}


def plan_reconcile(reservations: Sequence[Reservation], domains: Mapping[str, DomainInfo],
                   pages: Mapping[int, Mapping[int, int]], node_claims: bool,
                   now: Optional[float] = None, boot: str = "") -> List[object]:
    """Actions that bring reservations in line with the domains being built.

    ``domains`` by UUID; ``pages`` per domid (a domain missing there is skipped:
    it went away during the read).  ``now``: the ledger's clock, for the leases of
    builds still growing (:func:`renewed`; None: none renewed).  ``boot``: this boot of
    the host's id (:mod:`.boots`): a reservation placed in another is released, its claims
    gone with that boot; a domain of its VM now is another start's, not its build."""
    out: List[object] = []
    for r in reservations:
        if of_another_boot(r.boot, boot):
            out.append(ReleaseReservation(r.vm, r.created, EARLIER_BOOT, r.claimed))
            continue
        d = domains.get(r.vm)
        if d is None and (r.claimed or r.claim_ours):
            out.append(ReleaseReservation(r.vm, r.created, "domain gone", r.claimed))  # its claims went with it
            continue
        if d is None or d.domid not in pages:
            continue  # not built yet; expiry takes care of VMs that never start
        landed = {n: p << PAGE_SHIFT for n, p in pages[d.domid].items()}
        to_come = {n: max(0, b - landed.get(n, 0)) for n, b in r.initial.items()}  # bytes per node
        if build_over(r, d):
            out += ended(r, d, node_claims, "built")
            continue
        if node_claims and not r.claimed and d.memory > 0 and d.max_memory > 0:
            claim = claimable(to_come, d, sum(r.initial.values()))
            out.append(ClaimReservation(r.vm, d.domid, claim, "domain exists", r.created, d.memory >> PAGE_SHIFT,
                                        d.max_memory >> PAGE_SHIFT))
        elif not r.claimed:
            # (also a domain with no page yet: Xen keeps one claim per domain, and a builder that
            # claims for itself (libxl's meminit, xl's default claim_mode) does so before its first
            # page and fails the build if refused, so ours waits for the build to begin and then
            # finds its claim, taken as the build's; and a domain whose maximum is not set yet:
            # Xen has it 0 until the toolstack sets it, and no claim fits under it)
            out.append(ShrinkReservation(r.vm, guest_to_come(to_come, d, r.initial), "pages landed", r.created))
        out += renewed(r, d, now)  # (after the claim: a refused one leaves the row unclaimed, its lease kept)
    return out


def renewed(r: Reservation, d: DomainInfo, now: Optional[float]) -> List[object]:
    """The lease of a row whose build is not over (the caller's to check) renewed if its
    domain grew since the last renewal: a whole lease from ``now``, capped at
    :data:`BUILD_LEASE_MAX` (or the lease, if longer) after the place (or after ``now``,
    should the clock have been stepped back past the place).  Not a claimed row's, nor
    one whose claim call was made: those outlive their lease anyway."""
    seen = d.memory >> PAGE_SHIFT
    if now is None or r.claimed or r.claim_ours or seen <= r.seen_pages or r.expires <= now:
        return []
    until = min(now + r.ttl, min(r.created, now) + max(r.ttl, BUILD_LEASE_MAX))
    if until <= r.expires:
        return []
    return [RenewLease(r.vm, r.created, until, seen, "still being built")]


def guest_to_come(to_come: Mapping[int, int], d: DomainInfo, initial: Mapping[int, int]) -> Dict[int, int]:
    """What a reservation that shrinks (no claim) still holds per node: ``to_come`` (bytes),
    less the build's overhead once the domain has a page.  Both toolstacks allocate the
    overhead before the first guest page, out of the free memory and in no page of the
    domain's, so it is gone from the free figures by then: counted here too, it was counted
    twice until the lease ended.  The overhead is what the reservation holds beyond the
    domain's maximum (a maximum set above the guest's memory leaves less of it to take
    off: never too much); the planner puts an even share of it on each reserved node (its
    round of every node, or its part of a stripe; the chosen node of a round has what the
    others' shares, rounded up, leave it: one page less than the even share, at most, for
    each other node), taken off each as whole pages, rounded down.

    A domain with no page yet but a claim has its overhead allocated too: the claim is the
    toolstack's (ours are made after the first page), and both make it after the overhead
    (xenopsd's build_pre sizes the pool, then its NUMA step claims; libxl's meminit claims
    after build_pre set the pool), just before the guest's first page: counted here too,
    the overhead was counted twice between that claim and the first page."""
    reserved, nodes = sum(initial.values()), len(initial)
    begun = d.memory > 0 or d.claimed > 0  # (neither: the overhead may be still to come too)
    if not begun or d.max_memory <= 0 or reserved <= d.max_memory or not nodes:
        return dict(to_come)
    share = max(0, ((reserved - d.max_memory) >> PAGE_SHIFT) // nodes - (nodes - 1)) << PAGE_SHIFT
    return {node: max(0, nbytes - share) for node, nbytes in to_come.items()}


def claimable(to_come: Mapping[int, int], d: DomainInfo, reserved: int) -> Dict[int, int]:
    """The pages per node still to come (``to_come``: bytes) that the domain can still take:
    Xen refuses a claim that would take it past its maximum (the rest of a reservation, the
    build's overhead outside the domain's pages, is no claim of the domain's), cut from the
    highest node; and no more than ``reserved`` (bytes) less what the domain has, wherever
    its pages landed (those spilled off the reserved nodes are not still to come)."""
    cap = min(d.max_memory, reserved)
    room = max(0, (cap - d.memory) >> PAGE_SHIFT)
    out: Dict[int, int] = {}
    for node in sorted(to_come):
        take = min(to_come[node] >> PAGE_SHIFT, room)
        room -= take
        if take:
            out[node] = take
    return out


def build_over(r: Reservation, d: DomainInfo) -> bool:
    """The domain runs, or all the memory reserved for it that can still come is there:
    the reservation, or the domain's maximum where that is less.  The reservation holds
    the build's overhead too, which is in no page of the domain's (allocated before its
    first page), and Xen gives a domain no page past its maximum: a VM started paused,
    all its guest memory there, never had pages as many as its reservation, so its row
    (holding nothing by then) stayed until its lease ended, or for good once claimed.
    A maximum not set yet (0) is no bound."""
    whole = sum(r.initial.values())
    if d.max_memory > 0:
        whole = min(whole, d.max_memory)
    return (not d.paused) or d.memory >= whole


def ended(r: Reservation, d: DomainInfo, node_claims: bool, reason: str) -> List[object]:
    """That very reservation released, as it was seen (claimed or not), and the leftover
    claim on the domain cancelled with it if we made that claim: one the toolstack made
    for itself, taken as the build's, is the toolstack's to end (it may still be building
    past what we reserved).  A row not marked claimed may have ours too: its process was
    killed right after the claim call (the row says so, written before the call)."""
    cancel = [CancelClaims(d.domid, r.vm, frozenset(r.initial), reason)] if r.claim_ours else []
    return [ReleaseReservation(r.vm, r.created, reason, r.claimed)] + cancel


def plan_settled_release(r: Optional[Reservation], d: DomainInfo, node_claims: bool) -> List[object]:
    """Settling a started VM ends its reservation.  A claimed one goes only once the
    build is over; before that it stays for reconcile (the claims still protect the
    memory the build is taking)."""
    if r is None or ((r.claimed or r.claim_ours) and not build_over(r, d)):
        return []
    return ended(r, d, node_claims, "settled")


def outstanding(reservations: Iterable[Reservation], actions: Sequence[object] = (),
                now: Optional[float] = None) -> Dict[int, int]:
    """Bytes reserved per node, as they would be after ``actions`` (a dry run's view).

    A reservation about to become a claim still counts, as the claim's bytes and what
    the claim cannot hold: the free figures a dry run reads do not have that claim
    taken off yet."""
    totals: Dict[int, int] = {}
    for _, held in _held_after(reservations, actions, now):
        for node, nbytes in held.items():
            totals[node] = totals.get(node, 0) + nbytes
    return totals


@attrs.frozen
class ClaimOverlap:
    """Bytes the reservations hold that their domains' own claims hold back too (a toolstack's,
    for the VM a row is for), to be counted once: ``host_wide``, of claims on no node (or
    whose node is not read), which the host's total counts; ``nodes``, of claims seen on a
    node, per node, which that node's claimed memory counts."""

    host_wide: int = 0
    nodes: Mapping[int, int] = attrs.field(factory=dict)


NO_OVERLAP = ClaimOverlap()


def claims_overlap(reservations: Iterable[Reservation], domains: Mapping[str, DomainInfo],
                   actions: Sequence[object] = (), now: Optional[float] = None,
                   on_nodes: bool = False) -> ClaimOverlap:
    """What the reservations (as after ``actions``) hold that their domains' own claims hold
    back too: a toolstack claims its domain's guest pages (xenopsd's NUMA step, libxl's
    meminit) while the row, not marked claimed, still holds what is to come.  The claim is
    told from ours by the row: a row whose claim is ours (marked claimed: it keeps only what
    the claim cannot hold; or whose claim call was made) is not counted.  The domain's
    handle is the row's VM (``domains`` by UUID: a reserved VM with no domain there has no
    claim), and Xen keeps one claim per domain, so any claim it has is the toolstack's for
    that very build.

    Where the hypervisor says which node the claim is on (``on_nodes``, and the domain's
    ``claim_node``), Xen takes it off that node's free memory as the row does: the node is
    to count the two once, the more of them, so the overlap is the less of the claim and
    what the row holds on that node (a row striped over more nodes keeps the rest).  A claim
    on no node (stock Xen's), or one whose node is not read (the Xen adapter on XenServer's
    patched Xen), Xen takes off the host's total (``outstanding_pages``) but off no node's
    free memory: the row alone keeps its nodes' pages, and the host's total is to count the
    less of the claim and the row's whole once."""
    rows = [r for r in reservations if not (r.claimed or r.claim_ours)]
    host_wide = 0
    nodes: Dict[int, int] = {}
    for vm, held in _held_after(rows, actions, now):
        d = domains.get(vm)
        if d is None or d.claimed <= 0:
            continue
        if on_nodes and d.claim_node is not None:
            nodes[d.claim_node] = nodes.get(d.claim_node, 0) + min(d.claimed, held.get(d.claim_node, 0))
        else:
            host_wide += min(d.claimed, sum(held.values()))
    return ClaimOverlap(host_wide, {node: nbytes for node, nbytes in nodes.items() if nbytes})


def _held_after(reservations: Iterable[Reservation], actions: Sequence[object],
                now: Optional[float]) -> List[Tuple[str, Mapping[int, int]]]:
    """(VM, bytes per node its reservation holds after ``actions``) of those still held."""
    released = {a.vm for a in actions if isinstance(a, ReleaseReservation)}
    shrunk = {a.vm: a.outstanding for a in actions if isinstance(a, ShrinkReservation)}
    to_claim = {a.vm: claim_bytes(a) for a in actions if isinstance(a, ClaimReservation)}
    for a in actions:
        if isinstance(a, ClaimReservation):
            for node, nbytes in a.unclaimed.items():
                to_claim[a.vm][node] = to_claim[a.vm].get(node, 0) + nbytes
    out: List[Tuple[str, Mapping[int, int]]] = []
    for r in reservations:
        if r.vm in released or (now is not None and r.expires <= now and not (r.claimed or r.claim_ours)):
            continue
        out.append((r.vm, to_claim.get(r.vm, shrunk.get(r.vm, r.nodes))))
    return out


def claim_bytes(claim: ClaimReservation) -> Dict[int, int]:
    return {node: pages << PAGE_SHIFT for node, pages in claim.pages_per_node.items()}
