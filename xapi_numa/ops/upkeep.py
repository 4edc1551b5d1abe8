"""Keeping the state in line with the host: reservations follow the builds, dead
page movers are recovered, expired leases go, and the lock files of VMs long gone.
Used by xapi-numad every cycle and by every ``place`` before it plans."""
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from xapi_numa.core import reservation
from xapi_numa.core.host import DomainInfo
from xapi_numa.core.live_domains import LiveDomains
from xapi_numa.errors import NumaError
from xapi_numa.ops import observe
from xapi_numa.ops.executor import Executor, Outcome
from xapi_numa.ports.hypervisor import Capabilities, Hypervisor
from xapi_numa.state import locks
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import MoveJournal


def plan_reconcile(hv: Hypervisor, reservations: Sequence[reservation.Reservation],
                   uuids: Optional[LiveDomains] = None,
                   domains: Optional[Mapping[str, DomainInfo]] = None, now: Optional[float] = None,
                   caps: Optional[Capabilities] = None) -> List[object]:
    """Read the domains of the reserved VMs (found in ``uuids``, the live domains read
    just now, or read here; ``domains``: theirs, read already) and ask the pure planner
    what to do (``now``: the ledger's clock, to renew the leases of builds still
    growing; ``caps``: the hypervisor's capabilities, read already).  Only the reserved
    VMs' records are read: on a host of a thousand domains a start makes this read for a
    few of them."""
    if not reservations:
        return []
    domains = observe.reserved_domains(hv, reservations, uuids) if domains is None else domains
    pages: Dict[int, Mapping[int, int]] = {}
    for d in domains.values():
        try:
            pages[d.domid] = hv.node_pages(d.domid)
        except NumaError:
            continue  # the domain went away between the two reads
    caps = hv.capabilities() if caps is None else caps
    return reservation.plan_reconcile(reservations, domains, pages, caps.node_claims, now, hv.boot_id())


def reconcile(hv: Hypervisor, ledger: Ledger, executor: Executor) -> List[Outcome]:
    return executor.apply(plan_reconcile(hv, ledger.reservations(), now=ledger.clock()))


def forget_vm_locks(ledger: Ledger, moves: MoveJournal, alive: Iterable[str]) -> int:
    """Remove the per-VM lock files (nobody holding them) of VMs with no domain here (``alive``:
    the UUIDs of the last snapshot), no memory-move row and no reservation: one file per VM ever
    placed or moved here stayed for good (thousands a day on a host starting new VMs), while the
    rows of the same VMs went.  How many went."""
    if ledger.db.in_memory:
        return 0
    keep = set(alive) | {row.uuid for row in moves.rows()} | {r.vm for r in ledger.reservations()}
    return locks.forget_vm_locks(ledger.db.path, keep.__contains__)


def release_asked(hv: Hypervisor, ledger: Ledger, vm: str) -> bool:
    """A release a person asked for (CLI, plugin): reconciled first, so that the claimed
    row of a build that failed, its domain gone, is no obstacle; that of a build still
    going is refused (:meth:`Ledger.release`).  True if there was a reservation."""
    reconcile(hv, ledger, Executor(hv, ledger.db))
    return ledger.release(vm)


def held_after_reconcile(hv: Hypervisor, ledger: Ledger, exclude: Optional[str] = None,
                         uuids: Optional[LiveDomains] = None,
                         caps: Optional[Capabilities] = None) -> Tuple[Dict[int, int], reservation.ClaimOverlap]:
    """Reserved bytes per node as a reconcile would leave them, changing nothing (what a
    dry run counts), without ``exclude``'s own reservation; and what of them the reserved
    domains' own claims hold back too (:func:`observe.claims_overlap`): what the claims' nodes,
    or the host's total, are to count once.  ``uuids``: the live domains, read just now
    (domid -> UUID); ``caps``: the hypervisor's capabilities, read already (else read here,
    once)."""
    live = hv.domain_uuids() if uuids is None else uuids
    caps = hv.capabilities() if caps is None else caps
    # only a reservation whose VM has a domain can be changed by a reconcile, or a claimed one
    # (released once its domain is gone, with what its claim could not hold), or one of an earlier boot
    now = ledger.clock()
    totals, building = ledger.totals_and_reservations_of(live.alive, exclude, now, hv.boot_id())
    domains = observe.reserved_domains(hv, building, live)
    plan = plan_reconcile(hv, building, live, domains, caps=caps)
    as_read = reservation.outstanding(building, (), now)
    after = reservation.outstanding(building, plan, now)
    for node in set(as_read) | set(after):
        totals[node] = totals.get(node, 0) - as_read.get(node, 0) + after.get(node, 0)
    return totals, observe.claims_overlap(hv, ledger, building, domains, plan, now, caps=caps)


def reservation_changes(outcomes: Sequence[Outcome]) -> Dict[str, str]:
    """vm -> what reconciling did to its reservation (for reports and logs)."""
    out: Dict[str, str] = {}
    for o in outcomes:
        vm = getattr(o.action, "vm", None) or getattr(o.action, "uuid", "")
        kind = type(o.action).__name__
        text = {"ReleaseReservation": "{}: released".format(getattr(o.action, "reason", "")),
                "ClaimReservation": "claimed", "ShrinkReservation": "shrunk", "RenewLease": "lease renewed",
                "CancelClaims": "claims cancelled"}.get(kind, kind)
        if o.status != "done":
            text = "{}: {}".format(text, o.status) if kind != "ClaimReservation" else \
                "claim not made: {}".format(o.detail)  # refused (reservation kept), or domain/reservation gone
        out.setdefault(vm, text)
    return out
