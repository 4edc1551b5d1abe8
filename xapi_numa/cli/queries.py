"""``xapi-numa topology | vcpus | memory | top | homing --dry-run``: what the host looks like,
and what xapi-numad would do now."""
import json
import sys
import time

from xapi_numa.cli import common, rebalance, render
from xapi_numa.errors import InvalidArgument, NumaError, UnknownVM
from xapi_numa.core import locality, numbers
from xapi_numa.ops import observe, queries, runtime
from xapi_numa.ops.observe import domain_by_name_or_id
from xapi_numa.ops.rebalancing import Rebalancer
from xapi_numa.core.host import refuse_blank
from xapi_numa.core.numbers import plain, signed_decimal_number


def cmd_topology(args) -> int:
    if args.pool:
        from xapi_numa.ops.pool_queries import failed_host, host_labels, per_host

        with common.pool_session(args) as session:
            reports = per_host(session, "host_topology")
        if args.json:
            common.print_json(reports)
        else:
            labels = host_labels(reports)
            for host, entry in reports.items():  # a host's name, and a failure that quotes one, shown escaped
                why, label = failed_host(entry), render.cell(labels[host])
                print("== {}: did not answer ({})\n".format(label, render.cell(why)) if why else "== {} ({})\n{}\n"
                      .format(label, entry["answer"]["scheduler"], render.render_topology(entry["answer"])))
        return nobody_answered(reports)
    hv, ledger = common.hypervisor(args), common.ledger_to_read(args)
    report = queries.topology_report(hv, ledger.outstanding(), observe.known_node_claims(hv, ledger),
                                     observe.claims_overlap(hv, ledger))
    common.emit(args, report, render.render_topology)
    return 0


def cmd_vcpus(args) -> int:
    if args.pool:
        from xapi_numa.ops.pool_queries import failed_host, host_labels, per_host

        with common.pool_session(args) as session:
            per = per_host(session, "vcpus")
        labels = host_labels(per)
        for host, entry in per.items():
            if failed_host(entry):
                print("xapi-numa: host {} did not answer: {}".format(render.cell(labels[host]),
                                                                     render.cell(failed_host(entry))), file=sys.stderr)
        args.domain = common.typed(args.domain)
        if args.domain is not None:
            refuse_blank(args.domain)
        # each row names its host: "host" as people read it (the name, with the UUID where
        # two hosts share a name) and "host_uuid"
        rows = [dict(r, host=labels[host], host_uuid=host) for host, entry in per.items() if not failed_host(entry)
                for r in entry["answer"] if args.domain is None or _names(r, args.domain)]
        silent = sorted(labels[host] for host, entry in per.items() if failed_host(entry))
        if args.domain is not None and not rows and silent:  # it may run on one of them
            raise NumaError("no VM or domain {} on the hosts that answered; {} did not answer".format(
                render.cell(args.domain), ", ".join(map(render.cell, silent))))
        if args.domain is not None and not rows:
            raise UnknownVM(args.domain, "the domid, name or UUID of a domain on a host of the pool")
        common.emit(args, rows, render.render_vcpus)
        return nobody_answered(per)
    else:
        hv = common.hypervisor(args)
        domids = [domain_by_name_or_id(hv, args.domain).domid] if args.domain is not None else None
        rows = queries.vcpu_rows(hv, domids)
    common.emit(args, rows, render.render_vcpus)
    return 0


def nobody_answered(per: dict) -> int:
    """A pool query's exit code: 1 when no host answered (the output holds nothing but
    their failures), else 0 (a host that did not answer is marked in the output)."""
    from xapi_numa.ops.pool_queries import failed_host

    return 1 if per and all(failed_host(answer) for answer in per.values()) else 0


def _names(row: dict, ref: str) -> bool:
    """Does ``ref`` name this row's domain, as on one host: its domid (on each host), UUID or name?"""
    return ((numbers.is_decimal(ref) and len(ref) <= 10 and int(ref) == row["domid"])
            or ref.lower() == row.get("uuid", "").lower() or ref == row["name"])


def cmd_memory(args) -> int:
    if args.pool:
        raise InvalidArgument("--pool", "memory is per host", "xapi-numa vm-placement VM for a VM in the pool")
    rows = queries.memory_rows(common.hypervisor(args))
    common.emit(args, rows, render.render_memory)
    return 0


