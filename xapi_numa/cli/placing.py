"""``xapi-numa place | reservations | release | vm-start | vm-placement``: deciding where VMs go."""
import functools
import time
from typing import Callable, FrozenSet, Optional, Tuple

from xapi_numa.backends import xapi
from xapi_numa.backends.inventory import local_host_uuid
from xapi_numa.cli import common, rebalance, render
from xapi_numa.core.host import parse_uuid
from xapi_numa.core.placement import Planner, Request
from xapi_numa.core.policy import Policy
from xapi_numa.core.units import VM_MEMORY, format_size, parse_size
from xapi_numa.errors import InvalidArgument, NumaError, UnknownVM, XapiUnreachable
from xapi_numa.ops import start_hold, upkeep
from xapi_numa.ops.reserve import place_and_reserve
from xapi_numa.ops.place_request import admin_mask, host_mask, sized_request
from xapi_numa.ops.start_deadline import DEFAULT_S as START_DEADLINE
from xapi_numa.ops.place_answer import describe
from xapi_numa.ops.start_placement import not_taken, place_locked, placing, releasing, startable
from xapi_numa.core.numbers import plain, signed_decimal_number, signed_whole_number, trim
from xapi_numa.ops.command_line import given

PLACE_NOT_CONSULTED = ("not consulted (a simulated host, --no-xapi, or no xapi inventory naming this host): "
                       "the host's guest mask is left out")
PLACE_UNREACHABLE = "unreachable: the placement keeps to no guest mask"
# the way out a refusal of the place's checks offers (start_placement.startable, not_placed_elsewhere),
# in the CLI's words: its option; and the plugin's release, since the CLI's release --force drops this
# host's reservation only and leaves another host's pin (place --vm's refusals, and vm-start's of a
# place another host made)
DRY_RUN_SAID = "--dry-run"
FORCE_SAID = ("the plugin's release (xe host-call-plugin host-uuid=THIS_HOST plugin=numa fn=release args:vm=VM "
              "args:force=true)")


def _xapi_view(args, vm: Optional[str], held: bool) -> Tuple[Optional[FrozenSet[int]], Optional[dict], str]:
    """This host's guest mask (``guest_VCPUs_params:mask``) and, for ``--vm``, that VM's
    record (its own ``VCPUs_params:mask`` bounds the place, as the plugin's), read from
    this host's xapi as the plugin's place reads them (a mask that cannot be read, or a VM
    xapi does not know, is refused), reached as move-memory reaches it; and what to say
    of xapi: not consulted, consulted, or unreachable (the place then keeps to no mask,
    as xapi-numad goes on without xapi; but for one that is to hold the VM, ``held``:
    refused, since whether a pool vm-start holds the VM is then unknown).  A VM the plugin's place
    (or its dry run) refuses for its record is refused here too (:func:`start_placement.startable`)."""
    host = local_host_uuid()
    link = _local_link(args)
    if link is None:
        return None, None, PLACE_NOT_CONSULTED
    try:
        got = link.use(lambda session: (host_mask(session, host), None if vm is None else xapi.vm_record(
            session, xapi.vm_ref(session, vm))))
        if got is None and held:
            raise _hold_unread(vm, link, "place")
        if got is None:
            return None, None, rebalance.not_reached(link, PLACE_UNREACHABLE)
        return got[0], None if vm is None else startable(got[1], vm, not held, DRY_RUN_SAID), "consulted"
    finally:
        link.close()


