"""``xapi-numa move-memory | memory-moves``: moving a running VM's memory between nodes.

``migrate`` and ``migrations`` are the first version's names, kept as aliases
(xapi's "migrate" moves a VM between hosts; this moves pages inside one).
"""
import argparse
import json
import sys
from typing import FrozenSet, List, Optional, Tuple

from xapi_numa.cli import common, rebalance, render
from xapi_numa.core import memory_move as pagemove
from xapi_numa.core.cpuset import parse_ids
from xapi_numa.core.vcpu_mask import MAX_CPU_ID
from xapi_numa.core.units import parse_size
from xapi_numa.errors import InvalidArgument, NumaError, UnknownVM
from xapi_numa.ops import move_memory, move_policy, move_recovery, move_refusals, reserve
from xapi_numa.ops.observe import domain_by_name_or_id
from xapi_numa.state.moves import MoveJournal
from xapi_numa.core.numbers import shown, signed_whole_number, trim, whole_number
from xapi_numa.ops.command_line import given


def _progress_bar(stream):
    def show(tally) -> None:
        done = tally.released + tally.granted + tally.recognised
        frac = done / tally.planned if tally.planned else 1.0
        pauses = tally.pauses or [0.0]
        stream.write("\r[{:<30}] {:5.1f}%  {}/{} pages  batch {}/{}  max pause {:.1f} ms".format(
            "#" * int(frac * 30), 100 * frac, done, tally.planned, tally.batches, tally.batches_planned,
            1000 * max(pauses)))
        stream.flush()
    return show


def render_summary(report: dict) -> str:
    if report.get("already_there"):
        return _already_there(report)
    lines = ["moved:      {} pages to node {} ({} as 2 MiB superpages), {} elsewhere".format(
                 report["moved_pages"], report["to"], report["superpages"], report["fallback_pages"]),
             "batches:    {} of {}; pause max {} ms, median {} ms".format(
                 report["batches"], report["batches_planned"], report["pause_max_ms"], report["pause_median_ms"]),
             "throughput: {} MiB/s while moving; {} s in all".format(report["throughput_mib_s"], report["elapsed_s"])]
    skipped = report.get("skipped") or {}
    lines.append("skipped:    " + (", ".join("{} {}".format(k, v) for k, v in sorted(skipped.items())) or "nothing")
                 + ("; they stay on pnode {}".format(report["vnode"]["from"]) if skipped and report.get("vnode") else ""))
    if report.get("granted_at_pause_pages"):
        lines.append("left:       {} pages granted to a backend by their batch's pause stay where they were".format(
            report["granted_at_pause_pages"]))
    if report.get("xen_mapped_at_pause_pages"):
        lines.append("left:       {} pages Xen maps (vcpu_info, event channels) by their batch's pause stay where "
                     "they were".format(report["xen_mapped_at_pause_pages"]))
    if report.get("vnode"):
        v = report["vnode"]
        lines.append("vnode:      {} now on pnode {} (was {}); soft affinity of its vCPUs {}: {}".format(
            v["vnode"], v["to"], v["from"], ",".join(map(str, v["vcpus"])), v["affinity"]))
    if report.get("affinity"):
        a = report["affinity"]
        lines.append("affinity:   node and soft affinity now nodes {}".format(",".join(map(str, a["nodes"])))
                     + ("; hard affinity of vCPUs {} excludes them".format(a["hard_excludes_memory"])
                        if a.get("hard_excludes_memory") else ""))
    if report.get("error"):
        lines.append("stopped:    {}".format(report["error"]))
    if report.get("stuck_gfns"):
        lines.append("stuck gfns: {}".format(report["stuck_gfns"]))
    return "\n".join(lines)


def _already_there(d: dict) -> str:
    return "nothing to move: the hypervisor counts every page of {} on node {} already".format(
        render.cell(d["vm"]), d["to"])


