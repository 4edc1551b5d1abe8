"""The ``numa`` plugin's functions: arguments checked, then the shared use cases.

Functions (all arguments are strings; every result is JSON):
``host_topology``, ``vm_memory``, ``vcpus``, ``set_policy``, ``get_policy``,
``place``, ``settle``, ``release``, ``move_memory``, ``memory_move_status``,
``homing``, ``vnuma_plan``.  ``migrate_memory`` and ``migration_status`` are the documented
older names of the two page-move functions.

Configuration for tests and odd hosts: ``$XAPI_NUMA_BACKEND`` (hypervisor),
``$XAPI_NUMA_LEDGER`` (state database), ``$XAPI_NUMA_XENAPI_URL`` (xapi),
``$XAPI_NUMA_INVENTORY`` (the file naming this host, see :mod:`..backends.inventory`).

Imports: xapi runs the plugin as a new process for every call (``place`` and ``settle`` on
every VM start), so this module imports only what checking arguments needs; each function
imports the use cases it calls, and the context opens the hypervisor (the native binding),
the state database (sqlite3) and the XenAPI client only when a call uses them.
"""
import contextlib
import functools
import time
from typing import TYPE_CHECKING, Callable, Dict, Iterator

from xapi_numa.core.numbers import trim
from xapi_numa.core.policy import stored_or_default
from xapi_numa.errors import InvalidArgument, NotMovable, NotRunning
from xapi_numa.plugin.args import bool_arg, build_type_arg, check_args, int_arg, policy_arg, uuid_arg

if TYPE_CHECKING:  # for the annotations only: see "Imports" above
    from xapi_numa.state.ledger import Ledger  # noqa: F401


class Context:
    """Lazily opened hypervisor, state database and xapi session for one call."""

    def __init__(self, session_id: str, session=None, hv=None) -> None:
        self.session_id = session_id
        self._session, self._hv, self._ledger, self._ledger_to_read = session, hv, None, None

    @property
    def hv(self):
        if self._hv is None:
            from xapi_numa.backends.open import open_hypervisor  # the backend (Xen: the native binding) on first use
            self._hv = open_hypervisor()
        return self._hv

    @property
    def ledger(self) -> "Ledger":
        """The state database for a call that changes it: made where there is none yet."""
        if self._ledger is None:
            from xapi_numa.state.ledger import Ledger  # sqlite3 and the state schema on first use
            self._ledger = Ledger()
        return self._ledger

    @property
    def ledger_to_read(self) -> "Ledger":
        """The state database for a query or a dry run: never made; where there is none yet
        (xapi-numad never ran here), an empty one in memory (:func:`open_to_read`)."""
        if self._ledger is not None:
            return self._ledger
        if self._ledger_to_read is None:
            from xapi_numa.state.db import open_to_read  # sqlite3 and the state schema on first use
            from xapi_numa.state.ledger import Ledger
            self._ledger_to_read = Ledger(db=open_to_read())
        return self._ledger_to_read

    def first_change(self) -> bool:
        """Is there no state database yet (this call would make it)?  A call that changes the
        state checks first on the empty one in memory, so that a refusal leaves none behind."""
        return self._ledger is None and self.ledger_to_read.db.in_memory

    @property
    def session(self):
        if self._session is None:
            from xapi_numa.backends import xapi  # the XenAPI client on first use
            self._session = xapi.plugin_session(self.session_id)
        return self._session

    @property
    def host_uuid(self):
        """This host's UUID from xapi's inventory file (None off a dom0)."""
        from xapi_numa.backends.inventory import local_host_uuid  # read by some calls only
        return local_host_uuid()

    def domain_of(self, uuid: str, query: bool = False):
        """The running domain of VM ``uuid`` on this host.  This host's control domain
        (xapi's VM for dom0 has a UUID of its own, not Xen's handle) is domid 0 for a
        ``query``; anything that would change it is refused, as set_policy does."""
        from xapi_numa.backends import xapi  # the XenAPI client and the settling rules: for a VM with no domain here
        from xapi_numa.ops import settle as settling
        for d in self.hv.domains():
            if d.uuid == uuid:
                return d
        vm = xapi.vm_ref(self.session, uuid)  # UnknownVM if xapi does not know it either
        if settling.control_domain_here(self.session, vm, self.host_uuid):
            dom0 = next((d for d in self.hv.domains() if d.domid == 0), None)
            if not query:
                raise InvalidArgument("vm", "{} is this host's control domain (dom0)".format(uuid), "a guest VM")
            if dom0 is not None:
                return dom0
        raise NotRunning(uuid)

    def located(self, err: NotRunning) -> NotRunning:
        """``err`` naming the host xapi says the VM is running (or paused) on, if that is
        not this host; ``err`` itself for a halted VM, or where xapi cannot say.  The
        boundary asks this of every NotRunning, whichever use case found no domain here."""
        if err.host_uuid is not None:
            return err
        from xapi_numa.backends import xapi  # the XenAPI client: only a VM with no domain here is asked after
        try:
            vm = xapi.vm_ref(self.session, err.vm)
            state = xapi.call(self.session.xenapi.VM.get_power_state, vm)
            if state not in ("Running", "Paused"):
                return err
            resident_on = xapi.call(self.session.xenapi.VM.get_resident_on, vm)
            host = xapi.call(self.session.xenapi.host.get_record, resident_on)
        except Exception:  # only a better message was at stake: the plain answer stands
            # (xapi restarting mid-answer gives expat or http.client errors, not OSError)
            return err
        if host["uuid"].lower() == (self.host_uuid or "").lower():
            return err  # xapi has it here, the hypervisor has no domain (yet): not another host's
        return NotRunning(err.vm, host["uuid"], host["name_label"], state.lower())


