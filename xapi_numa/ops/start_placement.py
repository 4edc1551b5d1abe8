"""Placing a halted VM for its start on this host, as the plugin's ``place`` does.

Read the VM's record from xapi, decide and reserve (:mod:`.reserve`), then pin
the boot (:mod:`.boot_pin`); or release a start that did not happen.  Two
callers placing (or releasing) the same VM at once are serialised by a per-VM
lock on this host and by the VM's owner key across hosts, and each
reservation carries its caller's owner token: a caller whose later step fails
releases only its own reservation, never one another caller made meanwhile.
While a pool vm-start holds the VM (:mod:`.start_hold`), a place or release not its
own is refused (a release with ``force`` goes on): it would undo that start's place.
The owner token names the process holding the VM (:mod:`xapi_numa.core.owner_token`):
a caller that died (killed mid-place) is passed over at once by a caller on its
host, which sees its process gone, and by one on another host once its hold
(OWNER_TTL, on the pool master's clock) is up.  A caller alive but slow past its
hold may be taken over as a dead one wherever the next caller runs: it checks
that it still holds the VM before each write to its record and before
reserving, and once taken over writes nothing more (:func:`still_owning`).
A place also has a budget of its own (PLACE_BUDGET, from its start), checked at
the same points: past it, it writes nothing more, gives back its reservation,
puts back what it wrote and fails with ``NUMA_HOST_TIMEOUT`` (:func:`in_budget`).

The admin's own hard affinity (``VCPUs_params:mask``) and the host's guest mask
(``guest_VCPUs_params:mask``) bound the placement (:mod:`.place_request`), a
what-if's too (:func:`.place_answer.place_what_if`): only nodes they reach are candidates, the
boot pin stays inside them, and a VM whose masks leave no room is refused with
``NUMA_NO_CAPACITY``.
"""
import contextlib
import functools
import os
import time
from typing import Callable, FrozenSet, Iterator, Optional, Tuple

from xapi_numa.backends import process_identity, xapi, xapi_owner_key, xapi_time
from xapi_numa.core import owner_token as owner_tokens
from xapi_numa.core.host import uuid4_text
from xapi_numa.core.owner_token import Holder
from xapi_numa.core.placement import Planner
from xapi_numa.core.topology import Topology
from xapi_numa.core.vcpu_cpus import vcpu_cpus
from xapi_numa.core.vcpu_mask import VcpuMask
from xapi_numa.errors import HostTimeout, InvalidArgument, NumaError, VmBusy
from xapi_numa.ops import boot_pin, reserve, start_hold, upkeep
from xapi_numa.ops.place_answer import describe
from xapi_numa.ops.place_request import (admin_mask, domain_type_of, host_mask, never_starts, not_a_control_domain,
                                         start_request, start_sizing)
from xapi_numa.ops.plugin_words import DRY_RUN_SAID, FORCE_SAID
from xapi_numa.ops.reserve import place_sized
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.locks import PLACE, vm_lock


# xapi's operations during which the VM is being built from its VCPUs_params: the pin
# must stay (settling the started VM undoes it)
STARTING_OPERATIONS = {"start", "start_on", "resume", "resume_on"}
OWNER_KEY = "numa_place_owner"  # other_config: the token of whoever is placing the VM now
# A place or release takes seconds: an owner token older than this was left by a
# caller that died (killed mid-place), or one hung, and the next caller takes the VM over
# (on the host of one that died, it does at once: it sees the process gone).
OWNER_TTL = 120.0
# How long a place, a release or a policy change waits for another one of the same VM on
# this host (they take seconds): one held longer is stuck (a hung hypervisor or xapi call),
# and the caller is told so in time, not after its own deadline (a pool's PLACE_TIMEOUT)
PLACE_LOCK_WAIT = 60.0
# A place's whole budget, from its start on this host's clock (xapi runs each plugin call in
# a process of its own, and no deadline reaches it).  A pool start waits xapi.PLACE_TIMEOUT for
# the answer, then passes the host over; its release of the VM there is refused while the place
# still holds it, so a place that went on would leave its pin and reservation for nothing.  Past
# its budget a place writes nothing more, gives back its reservation and puts back what it wrote.
# Above PLACE_LOCK_WAIT (a place behind a stuck one is refused first, naming the lock); at most
# OWNER_TTL (a place never outlives its hold); below PLACE_TIMEOUT by more than one xapi write
# under way at the deadline (xapi.CALL_TIMEOUT) and the put back of the pin.
PLACE_BUDGET = 100.0