def cmd_top(args) -> int:
    if not 0.1 <= args.interval <= 3600:
        raise InvalidArgument("--interval", plain(args.interval), "0.1..3600 seconds")
    hv = common.hypervisor(args)
    ledger = common.ledger_to_read(args)
    tracker = Rebalancer(ledger.db)  # CPU demand and the time outside soft affinity, over the refreshes
    outside: dict = {}
    started, refreshes = time.monotonic(), 0
    while True:
        snap = observe.take(hv)
        tracker.observe_demand(snap)
        locality.count_outside(((d.uuid, snap.vcpus.get(d.domid, ())) for d in snap.domains), snap.topology,
                               outside)
        refreshes += 1
        report = queries.top_report(hv, ledger.outstanding(), tracker.demand,
                                    {u: o / t for u, (o, t) in outside.items() if t}, tracker.counts())
        report["outside_over"] = {"refreshes": refreshes, "seconds": round(time.monotonic() - started, 1)}
        if args.json and args.once:
            common.print_json(report)
        elif args.json:  # one compact document per line (JSON lines), flushed: a stream to read
            print(json.dumps(report, sort_keys=True, separators=(",", ":")), flush=True)
        else:
            print(_top_frame(render.render_top(report), args.once), flush=True)
        if args.once:
            return 0
        time.sleep(args.interval)


# home the cursor and clear the screen: a terminal's frame replaces the last one
CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _top_frame(text: str, once: bool) -> str:
    """One refresh of ``top`` as text: redrawn in place on a terminal; on a pipe or in a
    file, where escape codes would be garbage, plain frames one after another."""
    if once:
        return text
    head = time.strftime("%H:%M:%S  xapi-numa top\n\n") + text
    return CLEAR_SCREEN + head if sys.stdout.isatty() else head + "\n"


# homing, unlike the rebalancer, goes on while xapi is away (a VM pushed off its node is slow now)
HOMING_UNREACHABLE = ("unreachable: every VM counts as best_effort and no guest mask is known, as in xapi-numad "
                      "while xapi is away")


def cmd_homing(args) -> int:
    if not args.dry_run:
        raise InvalidArgument("--dry-run", "homing is done by xapi-numad; this command only shows its plan",
                              "xapi-numa homing --dry-run")
    hv = common.hypervisor(args)
    link, kw = rebalance.daemon_view(args)
    try:
        rt = runtime.Runtime(hv, common.ledger_to_read(args).db, runtime.Settings(scheduler=args.scheduler), **kw)
        outcomes = rt.what_now()
    finally:
        if link is not None:
            link.close()
    topo = hv.topology()
    rows = [o.to_dict() for o in outcomes]
    pins = [{"domid": r["domid"], "vcpu": r["vcpu"], "pin_to": topo.format_cpus(o.action.cpus),
             "restore_to": topo.format_cpus(o.action.original_hard), "reason": r["reason"]}
            for o, r in zip(outcomes, rows) if r["action"] == "PinTemporarily"]
    xapi = rebalance.xapi_state(link, HOMING_UNREACHABLE)
    if args.json:
        common.print_json({"scheduler": args.scheduler or hv.capabilities().scheduler, "pins": pins,
                           "actions": rows, "xapi": xapi})
        return 0
    if xapi != "consulted":
        print("xapi: " + render.cell(xapi))
    if not rows:
        print("nothing to do: no vCPU is both outside its soft affinity and fixable now")
    else:
        print(render.table(["action", "domid", "vcpu", "to", "why"],
                           [[r["action"], r.get("domid", ""), r.get("vcpu", ""),
                             _target(o.action, topo), r.get("reason", "")] for o, r in zip(outcomes, rows)]))
    return 0


def _target(action, topo) -> str:
    for field in ("cpus", "hard", "soft"):
        value = getattr(action, field, None)
        if value:
            return "{} {}".format(field, topo.format_cpus(value))
    return ""


def register(sub) -> None:
    q = sub.add_parser("topology", help="nodes, CPUs, memory and distances of this host")
    common.add_json(q)
    q.set_defaults(func=cmd_topology)

    q = sub.add_parser("vcpus", help="where each vCPU runs, and whether outside its soft affinity")
    q.add_argument("domain", nargs="?", help="domid, name or UUID (default: all domains)")
    common.add_json(q)
    q.set_defaults(func=cmd_vcpus)

    q = sub.add_parser("memory", help="memory of each domain on each node")
    common.add_json(q)
    q.set_defaults(func=cmd_memory)

    q = sub.add_parser("top", help="live view: per node busy CPUs and memory, per VM locality")
    q.add_argument("--once", action="store_true", help="print once and exit (with --json: one document; "
                                                       "without --once, one compact document per line)")
    q.add_argument("--interval", type=signed_decimal_number, default=2.0,
                   help="seconds between refreshes: 0.1..3600 (default 2)")
    common.add_ledger(q)
    common.add_json(q)
    q.set_defaults(func=cmd_top)

    q = sub.add_parser("homing", help="what xapi-numad would do now (pins, restores, soft-affinity moves)")
    q.add_argument("--dry-run", action="store_true", help="show the plan (the only mode)")
    q.add_argument("--scheduler", choices=("credit", "credit2"),
                   help="the guests' scheduler, when their cpupool's differs from the host default")
    rebalance.add_no_xapi(q)
    common.add_ledger(q)
    common.add_json(q)
    q.set_defaults(func=cmd_homing)