def cmd_place(args) -> int:
    if not 1 <= args.vcpus <= 4096:
        raise InvalidArgument("--vcpus", "{}".format(args.vcpus), "1..4096")
    memory = parse_size(args.memory, "--memory", VM_MEMORY)
    if not 0 < args.ttl <= 86400:
        raise InvalidArgument("--ttl", plain(args.ttl), "more than 0, at most 86400 seconds")
    with common.flag_names(dict(common.POLICY_FLAGS, memory="--memory", vcpus="--vcpus")):
        policy = Policy.parse(args.mode, args.nodes, args.on_exhaust)
        request = Request(args.vcpus, memory, policy, dtype=args.type)
    vm = parse_uuid(args.vm, "--vm") if args.vm is not None else None
    hv = common.hypervisor(args)
    domids = [d.domid for d in hv.domains() if vm is not None and d.uuid == vm]
    if domids and not args.dry_run:  # as the plugin: its memory is built, a reservation would only hold more
        raise InvalidArgument("--vm", "{} has a domain here ({}): place reserves for a start".format(vm, domids[0]),
                              "a VM with no domain on this host, or " + DRY_RUN_SAID)
    planner = Planner(hv.topology())
    held = vm is not None and not args.dry_run  # a VM's place holds it as the plugin's; a dry run holds nothing
    guest_cpus, record, xapi_said = _xapi_view(args, vm, held)  # (a refusal: before anything is reserved)
    with common.flag_names(common.POLICY_FLAGS):
        # bounded as the plugin bounds a VM's place (its own mask too) or its what-if (no VM): a refused
        # --nodes before the state database is opened (made, where there is none yet)
        sized = sized_request(request, planner.topology, guest_cpus, "--nodes", record)
        if not args.dry_run and common.first_change(args):  # refused (the VM taken, no room): no state database made
            if held and xapi_said == "consulted":  # as the held place refuses its record, before the room
                _check_taken(args, vm, record)
            place_and_reserve(hv, common.ledger_to_read(args), sized, vm, args.ttl, True, planner=planner)
        ledger = common.ledger_to_read(args) if args.dry_run else common.ledger(args)

        def reserve(owner: str, read: Optional[dict]):
            """Decide and reserve, for ``owner``, bounded by the VM's record as ``read`` (None: not read)."""
            return place_and_reserve(hv, ledger, sized_request(request, planner.topology, guest_cpus, "--nodes", read),
                                     vm, args.ttl, args.dry_run, planner=planner, owner=owner) + (read,)
        placement, reservation, loads, record = _place_held(args, ledger, vm, reserve, xapi_said == "consulted") \
            if held else reserve("", record)
    # the fields the plugin's place answers, and whether xapi was read (as move-memory says)
    mask = admin_mask(record) if record is not None else None
    out = dict(describe(planner, placement, reservation, loads, host_cpus=guest_cpus, mask=mask, dtype=request.dtype,
                        target=request.memory, vm=vm),
               xapi=xapi_said)
    common.emit(args, out, lambda _: _render_placement(placement, out, reservation))
    return 0


def _place_held(args, ledger, vm: str, reserve: Callable[[str, Optional[dict]], tuple], consulted: bool) -> tuple:
    """``reserve`` for ``vm`` holding it as the plugin's place does (:func:`start_placement.placing`: this
    host's place lock, the VM's owner key, then on its record read while holding them the place's checks,
    :func:`start_placement.startable` and :func:`start_placement.not_placed_elsewhere`, and the start-hold
    rule, refused as the plugin's place is); with no xapi ``consulted`` (``--no-xapi``, a simulated host,
    no inventory naming this host), this host's place lock alone: no record read, none of those checks."""
    if not consulted:
        with place_locked(ledger, vm):
            return reserve("", None)
    link = _local_link(args)
    done = []  # what reserve answered, once it did: xapi may fail after it, letting the VM go
    try:
        link.use(lambda session: _reserve_held(session, ledger, vm, reserve, done))
    finally:
        link.close()
    if not done:
        raise _hold_unread(vm, link, "place")
    return done[0]


def _reserve_held(session, ledger, vm: str, reserve: Callable[[str, Optional[dict]], tuple], done: list) -> None:
    checked = functools.partial(startable, uuid=vm, dry_run=False, dry_run_said=DRY_RUN_SAID)
    with placing(ledger, session, xapi.vm_ref(session, vm), vm, startable=checked, host_uuid=local_host_uuid(),
                 force_said=FORCE_SAID) as (owner, record):
        done.append(reserve(owner, record))


def _check_taken(args, vm: str, record: dict) -> None:
    """Refuse, as the held place would (:func:`start_placement.not_taken`), ``vm`` whose ``record`` (as read)
    a pool vm-start holds or another host placed, holding nothing: for a first place on this host."""
    link = _local_link(args)
    try:
        if link.use(lambda session: not_taken(session, record, vm, None, local_host_uuid(), FORCE_SAID) or True) \
                is None:
            raise _hold_unread(vm, link, "place")
    finally:
        link.close()


def _local_link(args):
    """A link to this host's xapi, as place and release read it: none on a simulated host, with
    ``--no-xapi``, nor with no inventory naming this host (no pool start places there)."""
    return rebalance.local_link(args) if local_host_uuid() is not None else None


def _hold_unread(vm: str, link, fn: str) -> XapiUnreachable:
    """The refusal of a ``place`` or ``release`` (``fn``) of ``vm`` while this host's xapi (``link``)
    cannot be read: whether a pool vm-start holds the VM is unknown."""
    done, undo, other = ("reserved", "overwrite", "--no-xapi to place without reading xapi (no guest mask, no VM "
                                                  "mask, no start hold)") if fn == "place" else \
        ("released", "undo", "--force to release anyway")
    return XapiUnreachable("VM {}: whether a pool vm-start holds it (other-config:{}) cannot be read from this host's "
                           "xapi ({}); nothing was {}, since a {} now could {} that start's place; try again once xapi "
                           "answers, or {}".format(vm, start_hold.START_KEY, rebalance.not_reached(link, "unreachable"),
                                                   done, fn, undo, other))