def render_plan(d: dict) -> str:
    if d.get("already_there"):
        return _already_there(d)
    lines = ["vm:       {} (domid {})".format(render.cell(d["vm"]), d["domid"]),
             "plan:     {} of {} movable pages to node {} in {} batches, {} whole 2 MiB runs".format(
                 d["pages"], d["movable_pages"], d["to"], d["batches"], d["superpage_runs"]),
             "target:   node {} can take {} pages".format(d["to"], d["target_free_pages"])
             + ("; only vnode {}'s pages, whole".format(d["vnode"]) if d.get("vnode") is not None else ""),
             "skip set:" + ("" if d["skipped"] else "  nothing")]
    # (a move recovers first; the plan is of the memory as it is now)
    lines[:0] = ["recovery: " + render.cell(note) for note in d.get("recovery_pending", ())]
    for reason, gfns in sorted(d["skipped_gfns"].items()):
        lines.append("  {:<10} {:>6}  {}   ({})".format(reason, d["skipped"][reason], gfns,
                                                       pagemove.SKIP_EXPLAINED[reason]))
    if d["busy_grants"]:
        lines.append("          {} granted frames are mapped or in use by their grantee now".format(d["busy_grants"]))
    return "\n".join(lines)


# the use case's names for what this command's flags set: its errors name the flag typed
MOVE_FLAGS = {"to": "--to", "batch": "--batch", "max": "--max", "probe": "--probe-ms", "skip": "--skip",
              "vnode": "--vnode", "allow_fallback": "--allow-fallback", "lock_fd": "--lock-fd"}


FROM_CLAIMER = "not consulted: a background mover keeps to the guest mask its starter gave (none: xapi-numad's)"
UNREACHABLE = "unreachable: the move keeps to no guest mask"


def _xapi_view(args, hv, to: int) -> Tuple[Optional[FrozenSet[int]], str]:
    """The host's guest mask the move keeps to (a vnode's, or a whole VM's memory), and
    what to say of xapi: a background mover's from its claimer (--guest-cpus; none for
    xapi-numad's, whose targets already keep to it), else read from xapi as ``rebalance
    --dry-run`` reads it (not on a simulated host, nor with --no-xapi), with the VM's
    policy: a strict VM's memory is not moved off its nodes."""
    if args.guest_cpus is not None:
        try:
            return parse_ids(args.guest_cpus, MAX_CPU_ID), FROM_CLAIMER
        except ValueError:
            raise InvalidArgument("--guest-cpus", shown(args.guest_cpus),
                                  "CPU ids 0..{} and ranges: 0-3,8".format(MAX_CPU_ID)) from None
    link = None if args.lock_fd is not None else rebalance.daemon_view(args)[0]
    if link is None:
        return None, FROM_CLAIMER if args.lock_fd is not None else rebalance.NOT_CONSULTED
    try:
        mask = link.host_guest_cpus()
        try:
            dom = domain_by_name_or_id(hv, args.vm)
        except NumaError:
            dom = None  # the move says why, in its own words
        if dom is not None:
            move_policy.refuse_a_strict_move(hv, dom, link.policy_of(dom.uuid), to)
        # reached is not enough: the mask may have been read and the VMs' records refused
        consulted = link.reached and link.records_refusal is None
        return mask, "consulted" if consulted else rebalance.not_reached(link, UNREACHABLE)
    finally:
        link.close()


def _saying_xapi(render_value):
    """``render_value`` with a first line on xapi when it was not consulted."""
    def render_it(value: dict) -> str:
        text = render_value(value)
        return text if value["xapi"] == "consulted" else "xapi: {}\n{}".format(render.cell(value["xapi"]), text)
    return render_it