def host_topology(ctx: Context, args: Dict[str, str]) -> dict:
    # imported per function, as every function here does (see "Imports" above)
    from xapi_numa.ops import observe, queries
    check_args(args, set())
    ledger = ctx.ledger_to_read
    report = queries.topology_report(ctx.hv, ledger.outstanding(), observe.known_node_claims(ctx.hv, ledger),
                                     observe.claims_overlap(ctx.hv, ledger))
    del report["cpus"]
    return report


def vm_memory(ctx: Context, args: Dict[str, str]) -> dict:
    # imported per function, as every function here does (see "Imports" above)
    from xapi_numa.ops import queries
    check_args(args, {"vm"})
    uuid = uuid_arg(args)
    return dict(queries.vm_memory(ctx.hv, ctx.domain_of(uuid, query=True).domid), vm=uuid)


def vcpus(ctx: Context, args: Dict[str, str]) -> list:
    # imported per function, as every function here does (see "Imports" above)
    from xapi_numa.ops import queries
    check_args(args, set(), {"vm"})
    domids = [ctx.domain_of(uuid_arg(args), query=True).domid] if "vm" in args else None
    return queries.vcpu_rows(ctx.hv, domids)


def set_policy(ctx: Context, args: Dict[str, str]) -> dict:
    # imported per function, as every function here does (see "Imports" above)
    from xapi_numa.backends import xapi
    from xapi_numa.ops import place_request, start_placement
    check_args(args, {"vm", "mode"}, {"nodes", "on_exhaust"})
    uuid = uuid_arg(args)
    policy = policy_arg(args)
    place_request.check_nodes(policy, ctx.hv.topology(), "nodes")
    vm = xapi.vm_ref(ctx.session, uuid)
    if xapi.call(ctx.session.xenapi.VM.get_is_control_domain, vm):
        raise InvalidArgument("vm", "{} is a control domain (dom0)".format(uuid), "a guest VM")
    with start_placement.owning(ctx.ledger, ctx.session, vm, uuid) as owner:  # its keys, not a mix of two callers'
        # checked before each write, as place does: slow past its hold and taken over, it writes nothing more
        xapi.store_policy(ctx.session, vm, policy,
                          functools.partial(start_placement.still_owning, ctx.session, vm, uuid, owner))
    return dict(policy.to_dict(), vm=uuid)


@contextlib.contextmanager
def stored_in(uuid: str) -> Iterator[None]:
    """A damaged value of VM ``uuid``'s other_config (its stored policy), named with the VM:
    not the caller's argument, and in xapi's task list, or a log of many calls, nothing
    else says which VM holds the value to fix."""
    try:
        yield
    except InvalidArgument as err:
        if not err.field.startswith("other_config:"):
            raise
        raise InvalidArgument(err.field, "{}, stored in VM {}".format(err.detail, uuid), err.allowed) from None


def get_policy(ctx: Context, args: Dict[str, str]) -> dict:
    # imported per function, as every function here does (see "Imports" above)
    from xapi_numa.backends import xapi
    check_args(args, {"vm"})
    uuid = uuid_arg(args)
    with stored_in(uuid):
        policy = xapi.get_policy(ctx.session, xapi.vm_ref(ctx.session, uuid))
    return dict(policy.to_dict(), vm=uuid)