def _render_placement(placement, out: dict, reservation) -> str:
    lines = [] if out["xapi"] == "consulted" else ["xapi:     " + render.cell(out["xapi"])]
    lines += ["nodes:    " + ",".join(map(str, placement.nodes)) + ("  (fallback)" if placement.fallback else ""),
              "memory:   " + ", ".join("node {}: {}".format(n, format_size(b)) for n, b in placement.memory)
              + "  ({} build)".format(out["domain_type"])]
    if placement.hard is not None:
        lines.append("hard:     {}".format(out["hard"]))
    if placement.soft is not None:
        lines.append("soft:     {}".format(out["soft"]))
    lines += ["policy:   {}".format(placement.policy), "why:      {}".format(placement.reason)]
    if reservation:
        lines.append("reserved: for {} until {}".format(
            reservation.vm, render.clock_time(reservation.expires)))
    else:
        lines.append("reserved: nothing (dry run)")
    return "\n".join(lines)


def _expires_in(r: dict) -> str:
    left = r["expires"] - time.time()
    if r["claimed"] and left <= 0:
        return "at build end"  # a claimed reservation outlives its lease until its claim is used up
    return "{:.0f}s".format(max(0, left))


def cmd_reservations(args) -> int:
    rows = [r.to_dict() for r in common.ledger_to_read(args).reservations()]
    common.emit(args, rows, lambda rows: render.table(
        ["vm", "nodes", "total", "expires in", "claimed"],
        [[r["vm"], ", ".join("{}:{}".format(n, format_size(b)) for n, b in r["nodes"].items()),
          format_size(r["total"]), _expires_in(r), "yes" if r["claimed"] else ""] for r in rows]))
    return 0


def cmd_release(args) -> int:
    # the key place gave it: a VM's UUID as place --vm reads it, or an adhoc- key as printed
    key = trim(args.vm)
    key = common.xapi_name(key, "VM")
    if not key.startswith("adhoc-"):
        try:
            key = parse_uuid(key, "VM")
        except InvalidArgument as err:  # the keys allowed are the two kinds place gives
            raise InvalidArgument("VM", err.detail, "a VM's UUID, or the adhoc-... key place printed "
                                  "(xapi-numa reservations lists them)") from None
    ledger = common.ledger_to_read(args)  # (none yet: nothing was ever reserved, and none is made to say so)
    if not any(r.vm == key for r in ledger.reservations()):  # nothing to release: no need to ask xapi
        raise NumaError("no reservation for {}".format(args.vm))
    hv = common.hypervisor(args)
    had, starting = (upkeep.release_asked(hv, ledger, key), None) if key.startswith("adhoc-") else \
        _release_vm(args, hv, ledger, key)
    if not had:
        raise NumaError("no reservation for {}: the one listed had ended (its lease over, or its build done or "
                        "failed); nothing is held for it now".format(args.vm))
    print("released the reservation for {}{}".format(render.cell(key), "" if starting is None else " ({})".format(
        render.cell(start_hold.overridden(starting, "its reservation here is dropped, its boot pin kept")))))
    return 0


def _release_vm(args, hv, ledger, vm: str) -> Tuple[bool, Optional[str]]:
    """Drop ``vm``'s reservation as the plugin's release holds the VM and applies the start-hold
    rule (:func:`start_placement.releasing`: this host's place lock, the VM's owner key, then the
    hold read); answers whether there was one, and the token of the pool vm-start whose place this
    undoes (``--force``) or None.  While this host's xapi cannot be read it is refused (whether a
    start holds the VM is unknown), ``--force`` excepted.  Read from this host's xapi as place reads
    it: not on a simulated host, nor with no inventory naming this host (no pool start places there)."""
    link = _local_link(args)
    done = []  # (had, starting), once released: xapi may fail after it, letting the VM go
    if link is not None:
        try:
            link.use(lambda session: _release_held(session, hv, ledger, vm, args.force, done))
        finally:
            link.close()
        if not done and not args.force:
            raise _hold_unread(vm, link, "release")
    return done[0] if done else (_release_locked(hv, ledger, vm), None)


def _release_held(session, hv, ledger, vm: str, force: bool, done: list) -> None:
    try:
        ref = xapi.vm_ref(session, vm)
    except UnknownVM:  # a VM xapi does not know: no start holds it, nor places it
        done.append((_release_locked(hv, ledger, vm), None))
        return
    with releasing(ledger, session, ref, vm, force, force_said="--force") as (_, _, starting):
        done.append((upkeep.release_asked(hv, ledger, vm), starting))