def boot_mask(record: dict, topo: Topology, nodes, host_cpus: Optional[FrozenSet[int]] = None) -> VcpuMask:
    """The boot pin: each vCPU on the chosen nodes' CPUs its own admin mask allows
    (the mask's CPUs there if its own has none there, as settling does); without an
    admin mask, every vCPU on the chosen nodes.  Within the host's guest mask, if it
    has one (xapi narrows the pin to it at the start: the pin says what the VM gets).
    (:func:`~xapi_numa.core.vcpu_cpus.vcpu_cpus`, which the answer's CPUs come from too.)"""
    return vcpu_cpus(topo, nodes, host_cpus, admin_mask(record))


def place_vm(hv: Hypervisor, ledger: Ledger, session, uuid: str, dry_run: bool = False,
             host_uuid: Optional[str] = None, start_owner: Optional[str] = None) -> dict:
    """Reserve for a start here and pin the boot; ``host_uuid`` (this host) goes into
    the VM's record with the pin, so that only this host's ``release`` undoes it.
    While a pool vm-start holds the VM, only its own place (``start_owner``, its token) is made."""
    deadline = time.monotonic() + PLACE_BUDGET
    vm = xapi.vm_ref(session, uuid)
    planner = Planner(hv.topology())
    host_cpus = host_mask(session, host_uuid)
    # a VM that cannot be placed (its state, policy or mask) is refused before anything is written
    record = startable(xapi.vm_record(session, vm), uuid, dry_run)
    if dry_run:  # (its start target sized from its planner's own read of the host: reserve.place_sized)
        request, *placed = place_sized(hv, ledger, start_sizing(session, record, planner.topology, host_cpus,
                                                                host_uuid), uuid, dry_run=True, planner=planner)
        return describe(planner, *placed, host_cpus=host_cpus, mask=admin_mask(record),
                        dtype=domain_type_of(record), target=request.memory, vm=uuid)
    # its policy, masks and start target refused before the hold: the vGPUs change none of them (the
    # video RAM only), and are read once, while holding the VM (a read before it may be stale)
    free = functools.partial(reserve.host_free, hv, ledger, uuid)  # (read only for a VM with a balloon range)
    start_request(session, record, planner.topology, host_cpus, free, host_uuid, vgpu=False)
    checked = functools.partial(startable, uuid=uuid, dry_run=dry_run)
    with placing(ledger, session, vm, uuid, start_owner, checked, host_uuid) as (owner, record):
        owned = functools.partial(still_owning, session, vm, uuid, owner)

        def held() -> None:  # checked before reserving and before each write to the VM's record
            in_budget(uuid, deadline)
            owned()
        sizing = start_sizing(session, record, planner.topology, host_cpus, host_uuid)
        held()  # (the start target sized again from each read of the host its planner makes: another start's meanwhile)
        request, placement, reservation, loads = place_sized(hv, ledger, sizing, uuid, planner=planner, owner=owner)
        try:
            boot_pin.pin_boot(session, vm, record, placement.nodes,
                              boot_mask(record, planner.topology, placement.nodes, host_cpus), host_uuid, held)
            held()  # taken over (or out of time) during the last write: this place is not the one that counts
        except BaseException:
            ledger.release(uuid, owner=owner)  # ours only: never a reservation someone else made
            _put_back(session, vm, record, owned)  # (past the budget too: what it wrote is its own to undo)
            raise
    return describe(planner, placement, reservation, loads, host_cpus=host_cpus, mask=admin_mask(record),
                    dtype=domain_type_of(record), target=request.memory, vm=uuid)