def place(ctx: Context, args: Dict[str, str]) -> dict:
    """A placement for a VM about to start here: reserve, and pin the boot to it;
    or, with vcpus and memory, a what-if placement that reserves nothing (inside this
    host's guest mask, read and applied as for a VM; its build predicted as of guest
    ``type``, hvm by default, which the answer's ``domain_type`` says).  The answer's
    ``memory_target`` is the memory the start was planned with: a VM's start target as squeezed
    gives it on this host (below its dynamic maximum where the host is short of it and no domain
    here balloons: ``place_request.start_target``), the what-if's ``memory``."""
    # imported per function, as every function here does (see "Imports" above)
    from xapi_numa.core.placement import Request
    from xapi_numa.core.units import VM_MEMORY, parse_size
    from xapi_numa.ops import place_answer, start_hold, start_placement
    if not {"vm", "vcpus", "memory"} & set(args):
        raise InvalidArgument("vm", "missing argument", "vm=UUID for a VM about to start here, or vcpus= and "
                                                        "memory= (with mode, nodes, on_exhaust, type) for a what-if")
    _one_form(args)
    if "vm" in args:
        check_args(args, {"vm"}, {"dry_run", start_hold.START_OWNER_ARG})
        uuid, dry_run = uuid_arg(args), bool_arg(args, "dry_run")
        if dry_run and start_hold.START_OWNER_ARG in args:  # a pool vm-start's dry runs carry no token
            raise InvalidArgument(start_hold.START_OWNER_ARG, "an argument not taken with dry_run=true (a dry run "
                                  "reserves and holds nothing: only a pool vm-start's place of its VM carries its "
                                  "token)", "start_owner without dry_run, or dry_run=true without start_owner")
        with stored_in(uuid):
            if not dry_run and ctx.first_change():  # refused (no room, its state): no database made for it
                start_placement.check_place(ctx.hv, ctx.ledger_to_read, ctx.session, uuid, ctx.host_uuid,
                                            args.get(start_hold.START_OWNER_ARG))
            return start_placement.place_vm(ctx.hv, ctx.ledger_to_read if dry_run else ctx.ledger, ctx.session, uuid,
                                            dry_run, host_uuid=ctx.host_uuid,
                                            start_owner=args.get(start_hold.START_OWNER_ARG))
    check_args(args, {"vcpus", "memory"}, {"dry_run", "mode", "nodes", "on_exhaust", "type"})
    if not bool_arg(args, "dry_run", True):
        raise InvalidArgument("dry_run", "a what-if placement (vcpus, memory) cannot reserve", "true")
    request = Request(int_arg(args, "vcpus", 1, 4096), parse_size(args["memory"], "memory", VM_MEMORY),
                      policy_arg(args), dtype=build_type_arg(args))
    host = ctx.host_uuid
    return dict(place_answer.place_what_if(ctx.hv, ctx.ledger_to_read, request, ctx.session if host else None, host),
                vm=None)


WHAT_IF_ARGS = frozenset({"vcpus", "memory", "mode", "nodes", "on_exhaust", "type"})
PLACE_FORMS = "vm (with dry_run, start_owner); or, without vm, vcpus and memory (with dry_run, mode, nodes, " \
              "on_exhaust, type)"


def _one_form(args: Dict[str, str]) -> None:
    """An argument of place's other form is refused as that, not as unknown: a VM's size, type and
    policy are its own (read from xapi), and only a pool vm-start's place of a VM carries its token."""
    from xapi_numa.ops.start_hold import START_OWNER_ARG  # imported per function (see "Imports" above)
    other = sorted(WHAT_IF_ARGS & set(args)) if "vm" in args else sorted({START_OWNER_ARG} & set(args))
    if other:
        taken = "with vm (the VM's size, type and policy are read from xapi)" if "vm" in args else \
            "without vm (the token of a pool vm-start placing its VM)"
        raise InvalidArgument(other[0], "an argument not taken {}".format(taken), PLACE_FORMS)


def settle(ctx: Context, args: Dict[str, str]) -> dict:
    """After the build: the policy's affinity replaces the boot pin; follow the memory."""
    # imported per function, as every function here does (see "Imports" above)
    from xapi_numa.ops import settle as settling
    check_args(args, {"vm"})
    uuid = uuid_arg(args)
    # refused (unknown, not running here, dom0) before ctx.ledger: no database made for it; checked once
    vm = settling.settleable(ctx.hv, ctx.session, uuid, ctx.host_uuid)
    return settling.settle(ctx.hv, ctx.session, ctx.ledger, uuid, ctx.host_uuid, vm=vm)