def _release_locked(hv, ledger, vm: str) -> bool:
    """Drop ``vm``'s reservation with no xapi to hold the VM in (none read, or one that does not
    know it), holding this host's place lock of it: a place of it here (the CLI's, or the
    plugin's while this CLI cannot reach xapi) is made before or after, never across the drop."""
    with place_locked(ledger, vm):
        return upkeep.release_asked(hv, ledger, vm)


# vm-start's exit status when the VM started but settling it failed (it runs boot-pinned
# until xapi-numad settles it): not 0, and not 1 or 2, which say it did not start
STARTED_NOT_SETTLED = 3
MAX_START_DEADLINE = 86400  # seconds: a day


def cmd_vm_start(args) -> int:
    from xapi_numa.ops.pool import vm_start

    args.vm, args.host = common.xapi_name(args.vm, "VM"), common.xapi_name(args.host, "--host")
    if not 0 < args.deadline <= MAX_START_DEADLINE:
        raise InvalidArgument("--deadline", plain(args.deadline), "more than 0, at most {} seconds (default {:g})".format(
            MAX_START_DEADLINE, START_DEADLINE))
    with common.pool_session(args) as session, common.flag_names({"host": "--host"}):
        result = vm_start(session, args.vm, args.host, args.deadline, FORCE_SAID)
    common.emit(args, result, lambda r: _render_vm_start(args.vm, r))
    return STARTED_NOT_SETTLED if result["settle_error"] else 0


def _render_vm_start(vm: str, r: dict) -> str:
    p, s = r["placement"], r["settled"]
    if s is None:
        return "{} started on {}, nodes {}; {}".format(render.cell(vm), render.cell(r["host"]),
                                                       ",".join(map(str, p["nodes"])),
                                                       render.cell(r["settle_error"]["message"]))
    return "{} started on {}, nodes {} (memory on {}); {}{}".format(
        render.cell(vm), render.cell(r["host"]), ",".join(map(str, s["nodes"])),
        ",".join(map(str, s["memory_nodes"])), render.cell(p["reason"]),
        "; its stored policy is invalid ({}): settled with the default".format(render.cell(s["policy_error"]))
        if s.get("policy_error") else "")


def cmd_vm_placement(args) -> int:
    from xapi_numa.ops.pool_queries import vm_placement

    args.vm = common.xapi_name(args.vm, "VM")
    with common.pool_session(args) as session:
        result = vm_placement(session, args.vm)
    common.emit(args, result, lambda r: _render_vm_placement(args.vm, r))
    return 0


def _render_vnuma(result: dict) -> str:
    """The stored vNUMA plan and, for a running VM, the layout Xen holds (empty if neither)."""
    lines = []
    for title, plan in (("stored vNUMA plan (other_config:numa_vnuma, not applied by xenopsd)",
                         result.get("vnuma_plan")),
                        ("vNUMA layout Xen holds", (result.get("memory") or {}).get("vnuma"))):
        if plan and "error" in plan:
            lines.append("{}: {}".format(title, plan["error"]))
        elif plan:
            if plan.get("stale"):
                lines.append("{}: out of date: {}".format(title, plan["stale"]))
            lines.append("{}:\n".format(title) + render.table(["vnode", "pnode", "memory", "vcpus"], [
                [v["vnode"], "?" if v["pnode"] is None else v["pnode"], format_size(v["memory"]),
                 ",".join(map(str, v["vcpus"]))] for v in plan["vnodes"]]))
            if plan.get("video_ram"):
                lines.append("(vnode 0's memory includes {} of video RAM, which is not guest RAM)".format(
                    format_size(plan["video_ram"])))
    return "".join("\n" + line for line in lines)


def _render_vm_placement(vm: str, result: dict) -> str:
    if "options" in result:
        return "\n".join(["{} is {}; where it would go, best first:".format(render.cell(vm), result["state"])]
                         + ["  {}: nodes {} - {}".format(render.cell(o["host"]), ",".join(map(str, o["nodes"])),
                                                         render.cell(o["reason"])) for o in result["options"]]
                         + ["  not a candidate: {}".format(render.cell(why)) for why in result.get("left_out", ())]
                         ) + _render_vnuma(result)
    m = result["memory"]
    policy = result["policy"]["mode"] if result.get("policy") else "INVALID ({})".format(result.get("policy_error"))
    head = ("{} runs on {} (domid {}), policy {}: memory ".format(render.cell(vm), render.cell(result["host"]),
                                                                  m["domid"], render.cell(policy))
            + ", ".join("node {}: {}".format(n, format_size(b)) for n, b in m["nodes"].items())
            + "; {:.0f}% local to its home nodes".format(100 * m["local_share"]))
    return head + "\n" + render.render_vcpus(result["vcpus"]) + _render_vnuma(result)