@contextlib.contextmanager
def placing(ledger: Ledger, session, vm: str, uuid: str, start_owner: Optional[str] = None,
            startable: Callable[[dict], dict] = lambda record: record,
            host_uuid: Optional[str] = None, force_said: str = FORCE_SAID) -> Iterator[Tuple[str, dict]]:
    """Hold the VM for a place (:func:`owning`), then read its record again (a caller that held it
    before, a release, a place or a policy change, may have changed what an earlier read saw),
    check it (``startable``, then :func:`not_taken`: refused while a pool vm-start other than
    ``start_owner``'s holds it, or another host than ``host_uuid`` placed it, ``force_said`` as
    for :func:`not_placed_elsewhere`); yields the owner token and the record.  The plugin's place
    (:func:`place_vm`) and the CLI's ``place --vm`` both place through it."""
    with owning(ledger, session, vm, uuid) as owner:
        record = startable(xapi.vm_record(session, vm))
        not_taken(session, record, uuid, start_owner, host_uuid, force_said)
        yield owner, record


def check_place(hv: Hypervisor, ledger: Ledger, session, uuid: str, host_uuid: Optional[str] = None,
                start_owner: Optional[str] = None) -> None:
    """Raise what :func:`place_vm` would refuse (its state, its policy and masks, a pool vm-start
    other than ``start_owner``'s holding it, another host's place of it, no room), in the same
    order and with the same errors, on ``ledger`` (the empty one in memory of a host with no state
    database yet: a refusal there makes none), reserving nothing and holding nothing: a dry run
    of the place, on the record as read now."""
    planner = Planner(hv.topology())
    host_cpus = host_mask(session, host_uuid)
    record = startable(xapi.vm_record(session, xapi.vm_ref(session, uuid)), uuid, False)
    sizing = start_sizing(session, record, planner.topology, host_cpus, host_uuid)
    sizing(functools.partial(reserve.host_free, hv, ledger, uuid))  # (its target refused first, as place_vm's)
    not_taken(session, record, uuid, start_owner, host_uuid)
    reserve.place_sized(hv, ledger, sizing, uuid, dry_run=True, planner=planner)


def not_taken(session, record: dict, uuid: str, start_owner: Optional[str], host_uuid: Optional[str],
              force_said: str = FORCE_SAID) -> None:
    """Refuse a place of the VM while a pool vm-start other than ``start_owner``'s holds it (it
    would overwrite that start's place), or one another host than ``host_uuid`` (this one) made
    stands (:func:`not_placed_elsewhere`): :func:`placing`'s checks of the record it read while holding the VM,
    made first by :func:`check_place` and the CLI's first place on a host (no state database yet)."""
    starting = start_hold.other_start(record["other_config"], uuid, lambda: xapi_time.pool_time(session),
                                      start_owner)
    if starting is not None:
        raise start_hold.refuse_by_hand(uuid, "place", starting, xapi_time.pool_time(session))
    not_placed_elsewhere(session, record, uuid, host_uuid, force_said)


def check_release(session, uuid: str, force: bool = False, start_owner: Optional[str] = None) -> None:
    """Raise what :func:`release_vm` would refuse before it holds the VM (a VM xapi does not
    know; a pool vm-start other than ``start_owner``'s holding it, unless ``force``), changing
    nothing: for a host with no state database yet, where a refusal makes none."""
    vm = xapi.vm_ref(session, uuid)
    start_hold.release_checked(xapi.call(session.xenapi.VM.get_other_config, vm), uuid,
                               lambda: xapi_time.pool_time(session), start_owner, force)


def startable(record: dict, uuid: str, dry_run: bool, dry_run_said: str = DRY_RUN_SAID) -> dict:
    """The record, if ``place`` may reserve for this VM's start (any VM but a control domain for a dry run):
    the plugin's place and the CLI's ``place --vm`` check it (``dry_run_said``: how the caller asks for a
    dry run, which a refusal offers)."""
    not_a_control_domain(record, uuid)
    if dry_run:
        return record
    kind = never_starts(record)
    if kind:  # xapi never starts one: a pin would only be copied into its clones
        raise InvalidArgument("vm", "{} is a {}; place reserves for a start".format(uuid, kind),
                              "a VM that can start (place its clone), or " + dry_run_said)
    if record["power_state"] != "Halted":
        raise InvalidArgument("vm", "VM {} is {}; place reserves for a start".format(uuid, record["power_state"]),
                              "a Halted VM, or " + dry_run_said)
    starting = sorted(STARTING_OPERATIONS & set(record.get("current_operations", {}).values()))
    if starting:  # (still Halted while xapi builds it) the build uses this VM's reservation and pin
        raise VmBusy("VM {} is being started by xapi ({}): its build uses the reservation and boot pin it has; "
                     "place it again once the start has failed or the VM has stopped".format(uuid, starting[0]),
                     ("vm", uuid))
    return record