def cmd_move_memory(args) -> int:
    # started in the background (--lock-fd): the parent claimed the VM and handed us its lock, which
    # move_memory.claim verifies before anything is read or moved; a refusal after that reaches the
    # journal (a background mover's only listener), one before it changes nothing
    to = pagemove.parse_node(args.to, "--to")
    if not 1 <= args.verify_chunk <= 8192:
        raise InvalidArgument("--verify-chunk", "{}".format(args.verify_chunk), "1..8192 pages")
    max_bytes = parse_size(args.max, "--max", pagemove.MOVE_MAX) if args.max else None
    rate = pagemove.parse_rate(args.rate, "--rate")
    hv = common.hypervisor(args)
    guest_cpus, xapi = _xapi_view(args, hv, to)
    if not args.dry_run and args.lock_fd is None and common.first_change(args):
        # the host's first move: a refusal makes no state database (no reservation, no move to count
        # there yet: the room is the node's own); the claim checks all again under the VM's lock
        with common.flag_names(MOVE_FLAGS):
            move_memory.check(hv, args.vm, to, max_bytes, args.batch, args.probe_ms, args.allow_fallback,
                              args.vnode, args.skip, guest_cpus=guest_cpus)
    ledger = common.ledger_to_read(args) if args.dry_run else common.ledger(args)
    db = ledger.db
    pending = []
    if args.dry_run:  # changes nothing: says what the move's recovery would do first
        pending = move_recovery.pending(hv, MoveJournal.of_host(db, hv))
    elif args.lock_fd is None:
        move_recovery.recover(hv, MoveJournal.of_host(db, hv))  # a dead mover's batch first: before the scan, the claim
    lock = None
    with common.flag_names(MOVE_FLAGS):
        if args.dry_run:  # claims nothing
            plan = move_memory.prepare(hv, args.vm, to, max_bytes, args.batch, args.probe_ms, args.allow_fallback,
                                       args.skip, args.vnode, reserve.room_pages(hv, ledger).get(to),
                                       guest_cpus=guest_cpus)
        else:
            plan, lock = move_memory.claim(hv, ledger, args.vm, to, max_bytes, args.batch, args.probe_ms,
                                           args.allow_fallback, args.skip, args.vnode, args.lock_fd, guest_cpus)
    if args.dry_run:
        common.emit(args, dict(plan.to_dict(), xapi=xapi, recovery_pending=pending), _saying_xapi(render_plan))
        return 0
    show = None if args.json or not sys.stderr.isatty() else _progress_bar(sys.stderr)
    # xapi is asked before each batch whether a live migration or suspend of the VM has started
    # since (the plugin refused one at the start; a move lasts minutes): none without xapi
    link = rebalance.local_link(args)
    try:
        report = move_memory.run(hv, db, plan, rate, args.verify_chunk, args.allow_fallback, show, lock=lock,
                                 follow_affinity=not args.keep_affinity,
                                 still_movable=None if link is None else move_refusals.xapi_watch(
                                     link.use, plan.domain.uuid, clock=hv.clock))
    except NumaError as err:
        if show:
            sys.stderr.write("\n")
        if args.json and err.code == "NUMA_MOVE_STOPPED":
            common.print_json(json.loads(err.params[2]))
            return 1
        raise
    finally:
        if link is not None:
            link.close()
    if show:
        sys.stderr.write("\n")
    common.emit(args, dict(report, xapi=xapi), _saying_xapi(render_summary))
    return 0


def cmd_memory_moves(args) -> int:
    db = common.ledger_to_read(args).db  # (--recover: a dead mover's row, if there is one)
    journal = MoveJournal(db)
    # only --recover recovers; the listing says what recovery would do
    if args.recover:
        hv = common.hypervisor(args)
        notes, pending = move_recovery.recover(hv, MoveJournal.of_host(db, hv)), []
    else:
        notes, pending = [], _pending(args, db)
    rows = [r.to_dict() for r in journal.rows()]
    if args.vm is not None:
        rows = _moves_of(rows, args.vm, common.hypervisor(args))
    value = {"moves": rows, "migrations": rows, "recovered": notes,  # "migrations": the first version's key
             "recovery_pending": pending}
    said = ["recovered: " + n for n in notes] + ["recovery: " + n for n in pending]
    common.emit(args, value, lambda v: "\n".join([render.cell(n) for n in said] + [render.table(
        ["vm", "to", "state", "moved", "planned", "max pause", "error"],
        [[r["report"].get("vm", r["uuid"]), str(r["to"]), r["state"], str(r["report"].get("moved_pages", 0)),
          str(r["report"].get("planned_pages", 0)), "{} ms".format(r["report"].get("pause_max_ms", 0)),
          r["report"].get("error", "")] for r in rows])]))
    return 0


def _pending(args, db) -> List[str]:
    """What recovery would do (the listing reads the journal whatever the hypervisor says)."""
    try:
        hv = common.hypervisor(args)
        return move_recovery.pending(hv, MoveJournal.of_host(db, hv))
    except NumaError as err:
        return ["cannot tell what recovery would do: {}".format(err.message)]