def register(sub) -> None:
    q = sub.add_parser("place", help="decide where a VM goes and reserve its memory (inside the host's guest mask, "
                                     "read from this host's xapi)")
    q.add_argument("--vcpus", type=signed_whole_number, required=True, help="the VM's vCPUs: 1..4096")
    q.add_argument("--memory", required=True, help=VM_MEMORY.allowed)
    q.add_argument("--mode", type=given, help="any, best_effort (default), preferred, strict")
    q.add_argument("--nodes", help="ordered list of this host's nodes (0 up to its last: 1,3,0, 0-1, node:1, "
                                   "nodes:0-1), nearest, or 2,nearest")
    q.add_argument("--on-exhaust", dest="on_exhaust", type=given, help="fallback (default) or fail")
    q.add_argument("--type", choices=("pv", "pvh", "hvm"), default="hvm",
                   help="the guest's type (xapi's domain_type; not read with --vm): hvm (default), pvh or pv; its "
                        "build's extents decide what a VM over several nodes is held on each")
    q.add_argument("--vm", help="the VM the reservation is for (UUID; its own VCPUs_params:mask, read from xapi, "
                                "bounds the place as the plugin's; held as the plugin's place holds it, and refused, "
                                "NUMA_VM_BUSY, while a pool vm-start holds it; refused as the plugin's place is for a "
                                "VM not halted, a template, or placed by another host); default: a new ad-hoc key")
    q.add_argument("--ttl", type=signed_decimal_number, default=300.0,
                   help="seconds before an unused reservation expires: more than 0, at most 86400 (default 300)")
    q.add_argument("--dry-run", action="store_true", help="decide only; reserve nothing")
    q.add_argument("--no-xapi", dest="no_xapi", action="store_true",
                   help="do not ask xapi for the host's guest mask (the placement then keeps to none), nor, with --vm, "
                        "for the VM's record: its mask, whether a pool vm-start holds it (other-config:{}) and the "
                        "plugin's place's checks of it (halted, not being started by xapi, no template, snapshot or "
                        "control domain, not placed by another host) are then left out, and its place holds only "
                        "this host's place lock of it".format(start_hold.START_KEY))
    common.add_ledger(q)
    common.add_json(q)
    q.set_defaults(func=cmd_place)

    q = sub.add_parser("vm-start", help="start a VM on the pool's host with the best NUMA fit (exit 3: it started "
                                        "but settling it failed; xapi-numad settles it)")
    q.add_argument("vm", help="VM UUID or unique name")
    q.add_argument("--host", type=given, help="start on this host (name or UUID) only")
    q.add_argument("--deadline", type=signed_decimal_number, default=START_DEADLINE, metavar="SECONDS",
                   help="give up after this long overall (default %(default)g: VM.start_on's 1800 s and 600 to "
                        "choose and place): NUMA_START_TIMEOUT names the step that ran into it; a place made by "
                        "then is released, unless VM.start_on was under way. The start holds the VM meanwhile "
                        "(another vm-start of it is refused, NUMA_VM_BUSY); one killed holds it until its deadline "
                        "and {:g} s more, but for a vm-start on the same machine".format(start_hold.HOLD_MARGIN_S))
    common.add_json(q)
    q.set_defaults(func=cmd_vm_start)

    q = sub.add_parser("vm-placement", help="where a VM's memory and vCPUs are, or would go")
    q.add_argument("vm", help="VM UUID or unique name")
    common.add_json(q)
    q.set_defaults(func=cmd_vm_placement)

    q = sub.add_parser("reservations", help="memory reserved for VMs that are starting")
    common.add_ledger(q)
    common.add_json(q)
    q.set_defaults(func=cmd_reservations)

    q = sub.add_parser("release", help="drop a VM's reservation")
    q.add_argument("vm", help="the VM's UUID, or the adhoc-... key place printed (reservations lists them)")
    q.add_argument("--force", action="store_true", help="release even while a pool vm-start holds the VM "
                   "(other-config:{}, read from this host's xapi; refused otherwise, NUMA_VM_BUSY), or while "
                   "that xapi cannot be read: the start then builds the VM on no reservation".format(
                       start_hold.START_KEY))
    common.add_ledger(q)
    q.set_defaults(func=cmd_release, no_xapi=False)