def release(ctx: Context, args: Dict[str, str]) -> dict:
    """Undo this host's ``place`` after a start that did not happen (see
    :func:`start_placement.release_vm`); ``force=true`` also undoes another host's pin, and
    the place of a pool vm-start holding the VM.  ``start_owner``: that start's own token."""
    # imported per function, as every function here does (see "Imports" above)
    from xapi_numa.ops import start_hold, start_placement
    check_args(args, {"vm"}, {"force", start_hold.START_OWNER_ARG})
    uuid, force = uuid_arg(args), bool_arg(args, "force")  # (a bad one refused before the database is made)
    start_owner = args.get(start_hold.START_OWNER_ARG)
    if ctx.first_change():  # refused (unknown to xapi, a pool start holds it): no database made for it
        start_placement.check_release(ctx.session, uuid, force, start_owner)
    return start_placement.release_vm(ctx.hv, ctx.ledger, ctx.session, uuid, ctx.host_uuid, force, start_owner)


def move_memory_fn(ctx: Context, args: Dict[str, str]) -> dict:
    """Move a running VM's memory to node ``to``, in the background; returns at once.
    Refusals (PV, passthrough, a live migration, already moving, no room) come back now."""
    # imported per function, as every function here does (see "Imports" above)
    from xapi_numa.backends import xapi
    from xapi_numa.core import memory_move as pagemove
    from xapi_numa.core.units import parse_size
    from xapi_numa.ops import move_memory, move_policy, move_recovery, move_refusals, place_request, reserve
    from xapi_numa.state.moves import RUNNING, MoveJournal
    check_args(args, {"vm", "to"}, {"max", "rate", "vnode"})
    uuid = uuid_arg(args)
    to = pagemove.parse_node(args["to"], "to")
    nodes = len(ctx.hv.topology().nodes)
    if to >= nodes:
        raise InvalidArgument("to", "no node {} on this host".format(to), "0..{}".format(nodes - 1))
    max_bytes = parse_size(args["max"], "max", pagemove.MOVE_MAX) if "max" in args else None
    rate = pagemove.parse_rate(args.get("rate"), "rate")
    vnode = int_arg(args, "vnode", 0, 63) if "vnode" in args else None
    dom = ctx.domain_of(uuid)
    record = xapi.vm_record(ctx.session, xapi.vm_ref(ctx.session, uuid))
    busy = move_refusals.busy_with(record.get("current_operations", {}))
    if busy:  # (its background mover watches for them between batches too)
        raise NotMovable(uuid, move_refusals.busy_reason(busy), dom.name)
    if record.get("attached_PCIs") or record.get("VGPUs"):
        raise NotMovable(uuid, "it has PCI devices or vGPUs passed through: device DMA mappings would go stale",
                         dom.name)
    move_policy.refuse_a_strict_move(ctx.hv, dom, stored_or_default(record.get("other_config", {}))[0], to)
    if ctx.first_change():  # the host's first move: one refused (no room, a bad vnode) makes no database
        move_memory.check(ctx.hv, str(dom.domid), to, max_bytes, vnode=vnode, room=reserve.room_pages(
            ctx.hv, ctx.ledger_to_read, exclude_move=dom.uuid)[to], guest_cpus=place_request.host_mask(
            ctx.session, ctx.host_uuid))
    journal = MoveJournal.of_host(ctx.ledger.db, ctx.hv)
    move_recovery.recover(ctx.hv, journal)  # before claiming: a dead mover's batch record must be used first
    # memory (a vnode's, or the whole VM's) goes only where its vCPUs may follow, inside the host's guest mask
    # (as xapi-numad's moves), and their soft affinity stays inside it
    guest_cpus = place_request.host_mask(ctx.session, ctx.host_uuid)  # one that cannot be read: refused, nothing moved
    # the scan and the plan are the mover's; the room leaves what starting VMs reserved
    move_memory.check(ctx.hv, str(dom.domid), to, max_bytes, vnode=vnode,
                      room=reserve.room_pages(ctx.hv, ctx.ledger, exclude_move=dom.uuid)[to], guest_cpus=guest_cpus)
    pid = move_memory.claim_and_start(journal, dom, to, max_bytes, rate, vnode=vnode, guest_cpus=guest_cpus)
    # "vm" is the VM's UUID, as every function answers; "uuid" is kept for older callers
    return {"vm": uuid, "name": dom.name, "uuid": uuid, "domid": dom.domid, "to": to, "state": RUNNING, "pid": pid,
            "vnode": vnode}


