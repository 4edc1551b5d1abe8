"""What the planners decide: typed actions, and nothing that performs them.

Every planner is ``plan(snapshot, state) -> [Action]``; one executor
(:mod:`xapi_numa.ops.executor`) applies actions, journals the ones that must
survive a crash, backs off from refusals, rate-limits writes and answers
"what would you do now" in dry-run mode.  Each action carries the VM's UUID
(domids are reused) and the reason a person reads in logs and dry runs.
"""
from typing import FrozenSet, Mapping, Optional, Union

import attrs


@attrs.frozen
class SetAffinity:
    """Set a vCPU's hard and/or soft affinity (``None`` leaves that one alone)."""

    domid: int
    uuid: str
    vcpu: int
    hard: Optional[FrozenSet[int]] = None
    soft: Optional[FrozenSet[int]] = None
    reason: str = ""


@attrs.frozen
class PinTemporarily:
    """Restrict a vCPU's hard affinity to ``cpus`` until it is home; journalled before
    it is made, so that a crash in between still gets ``original_hard`` back."""

    domid: int
    uuid: str
    vcpu: int
    cpus: FrozenSet[int]
    original_hard: FrozenSet[int]
    reason: str = ""


@attrs.frozen
class RestorePin:
    """Undo a temporary pin: put ``hard`` back (unless ``domid`` is None: the domain is
    gone, or the admin changed the affinity since) and drop the journal entry."""

    domid: Optional[int]
    uuid: str
    vcpu: int
    hard: Optional[FrozenSet[int]]
    reason: str = ""


@attrs.frozen
class SetNodeAffinity:
    """Where Xen allocates the domain's future memory (``None``: automatic)."""

    domid: int
    uuid: str
    nodes: Optional[FrozenSet[int]]
    reason: str = ""


@attrs.frozen
class Reserve:
    """Reserve memory per node for a VM about to start (checked against free memory
    inside the ledger's transaction)."""

    vm: str
    bytes_per_node: Mapping[int, int]
    ttl: float
    owner: str = ""  # a token: only its owner may release this reservation
    reason: str = ""
    # checked against the nodes' DMA zones too: only a placement that fits nowhere else takes
    # them (Xen gives them last); any other is checked against the room above them, or a start
    # racing it could be promised a zone its build would never get, and spill
    zones: bool = False
    # the VM's memory, counted in the host's start sizes in the reservation's transaction (what the
    # single-node rule's split risk weighs: core.start_sizes); 0: not counted (it fits no node)
    started: int = 0


@attrs.frozen
class ReleaseReservation:
    """Drop a VM's reservation; with ``created``, only that very reservation, and with
    ``claimed``, only while it is (or is not) claimed, as the plan saw it."""

    vm: str
    created: Optional[float] = None
    reason: str = ""
    claimed: Optional[bool] = None


@attrs.frozen
class ShrinkReservation:
    """What is still outstanding per node, as the VM's pages land; ``created``: of that very
    reservation (None: whichever the VM has)."""

    vm: str
    outstanding: Mapping[int, int]
    reason: str = ""
    created: Optional[float] = None


@attrs.frozen
class RenewLease:
    """A reservation whose domain is still being built, and grew since the last look,
    keeps its lease: until ``expires`` (never shortened), its domain then having had
    ``seen_pages``.  Only that very reservation (``created``)."""

    vm: str
    created: float
    expires: float
    seen_pages: int
    reason: str = ""


@attrs.frozen
class ClaimReservation:
    """Turn a reservation into the domain's claim for the pages its build still needs
    (``pages_per_node``); the reservation then counts only what the claim cannot hold
    (``unclaimed``, bytes per node; reconcile leaves it empty: the build's overhead above
    the domain's maximum is allocated before the domain's first page, so it is out of
    the free memory by the time a claim is made, and counting it too counted it twice).
    Xen keeps one claim per domain, on one node or host-wide, and takes the domain's
    total as its argument: ``domain_pages`` (what the domain had when planned) plus what
    is still needed, never above ``max_pages``."""

    vm: str
    domid: int
    pages_per_node: Mapping[int, int]
    reason: str = ""
    created: Optional[float] = None  # that very reservation (gone meanwhile: the claim is cancelled)
    domain_pages: int = 0
    max_pages: Optional[int] = None
    unclaimed: Mapping[int, int] = attrs.field(factory=dict)