def not_placed_elsewhere(session, record: dict, uuid: str, host_uuid: Optional[str],
                         force_said: str = FORCE_SAID) -> None:
    """A VM another host of the pool placed keeps that host's reservation until it is
    released there: a second place here (``host_uuid``: this host), the plugin's or the CLI's,
    would leave it behind, holding that host's memory for nothing until its lease ends.
    ``force_said``: how the caller's user releases it here (the plugin's release argument)."""
    placer = boot_pin.placing_host(record["other_config"])
    if placer is not None and placer != host_uuid and xapi.host_known(session, placer):
        raise VmBusy("VM {} is placed by host {} (its reservation is there): release it there first, or here with "
                     "{} if that host is down".format(uuid, placer, force_said), ("vm", uuid, placer))


def _put_back(session, vm: str, record: dict, held: boot_pin.Guard) -> None:
    """A pin written in part (xapi refused a later write) must not stay: the VM's mask
    and pin keys go back to what this place found (an earlier place's pin included),
    unless another caller took the VM over (``held`` raises): they are its now.
    Best effort: the first failure is the one the caller reports."""
    try:
        held()
        xapi.set_vcpus_param(session, vm, "mask", record.get("VCPUs_params", {}).get("mask"))
        boot_pin.write_pin_keys(session, vm, record.get("other_config", {}), held)
    except NumaError:
        pass


def owner_token(now: float, identify: Callable[[], Optional[Holder]] = process_identity.this_process,
                vm: Optional[str] = None) -> str:
    """A caller's owner token (:mod:`xapi_numa.core.owner_token`) of the VM of UUID ``vm``:
    unique, naming the process that holds it (``identify``), with the time after which it
    counts as left by a caller that died."""
    return owner_tokens.make(uuid4_text(os.urandom(16)), now + OWNER_TTL, identify(), vm=vm)


def owner_token_stale(token: str, now: float, gone: owner_tokens.Gone = process_identity.gone,
                      vm: Optional[str] = None) -> bool:
    """Does ``token``, on the VM of UUID ``vm``, hold it no more?  It was written for another
    VM (copied with a clone's or a snapshot's other_config), or left by a caller that died:
    its time is up (one without a readable time, an older version's or set by hand, counts
    as such too: nothing would ever remove it), or it names a process of this machine's boot
    that is gone (``gone``)."""
    return owner_tokens.stale(token, now, OWNER_TTL, gone, vm)


def in_budget(uuid: str, deadline: float) -> None:
    """Refuse to go on past a place's ``deadline`` (``time.monotonic``: PLACE_BUDGET from its start)."""
    if time.monotonic() > deadline:
        raise HostTimeout("VM {}: its place on this host ran past its {:g} s budget (slow xapi or hypervisor calls "
                          "here), so it stopped before a pool start stops waiting for it: it wrote nothing more, "
                          "gave back what it reserved here and put the VM's mask and pin keys back as it found "
                          "them; try again, or another host".format(uuid, PLACE_BUDGET), ("vm", uuid, "place budget"))