def _moves_of(rows: list, vm: str, hv) -> list:
    """The journal rows of the VM a user means, read as every command reads a VM (domid,
    UUID in any case, name); a VM no longer running is found by what its rows recorded."""
    try:
        uuid = domain_by_name_or_id(hv, vm).uuid
        return [r for r in rows if r["uuid"] == uuid]
    except UnknownVM:
        gone = [r for r in rows if trim(vm).lower() == r["uuid"].lower() or vm in (r["report"].get("vm"),
                                                                                     str(r["domid"]))]
        if gone:
            return gone
        raise


def register(sub) -> None:
    q = sub.add_parser("move-memory", aliases=["migrate"],
                       help="move a running PVH VM's memory to another node, page by page "
                            "(PV and HVM guests are refused)")
    q.add_argument("vm", help="domid, name or UUID")
    q.add_argument("--to", required=True,
                   help="target node: 1, node:1 or nodes:1; only a node with CPUs in the host's guest mask "
                        "(guest_VCPUs_params:mask, from xapi), the vCPUs' soft affinity then inside it")
    q.add_argument("--max", type=given,
                   help="move at most this much ({}); default all".format(pagemove.MOVE_MAX.allowed))
    q.add_argument("--batch", type=whole_number, default=512,
                   help="pages per pause window: 1..8192 (default 512: whole 2 MiB runs)")
    q.add_argument("--rate", type=given,
                   help="average MiB/s at most: 0.1..1048576 (default: unpaced beyond a 50%% duty cycle)")
    q.add_argument("--probe-ms", dest="probe_ms", type=whole_number, default=0,
                   help="pause the guest this long first to find frames Xen writes while it is paused: "
                        "0..60000 (default 0: layout recognition only)")
    q.add_argument("--verify-chunk", dest="verify_chunk", type=signed_whole_number, default=16,
                   help="check that freed frames really were freed every this many pages: 1..8192 (default 16)")
    q.add_argument("--allow-fallback", dest="allow_fallback", action="store_true",
                   help="if the target node runs short, put the rest anywhere instead of failing")
    q.add_argument("--dry-run", action="store_true", help="print the skip set and the plan; move nothing")
    q.add_argument("--lock-fd", dest="lock_fd", type=file_descriptor, help=argparse.SUPPRESS)
    q.add_argument("--keep-affinity", dest="keep_affinity", action="store_true",
                   help="leave node and soft affinity as they are afterwards (default: they follow the memory)")
    q.add_argument("--skip", type=whole_number, default=0,
                   help="leave the first N movable pages alone (moved by an earlier step): 0 up to the VM's pages at "
                        "its maximum memory; default 0")
    q.add_argument("--vnode", type=whole_number,
                   help="a vNUMA VM: move exactly this vnode, whole (its memory ranges and its vCPUs), and record "
                        "its new pnode; a vNUMA VM's memory moves no other way")
    q.add_argument("--no-xapi", dest="no_xapi", action="store_true",
                   help="do not ask xapi for the host's guest mask (the move then keeps to none)")
    q.add_argument("--guest-cpus", dest="guest_cpus", help=argparse.SUPPRESS)  # a background mover's, from its claimer
    common.add_ledger(q)
    common.add_json(q)
    q.set_defaults(func=cmd_move_memory)

    q = sub.add_parser("memory-moves", aliases=["migrations"], help="memory moves in progress or done")
    q.add_argument("vm", nargs="?", help="only this VM (name, domid or UUID)")
    q.add_argument("--recover", action="store_true",
                   help="also finish what a dead mover left (done by every move and by xapi-numad anyway; "
                        "without it, what is left is only listed)")
    common.add_ledger(q)
    common.add_json(q)
    q.set_defaults(func=cmd_memory_moves)


def file_descriptor(text: str) -> int:
    """--lock-fd: a whole number a C int holds (a ValueError, which argparse reports naming the flag)."""
    value = whole_number(text)
    if value > 2 ** 31 - 1:
        raise ValueError(text)
    return value