@attrs.frozen
class CancelClaims:
    """Cancel a domain's claim (its build is over): one host-wide claim of 0, which ends
    the domain's one claim wherever it is (``nodes``: where the reservation was)."""

    domid: int
    uuid: str
    nodes: FrozenSet[int]
    reason: str = ""


@attrs.frozen
class MoveMemory:
    """Move (part of) a running VM's memory to node ``to`` with the page mover (or, with
    ``vnode``, one whole vnode of a vNUMA guest)."""

    domid: int
    uuid: str
    to: int
    max_pages: Optional[int] = None
    rate: Optional[float] = None  # bytes/s
    skip: int = 0                 # movable gfns to leave alone first (moved by an earlier step)
    reason: str = ""
    vnode: Optional[int] = None   # a vNUMA guest: exactly this vnode's ranges, whole (no max, no skip),
                                  # its new pnode recorded with the hypervisor once every page moved


@attrs.frozen
class SetThreadAffinity:
    """Allow a dom0 thread doing a guest's backend work only on these dom0 vCPUs; ``name``
    and ``starttime`` identify the thread, so a reused tid is never touched."""

    domid: int
    uuid: str
    tid: int
    name: str
    starttime: int
    cpus: FrozenSet[int]
    reason: str = ""
    # the mask it had when the plan read it, if this write moves it off that: journalled with
    # the write, as a thread born to it meanwhile has it (Linux: its creator's)
    moved_from: Optional[FrozenSet[int]] = None


@attrs.frozen
class SetIrqAffinity:
    """Deliver a guest's backend event-channel IRQ only to these dom0 vCPUs (``name``
    identifies it: an IRQ number freed and reused by another device is never touched)."""

    domid: int
    uuid: str
    irq: int
    name: str
    cpus: FrozenSet[int]
    reason: str = ""


@attrs.frozen
class RestoreBackendAffinity:
    """Hand back a thread or IRQ we aligned: ``cpus`` is dom0's default for it, or None
    when it is gone and only our journal entry (and irqbalance ban) is left to drop."""

    uuid: str
    kind: str  # "thread" or "irq"
    ident: int
    name: str
    starttime: int
    cpus: Optional[FrozenSet[int]]
    reason: str = ""


@attrs.frozen
class ForgetBackendAffinity:
    """Drop our journal entry for a thread whose mask someone else set since ours: it is
    theirs, and no hand-back may overwrite it.  Nothing is written to dom0."""

    uuid: str
    kind: str  # "thread"
    ident: int
    name: str
    starttime: int
    reason: str = ""


Action = Union[SetAffinity, PinTemporarily, RestorePin, SetNodeAffinity, Reserve, ReleaseReservation,
               ShrinkReservation, RenewLease, ClaimReservation, CancelClaims, MoveMemory, SetThreadAffinity,
               SetIrqAffinity, RestoreBackendAffinity, ForgetBackendAffinity]

# Actions that change a vCPU's or a domain's affinity: the daemon's write budget counts these.
AFFINITY_WRITES = (SetAffinity, PinTemporarily, RestorePin, SetNodeAffinity)


def describe(action: Action) -> dict:
    """A flat, JSON-ready description (dry runs, logs)."""
    out = {"action": type(action).__name__}
    for field in attrs.fields(type(action)):
        value = getattr(action, field.name)
        if isinstance(value, frozenset):
            value = sorted(value)
        elif isinstance(value, Mapping):
            value = {str(k): v for k, v in sorted(value.items())}
        out[field.name] = value
    return out