def still_owning(session, vm: str, uuid: str, owner: str, gone: owner_tokens.Gone = process_identity.gone) -> None:
    """Refuse to go on unless ``owner`` still holds the VM.  A caller slow past
    OWNER_TTL (hung xapi calls) counts as dead: another may take the VM over and
    change it, and from then on this one must write nothing more to it.  (xapi has
    no conditional write: one already under way when the VM is taken over still lands.)
    ``gone``: as for :func:`owner_token_stale` (this process, which holds ``owner``, is not)."""
    # (a key above ours is a takeover only once ours is stale: else a caller with an old read)
    stale = lambda token: owner_token_stale(token, xapi_time.pool_time(session), gone, uuid)  # noqa: E731
    if not xapi_owner_key.holds_other_config_key(session, vm, OWNER_KEY, owner, stale=stale):
        raise VmBusy("VM {}: another caller (a place, release, settle or policy change) took it over while this "
                     "one ran past its {:.0f} s hold; this one writes nothing more to it, and what it reserved here is "
                     "given back".format(uuid, OWNER_TTL), ("vm", uuid, "taken over"))


@contextlib.contextmanager
def owning(ledger: Ledger, session, vm: str, uuid: str,
           clock: Callable[[object], float] = xapi_time.pool_time, lock_wait: Optional[float] = None,
           gone: owner_tokens.Gone = process_identity.gone) -> Iterator[str]:
    """Hold the VM for a place, a release, a settle or a policy change; yields the owner token.
    ``lock_wait``: how long to wait for this host's lock of the VM (PLACE_LOCK_WAIT by
    default; xapi-numad's auto-settle waits none: its cycle must not stall behind a place,
    it looks again later).

    On this host a per-VM lock serialises them; across hosts, whoever holds the
    VM's owner key in other_config is changing it, and the others refuse cleanly
    (so a release never wipes a pin another host's place is writing).  A key
    left by a caller that died is taken over once its time is up, or at once by
    a caller on the dead one's host, which sees its process gone (``gone``; the
    token names the process: :mod:`xapi_numa.core.owner_token`).  Its time is
    the pool master's (``clock(session)``), never this host's: a member whose
    clock is minutes off (xapi tolerates 5 before an alert) would otherwise
    take a live caller's key for a dead one's, or write one that others do."""
    with place_locked(ledger, uuid, lock_wait):
        owner = owner_token(clock(session), vm=uuid)  # after the wait for the lock: its time is all the caller's
        if not xapi_owner_key.claim_other_config_key(session, vm, OWNER_KEY, owner,
                                           stale=lambda holder: owner_token_stale(holder, clock(session), gone, uuid)):
            raise VmBusy("VM {} is being placed, released, settled or given a policy by another caller right now; try "
                         "again (a caller that died is passed over at once on its own host, and from another host "
                         "once its {:.0f} s hold is up)".format(uuid, OWNER_TTL), ("vm", uuid))
        try:
            yield owner
        finally:
            xapi_owner_key.release_other_config_key(session, vm, OWNER_KEY, owner)


@contextlib.contextmanager
def place_locked(ledger: Ledger, uuid: str, lock_wait: Optional[float] = None) -> Iterator[None]:
    """Hold this host's place lock of the VM (:func:`owning`'s first step), waiting ``lock_wait``
    (PLACE_LOCK_WAIT by default) for it, else refused with NUMA_VM_BUSY naming it; alone, for the
    CLI's place or release of a VM with no xapi to hold it in (none here, or one that does not
    know the VM): a place of it on this host is made before or after it, never across it."""
    lock = vm_lock(ledger.path, PLACE, uuid, create=not ledger.db.in_memory)
    lock_wait = PLACE_LOCK_WAIT if lock_wait is None else lock_wait
    if not lock.acquire_within(lock_wait):
        waited = "waited {:g} s for".format(lock_wait) if lock_wait > 0 else "did not wait for"
        raise VmBusy("VM {}: {} the place lock {} (another place, release, settle or policy change of it on this "
                     "host holds it{}); try again later".format(uuid, waited, lock.path, ", stuck" if lock_wait > 0
                                                                else ""), ("vm", uuid, "place lock"))
    try:
        yield
    finally:
        lock.release()