def memory_move_status(ctx: Context, args: Dict[str, str]) -> dict:
    """Progress or outcome of the last memory move of a VM on this host."""
    # imported per function, as every function here does (see "Imports" above)
    from xapi_numa.backends import xapi
    from xapi_numa.ops import move_recovery
    from xapi_numa.state.moves import MoveJournal
    check_args(args, {"vm"})
    uuid = uuid_arg(args)
    journal = MoveJournal(ctx.ledger_to_read.db)  # (no database: no move was ever made here, none to recover)
    row = journal.status(uuid)
    if row is None:
        xapi.vm_ref(ctx.session, uuid)
        # its moves are in the journal of the host it runs on: name that host (as release does)
        elsewhere = ctx.located(NotRunning(uuid)).host_uuid
        return {"vm": uuid, "state": "none", "running_on": elsewhere or None}
    return dict(row.report, vm=uuid, state=row.state, to=row.to, pid=row.pid, updated=row.updated,
                recovery_pending=move_recovery.pending(ctx.hv, journal))  # a query: what recovery would do


def homing(ctx: Context, args: Dict[str, str]) -> dict:
    """What xapi-numad would do now (its dry run): pins, restores, soft-affinity moves, with
    its view of the VMs (their policies, those it leaves alone, the host's guest mask) read
    from xapi as it reads them, over the session xapi handed us (never logged out by us); xapi's
    failure is the answer (with no VM's policy read, every VM would look ``best_effort``)."""
    # imported per function, as every function here does (see "Imports" above)
    from xapi_numa.ops import runtime
    from xapi_numa.ops.xapi_link import XapiLink, vm_view
    check_args(args, set())
    view = vm_view(XapiLink(lambda: ctx.session, time.monotonic, raises=True))
    outcomes = runtime.Runtime(ctx.hv, ctx.ledger_to_read.db, **view).what_now()
    return {"scheduler": ctx.hv.capabilities().scheduler, "actions": [o.to_dict() for o in outcomes]}


def vnuma_plan(ctx: Context, args: Dict[str, str]) -> dict:
    """The VM's vNUMA plan on this host (mode follow: where it would start now; split:
    on half 0 or 1 of the split host); with store=true also kept in its other_config."""
    # imported per function, as every function here does (see "Imports" above)
    from xapi_numa.backends import xapi
    from xapi_numa.ops import place_request, vnuma_xapi
    check_args(args, {"vm"}, {"mode", "half", "store"})
    uuid = uuid_arg(args)
    half = int_arg(args, "half", 0, 1) if "half" in args else None
    mode = trim(args.get("mode", "follow"))
    vnuma_xapi.check_mode(mode, half)
    store = bool_arg(args, "store")
    vm = xapi.vm_ref(ctx.session, uuid)
    record = xapi.vm_record(ctx.session, vm)
    if store:
        vnuma_xapi.check_storable(record, uuid)
    vgpu = xapi.builds_with_vgpu(ctx.session, record)  # read once: the follow plan's start and the video RAM
    plan = vnuma_xapi.plan_for(ctx.hv, ctx.ledger_to_read, record, uuid, mode, half,
                               place_request.host_mask(ctx.session, ctx.host_uuid), session=ctx.session, vgpu=vgpu)
    video_ram = vnuma_xapi.video_ram_of(record, vgpu)
    if store:
        vnuma_xapi.store_plan(ctx.session, vm, plan, video_ram, ctx.host_uuid)
    return dict(vnuma_xapi.plan_record(plan, video_ram, ctx.host_uuid), vm=uuid, stored=store,
                key=vnuma_xapi.VNUMA_KEY)


FUNCTIONS: Dict[str, Callable[[Context, Dict[str, str]], object]] = {
    "host_topology": host_topology, "vm_memory": vm_memory, "vcpus": vcpus, "set_policy": set_policy,
    "get_policy": get_policy, "place": place, "settle": settle, "release": release,
    "move_memory": move_memory_fn, "memory_move_status": memory_move_status, "homing": homing,
    "vnuma_plan": vnuma_plan,
    # the first version's names, kept as documented aliases
    "migrate_memory": move_memory_fn, "migration_status": memory_move_status,
}