def release_vm(hv: Hypervisor, ledger: Ledger, session, uuid: str, host_uuid: Optional[str],
               force: bool = False, start_owner: Optional[str] = None) -> dict:
    """Undo this host's ``place`` of a VM whose start did not happen: its reservation
    here, and the boot pin if this host set it.

    A pin another host's ``place`` set stays (that host holds the reservation the
    pin goes with) and the answer names that host, unless the host has left the
    pool (ejected or reinstalled: nothing else could ever undo it) or ``force``.
    While a pool vm-start holds the VM, only its own release (``start_owner``, its token)
    is made, or one with ``force``, whose answer says whose hold it overrode (``start_hold``)."""
    vm = xapi.vm_ref(session, uuid)  # a VM xapi does not know is refused before anything changes
    with releasing(ledger, session, vm, uuid, force, start_owner) as (owner, record, starting):
        answer = _release_owned(hv, ledger, session, vm, uuid, record, host_uuid, force,
                                functools.partial(still_owning, session, vm, uuid, owner))
    return dict(answer, **({"start_hold": start_hold.overridden(starting)} if starting is not None else {}))


@contextlib.contextmanager
def releasing(ledger: Ledger, session, vm: str, uuid: str, force: bool, start_owner: Optional[str] = None,
              force_said: str = FORCE_SAID) -> Iterator[Tuple[str, dict, Optional[str]]]:
    """Hold the VM for a release (:func:`owning`), then apply the start-hold rule to its record
    read while holding it (:func:`start_hold.release_checked`): yields the owner token, the
    record and the token of the start whose place a forced release undoes (None: none holds
    it).  The plugin's release (:func:`release_vm`) and the CLI's both release through it, so a
    pool start's place (which holds the VM too) comes before the rule's read or after the release."""
    with owning(ledger, session, vm, uuid) as owner:
        record = xapi.vm_record(session, vm)
        yield owner, record, start_hold.release_checked(record["other_config"], uuid,
                                                        lambda: xapi_time.pool_time(session), start_owner, force,
                                                        force_said)


def _release_owned(hv: Hypervisor, ledger: Ledger, session, vm: str, uuid: str, record: dict,
                   host_uuid: Optional[str], force: bool, held: boot_pin.Guard) -> dict:
    """:func:`release_vm`'s steps, once it holds the VM (``held`` raises once it no longer does)."""
    placer = boot_pin.placing_host(record["other_config"])
    starting = STARTING_OPERATIONS & set(record.get("current_operations", {}).values())
    if starting and _starting_here(session, record, host_uuid):
        # xapi is building the domain here now: the reservation is what keeps other
        # starts off its memory until the build claims it (settle or reconcile
        # drop it after; if the start fails, it lapses with its lease)
        return {"vm": uuid, "released": False, "reservation": "kept: the VM is starting",
                "boot_pin": "kept", "running_on": None}  # (null while starting, as elsewhere)
    had = upkeep.release_asked(hv, ledger, uuid)  # (starting elsewhere: this host's is for nothing)
    if placer is not None and placer != host_uuid and not force and xapi.host_known(session, placer):
        return {"vm": uuid, "released": had, "boot_pin": "kept", "placed_on": placer}
    if (record["power_state"] in ("Running", "Paused") or starting) and \
            boot_pin.placed_nodes(record["other_config"]):
        # The start happened (or is under way on another host): the domain is built
        # with the pin, which settling it (xapi-numad does, or the plugin's settle)
        # turns into its policy's affinity.
        # Undone here, nothing would settle it and its vCPUs would stay pinned.
        where = record["resident_on"] if record["resident_on"] != "OpaqueRef:NULL" else None
        return {"vm": uuid, "released": had, "boot_pin": "kept",
                "running_on": xapi.call(session.xenapi.host.get_uuid, where) if where else None}
    pinned = boot_pin.restore_boot(session, vm, record, held).pinned
    return {"vm": uuid, "released": had, "boot_pin": "restored" if pinned else "none"}


def _starting_here(session, record: dict, host_uuid: Optional[str]) -> bool:
    """Is xapi starting the VM on this host (``scheduled_to_be_resident_on``)?  Unknown
    counts as here: a reservation kept for nothing lapses with its lease, one dropped
    under a build is memory another start takes."""
    scheduled = record.get("scheduled_to_be_resident_on", "OpaqueRef:NULL")
    if host_uuid is None or scheduled in (None, "", "OpaqueRef:NULL"):
        return True
    return xapi.call(session.xenapi.host.get_uuid, scheduled).lower() == host_uuid.lower()
