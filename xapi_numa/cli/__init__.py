"""The ``xapi-numa`` command line.

Queries (``topology``, ``vcpus``, ``memory``) work on any backend and take
``--json``; ``sim ...`` scripts the simulated host; ``demo`` runs the seed
scenario.  Errors print one line naming the field and what is allowed, and
exit non-zero; no traceback reaches the user (``XAPI_NUMA_DEBUG=1`` shows it).
"""

import argparse
import json
import os
import sys
import time
import traceback
from typing import List, Optional

from xapi_numa import __version__
from xapi_numa.cli import render
from xapi_numa.ops import queries
from xapi_numa.errors import InvalidArgument, NumaError
from xapi_numa.backends.open import BACKEND_SYNTAX, open_hypervisor
from xapi_numa.ops.observe import domain_by_name_or_id
from xapi_numa.backends.sim.loads import LOAD_SYNTAX
from xapi_numa.core.topology import Topology
from xapi_numa.core.units import SIZE_SYNTAX, format_size, parse_size

SCHEDULERS = ("credit", "credit2")


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


def parse_distances(text: str, nr_nodes: int) -> List[List[int]]:
    """``"10,21;21,10"`` -> matrix (rows separated by ';')."""
    try:
        rows = [[int(x) for x in row.split(",")] for row in text.split(";")]
    except ValueError:
        raise InvalidArgument("distances", f"{text!r} is not a matrix of integers",
                              'rows of comma-separated distances separated by ";", e.g. "10,21;21,10"') from None
    if len(rows) != nr_nodes:
        raise InvalidArgument("distances", f"{len(rows)} rows for {nr_nodes} nodes; the matrix must be square")
    return rows


# --- queries --------------------------------------------------------------------------------
def _pool_session(args):
    from xapi_numa.backends import xapi

    return xapi.login(xapi.credentials(args.pool, args.user, args.password_file))


def cmd_topology(args) -> int:
    if args.pool:
        from xapi_numa.ops.pool import per_host

        reports = per_host(_pool_session(args), "host_topology")
        if args.json:
            _print_json(reports)
        else:
            for host, report in reports.items():
                print(f"== {host} ({report['scheduler']})\n{render.render_topology(report)}\n")
        return 0
    report = queries.topology_report(open_hypervisor(args.backend))
    if args.json:
        _print_json(report)
    else:
        print(render.render_topology(report))
    return 0


def cmd_vcpus(args) -> int:
    if args.pool:
        from xapi_numa.ops.pool import per_host

        per = per_host(_pool_session(args), "vcpus")
        rows = [dict(r, host=host) for host, host_rows in per.items() for r in host_rows
                if not args.domain or args.domain in (str(r["domid"]), r["name"])]
        if args.json:
            _print_json(rows)
        else:
            print(render.render_vcpus(rows))
        return 0
    hv = open_hypervisor(args.backend)
    domids = [domain_by_name_or_id(hv, args.domain).domid] if args.domain else None
    rows = queries.vcpu_rows(hv, domids)
    if args.json:
        _print_json(rows)
    else:
        print(render.render_vcpus(rows))
    return 0


def cmd_memory(args) -> int:
    if args.pool:
        raise InvalidArgument("--pool", "memory is per host", "xapi-numa vm-placement VM for a VM in the pool")
    rows = queries.memory_rows(open_hypervisor(args.backend))
    if args.json:
        _print_json(rows)
    else:
        print(render.render_memory(rows))
    return 0


# --- the simulated host -----------------------------------------------------------------------
def _sim(path: str):
    from xapi_numa.backends.sim.backend import SimHypervisor

    return SimHypervisor(path)


def cmd_sim_init(args) -> int:
    from xapi_numa.backends.sim.backend import SimHypervisor

    if not 1 <= args.nodes <= 64:
        raise InvalidArgument("--nodes", f"{args.nodes}", "1..64")
    if not 1 <= args.cpus_per_node <= 512:
        raise InvalidArgument("--cpus-per-node", f"{args.cpus_per_node}", "1..512")
    memory = parse_size(args.memory_per_node, "--memory-per-node")
    if memory < 64 << 20:
        raise InvalidArgument("--memory-per-node", f"{args.memory_per_node} is too small", "at least 64M")
    distances = parse_distances(args.distances, args.nodes) if args.distances else None
    topo = Topology.uniform(args.nodes, args.cpus_per_node, memory, distances)
    dom0_memory = parse_size(args.dom0_memory, "--dom0-memory") if args.dom0_memory else None
    SimHypervisor.init(args.path, topo, args.scheduler, args.seed, args.dom0_vcpus, dom0_memory, args.force)
    print(f"simulated host at {args.path}: {args.nodes} nodes x {args.cpus_per_node} pCPUs, "
          f"{args.memory_per_node} per node, scheduler {args.scheduler}")
    return 0


def cmd_sim_create(args) -> int:
    sim = _sim(args.path)
    topo = sim.topology()
    hard = topo.parse_cpus(args.hard, "--hard") if args.hard else None
    soft = topo.parse_cpus(args.soft, "--soft") if args.soft else None
    if hard is not None and not hard:
        raise InvalidArgument("--hard", f"{args.hard!r} leaves no CPU", "a non-empty CPU list")
    if not 1 <= args.vcpus <= 512:
        raise InvalidArgument("--vcpus", f"{args.vcpus}", "1..512")
    memory = parse_size(args.memory, "--memory")
    domid = sim.create(args.name, args.vcpus, memory, hard, soft, args.load, args.type, args.paused,
                       passthrough=args.passthrough)
    print(domid)
    return 0


def cmd_sim_control(args) -> int:
    sim = _sim(args.path)
    domid = sim.find(args.name)
    getattr(sim, args.action)(domid)
    return 0


def cmd_sim_run(args) -> int:
    _sim(args.path).run(args.seconds)
    return 0


def cmd_demo(args) -> int:
    from xapi_numa.cli.demo import run_demo

    return run_demo(args.seed, args.schedulers.split(","), sys.stdout)


def _ledger(args):
    from xapi_numa.state.ledger import Ledger, default_path

    path = args.ledger
    if not path:
        from xapi_numa.backends.open import backend_spec

        spec = backend_spec(args.backend)
        # A simulated host keeps its ledger beside its state file.
        path = spec[4:] + ".ledger.db" if spec.startswith("sim:") and not os.environ.get(
            "XAPI_NUMA_LEDGER") else default_path()
    return Ledger(path)


def cmd_place(args) -> int:
    from xapi_numa.core.placement import Request
    from xapi_numa.core.policy import Policy
    from xapi_numa.ops.reserve import place_and_reserve

    if not 1 <= args.vcpus <= 4096:
        raise InvalidArgument("--vcpus", f"{args.vcpus}", "1..4096")
    memory = parse_size(args.memory, "--memory")
    if memory < 1:
        raise InvalidArgument("--memory", "must be more than 0", SIZE_SYNTAX)
    if not 0 < args.ttl <= 86400:
        raise InvalidArgument("--ttl", f"{args.ttl:g}", "more than 0, at most 86400 seconds")
    policy = Policy.parse(args.mode, args.nodes, args.on_exhaust)
    request = Request(args.vcpus, memory, policy, translated=args.type != "pv")
    hv = open_hypervisor(args.backend)
    placement, reservation, _ = place_and_reserve(hv, _ledger(args), request, args.vm, args.ttl, args.dry_run)
    topo = hv.topology()
    out = placement.to_dict(topo)
    out["reservation"] = reservation.to_dict() if reservation else None
    if args.json:
        _print_json(out)
        return 0
    print(f"nodes:    {','.join(map(str, placement.nodes))}" + ("  (fallback)" if placement.fallback else ""))
    print("memory:   " + ", ".join(f"node {n}: {format_size(b)}" for n, b in placement.memory))
    if placement.hard is not None:
        print(f"hard:     {out['hard']}")
    if placement.soft is not None:
        print(f"soft:     {out['soft']}")
    print(f"policy:   {placement.policy}")
    print(f"why:      {placement.reason}")
    if reservation:
        print(f"reserved: for {reservation.vm} until {time.strftime('%H:%M:%S', time.localtime(reservation.expires))}")
    else:
        print("reserved: nothing (dry run)")
    return 0


def cmd_reservations(args) -> int:
    ledger = _ledger(args)
    rows = [r.to_dict() for r in ledger.reservations()]
    if args.json:
        _print_json(rows)
        return 0
    print(render.table(["vm", "nodes", "total", "expires in", "claimed"],
                      [[r["vm"], ", ".join(f"{n}:{format_size(b)}" for n, b in r["nodes"].items()),
                        format_size(r["total"]), f"{max(0, r['expires'] - time.time()):.0f}s",
                        "yes" if r["claimed"] else ""] for r in rows]))
    return 0


def cmd_vm_start(args) -> int:
    from xapi_numa.ops.pool import vm_start

    result = vm_start(_pool_session(args), args.vm, args.host)
    if args.json:
        _print_json(result)
    else:
        p, s = result["placement"], result["settled"]
        print(f"{args.vm} started on {result['host']}, nodes {','.join(map(str, s['nodes']))} "
              f"(memory on {','.join(map(str, s['memory_nodes']))}); {p['reason']}")
    return 0


def cmd_vm_placement(args) -> int:
    from xapi_numa.ops.pool import vm_placement

    result = vm_placement(_pool_session(args), args.vm)
    if args.json:
        _print_json(result)
    elif "options" in result:
        print(f"{args.vm} is {result['state']}; where it would go, best first:")
        for o in result["options"]:
            print(f"  {o['host']}: nodes {','.join(map(str, o['nodes']))} - {o['reason']}")
    else:
        m = result["memory"]
        print(f"{args.vm} runs on {result['host']} (domid {m['domid']}), policy {result['policy']['mode']}: "
              f"memory " + ", ".join(f"node {n}: {format_size(b)}" for n, b in m["nodes"].items())
              + f"; {100 * m['local_share']:.0f}% local to its soft affinity")
        print(render.render_vcpus(result["vcpus"]))
    return 0


def cmd_top(args) -> int:
    hv = open_hypervisor(args.backend)
    ledger = _ledger(args)
    if not 0.1 <= args.interval <= 3600:
        raise InvalidArgument("--interval", f"{args.interval:g}", "0.1..3600 seconds")
    while True:
        report = queries.top_report(hv, ledger.outstanding())
        if args.json:
            _print_json(report)
        else:
            text = render.render_top(report)
            # refresh in place: home the cursor and clear the screen
            print(text if args.once else "\x1b[H\x1b[2J" + time.strftime("%H:%M:%S  xapi-numa top\n\n") + text,
                  flush=True)
        if args.once:
            return 0
        time.sleep(args.interval)


def cmd_homing(args) -> int:
    from xapi_numa.core import homing
    from xapi_numa.ops import observe

    if not args.dry_run:
        raise InvalidArgument("--dry-run", "homing is done by xapi-numad; this command only shows its plan",
                              "xapi-numa homing --dry-run")
    hv = open_hypervisor(args.backend)
    snap = observe.take(hv, 0.0)
    scheduler = hv.capabilities().scheduler
    pins = homing.plan(snap, {}, 0.0, scheduler)
    rows = [{"domid": p.domid, "vcpu": p.vcpu, "pin_to": snap.topology.format_cpus(p.cpus),
             "restore_to": snap.topology.format_cpus(p.original_hard), "reason": p.reason} for p in pins]
    if args.json:
        _print_json({"scheduler": scheduler, "displaced": len(homing.displaced(snap)), "pins": rows})
    elif not rows:
        print(f"nothing to do: {len(homing.displaced(snap))} vCPUs outside their soft affinity, none fixable now")
    else:
        print(render.table(["domid", "vcpu", "pin to", "then restore", "why"],
                          [[r["domid"], r["vcpu"], r["pin_to"], r["restore_to"], r["reason"]] for r in rows]))
    return 0


def cmd_release(args) -> int:
    if not _ledger(args).release(args.vm):
        raise NumaError(f"no reservation for {args.vm}")
    return 0


# --- parser ---------------------------------------------------------------------------------
def _progress_bar(stream):
    def show(tally) -> None:
        done = tally.released
        frac = done / tally.planned if tally.planned else 1.0
        bar = "#" * int(frac * 30)
        pauses = tally.pauses or [0.0]
        stream.write(f"\r[{bar:<30}] {100 * frac:5.1f}%  {done}/{tally.planned} pages  "
                     f"batch {tally.batches}/{tally.batches_planned}  max pause {1000 * max(pauses):.1f} ms")
        stream.flush()
    return show


def _print_move_summary(report: dict) -> None:
    print(f"moved:      {report['moved_pages']} pages to node {report['to']} "
          f"({report['superpages']} as 2 MiB superpages), {report['fallback_pages']} elsewhere")
    print(f"batches:    {report['batches']} of {report['batches_planned']}; pause max "
          f"{report['pause_max_ms']} ms, median {report['pause_median_ms']} ms")
    print(f"throughput: {report['throughput_mib_s']} MiB/s while moving; {report['elapsed_s']} s in all")
    skipped = report.get("skipped") or {}
    print("skipped:    " + (", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) or "nothing"))
    if report.get("affinity"):
        a = report["affinity"]
        print(f"affinity:   node and soft affinity now nodes {','.join(map(str, a['nodes']))}"
              + (f"; hard affinity of vCPUs {a['hard_excludes_memory']} excludes them"
                 if a.get("hard_excludes_memory") else ""))
    if report.get("error"):
        print(f"stopped:    {report['error']}")
    if report.get("stuck_gfns"):
        print(f"stuck gfns: {report['stuck_gfns']}")


def cmd_migrate(args) -> int:
    from xapi_numa.ops import move_memory as migrate
    from xapi_numa.core import memory_move as pagemove

    to = migrate.parse_node(args.to, "--to")
    if not 1 <= args.verify_chunk <= 8192:
        raise InvalidArgument("--verify-chunk", f"{args.verify_chunk}", "1..8192 pages")
    max_bytes = parse_size(args.max, "--max") if args.max else None
    rate = migrate.parse_rate(args.rate, "--rate")
    hv = open_hypervisor(args.backend)
    ledger = _ledger(args)
    journal = migrate.Journal(ledger)
    migrate.recover(hv, journal)  # a dead mover's batch first: before the scan, and before claiming the VM
    try:
        plan = migrate.prepare(hv, args.vm, to, max_bytes, args.batch, args.probe_ms, args.allow_fallback)
    except NumaError as err:
        if args.journal_owner:  # started in the background: the journal is the only one listening
            journal.fail_claimed(args.vm, err.message)
        raise
    if args.dry_run:
        if args.json:
            _print_json(plan.to_dict())
            return 0
        d = plan.to_dict()
        print(f"vm:       {d['vm']} (domid {d['domid']})")
        print(f"plan:     {d['pages']} of {d['movable_pages']} movable pages to node {d['to']} in "
              f"{d['batches']} batches, {d['superpage_runs']} whole 2 MiB runs")
        print(f"target:   node {d['to']} has {d['target_free_pages']} free pages")
        print("skip set:" + ("" if d["skipped"] else "  nothing"))
        for reason, gfns in sorted(d["skipped_gfns"].items()):
            print(f"  {reason:<10} {d['skipped'][reason]:>6}  {gfns}   ({pagemove.SKIP_EXPLAINED[reason]})")
        if d["busy_grants"]:
            print(f"          {d['busy_grants']} granted frames are mapped or in use by their grantee now")
        return 0
    show = None if args.json or not sys.stderr.isatty() else _progress_bar(sys.stderr)
    try:
        report = migrate.run(hv, ledger, plan, rate, args.verify_chunk, args.allow_fallback, show,
                             owner=args.journal_owner)
    except NumaError as err:
        if show:
            sys.stderr.write("\n")
        if args.json and err.code == "NUMA_MOVE_STOPPED":
            _print_json(json.loads(err.params[2]))
            return 1
        raise
    if show:
        sys.stderr.write("\n")
    if args.json:
        _print_json(report)
    else:
        _print_move_summary(report)
    return 0


def cmd_migrations(args) -> int:
    from xapi_numa.ops import move_memory as migrate

    journal = migrate.Journal(_ledger(args))
    notes = migrate.recover(open_hypervisor(args.backend), journal) if args.recover else []
    rows = journal.rows()
    if args.vm:
        rows = [r for r in rows if args.vm in (r["uuid"], r["report"].get("vm"), str(r["domid"]))]
    if args.json:
        _print_json({"migrations": rows, "recovered": notes})
        return 0
    for note in notes:
        print(f"recovered: {note}")
    print(render.table(["vm", "to", "state", "moved", "planned", "max pause", "error"],
                      [[r["report"].get("vm", r["uuid"]), str(r["to"]), r["state"],
                        str(r["report"].get("moved_pages", 0)), str(r["report"].get("planned_pages", 0)),
                        f"{r['report'].get('pause_max_ms', 0)} ms", r["report"].get("error", "")] for r in rows]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xapi-numa", description="NUMA placement and balancing for Xen/XAPI hosts")
    p.add_argument("--version", action="version", version=f"xapi-numa {__version__}")
    p.add_argument("--backend", help=f"hypervisor backend: {BACKEND_SYNTAX} (default: $XAPI_NUMA_BACKEND or xen)")
    p.add_argument("--pool", help="XenAPI URL of a pool master: query every host through its numa plugin "
                                  "(or $XAPI_NUMA_POOL_URL)")
    p.add_argument("--user", help="pool user name (or $XAPI_NUMA_POOL_USER)")
    p.add_argument("--password-file", dest="password_file",
                   help="file holding the pool password, readable by its owner only (or $XAPI_NUMA_POOL_PASSWORD)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    q = sub.add_parser("topology", help="nodes, CPUs, memory and distances of this host")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_topology)

    q = sub.add_parser("vcpus", help="where each vCPU runs, and whether outside its soft affinity")
    q.add_argument("domain", nargs="?", help="domid, name or UUID (default: all domains)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_vcpus)

    q = sub.add_parser("memory", help="memory of each domain on each node")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_memory)

    q = sub.add_parser("place", help="decide where a VM goes and reserve its memory")
    q.add_argument("--vcpus", type=int, required=True)
    q.add_argument("--memory", required=True, help=SIZE_SYNTAX)
    q.add_argument("--mode", help="any, best_effort (default), preferred, strict")
    q.add_argument("--nodes", help="ordered node list (1,3,0), nearest, or 2,nearest")
    q.add_argument("--on-exhaust", dest="on_exhaust", help="fallback (default) or fail")
    q.add_argument("--type", choices=("pv", "pvh", "hvm"), default="hvm", help="guest type (memory extents)")
    q.add_argument("--vm", help="the VM the reservation is for (UUID); default: a new ad-hoc key")
    q.add_argument("--ttl", type=float, default=300.0, help="seconds before an unused reservation expires")
    q.add_argument("--dry-run", action="store_true", help="decide only; reserve nothing")
    q.add_argument("--ledger", help="reservation ledger (default: $XAPI_NUMA_LEDGER or "
                                    "/var/lib/xapi-numa/ledger.db; beside the state file for sim:PATH)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_place)

    q = sub.add_parser("vm-start", help="start a VM on the pool's host with the best NUMA fit")
    q.add_argument("vm", help="VM UUID or unique name")
    q.add_argument("--host", help="start on this host (name or UUID) only")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_vm_start)

    q = sub.add_parser("vm-placement", help="where a VM's memory and vCPUs are, or would go")
    q.add_argument("vm", help="VM UUID or unique name")
    q.add_argument("--json", action="store_true", help="machine-readable output (the only output)")
    q.set_defaults(func=cmd_vm_placement)

    q = sub.add_parser("reservations", help="memory reserved for VMs that are starting")
    q.add_argument("--ledger", help="reservation ledger path")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_reservations)

    q = sub.add_parser("release", help="drop a VM's reservation")
    q.add_argument("vm")
    q.add_argument("--ledger", help="reservation ledger path")
    q.set_defaults(func=cmd_release)

    q = sub.add_parser("top", help="live view: per node busy CPUs and memory, per VM locality")
    q.add_argument("--once", action="store_true", help="print once and exit")
    q.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    q.add_argument("--ledger", help="reservation ledger path")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_top)

    q = sub.add_parser("homing", help="what xapi-numad would do now to bring displaced vCPUs home")
    q.add_argument("--dry-run", action="store_true", help="show the plan (the only mode)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_homing)

    q = sub.add_parser("migrate", help="move a running PVH/HVM VM's memory to another node, page by page")
    q.add_argument("vm", help="domid, name or UUID")
    q.add_argument("--to", required=True, help="target node: 1 or node:1")
    q.add_argument("--max", help=f"move at most this much ({SIZE_SYNTAX}); default all")
    q.add_argument("--batch", type=int, default=512, help="pages per pause window (default 512: whole 2 MiB runs)")
    q.add_argument("--rate", help="average MB/s at most (default: unpaced beyond a 50%% duty cycle)")
    q.add_argument("--probe-ms", dest="probe_ms", type=int, default=0,
                   help="pause the guest this long first to find frames Xen writes while it is paused "
                        "(default 0: layout recognition only)")
    q.add_argument("--verify-chunk", dest="verify_chunk", type=int, default=16,
                   help="check that freed frames really were freed every this many pages (default 16)")
    q.add_argument("--allow-fallback", dest="allow_fallback", action="store_true",
                   help="if the target node runs short, put the rest anywhere instead of failing")
    q.add_argument("--dry-run", action="store_true", help="print the skip set and the plan; move nothing")
    q.add_argument("--journal-owner", dest="journal_owner", type=int, help=argparse.SUPPRESS)
    q.add_argument("--ledger", help="ledger database holding the move journal")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_migrate)

    q = sub.add_parser("migrations", help="memory moves in progress or done, from the journal")
    q.add_argument("vm", nargs="?", help="only this VM (name, domid or UUID)")
    q.add_argument("--recover", action="store_true",
                   help="also unpause domains a dead mover left paused (done by every migrate run anyway)")
    q.add_argument("--ledger", help="ledger database holding the move journal")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_migrations)

    q = sub.add_parser("demo", help="the seed scenario on a simulated 2 x 28 pCPU host")
    q.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    q.add_argument("--schedulers", default="credit,credit2", help="comma-separated: credit, credit2")
    q.set_defaults(func=cmd_demo)

    sim = sub.add_parser("sim", help="script the simulated host").add_subparsers(dest="sim_command",
                                                                                    metavar="SIMCOMMAND")
    sim.required = True
    s = sim.add_parser("init", help="create a simulated host at PATH")
    s.add_argument("path")
    s.add_argument("--nodes", type=int, required=True)
    s.add_argument("--cpus-per-node", type=int, required=True)
    s.add_argument("--memory-per-node", required=True, help=SIZE_SYNTAX)
    s.add_argument("--distances", help='SLIT rows, e.g. "10,21;21,10" (default 10 local, 20 remote)')
    s.add_argument("--scheduler", choices=SCHEDULERS, default="credit2")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--dom0-vcpus", type=int, default=4)
    s.add_argument("--dom0-memory", help=f"dom0 memory ({SIZE_SYNTAX}); default min(1G, 10%% of the host)")
    s.add_argument("--force", action="store_true", help="replace an existing state file")
    s.set_defaults(func=cmd_sim_init)

    s = sim.add_parser("create", help="create a guest (as xl create would)")
    s.add_argument("path")
    s.add_argument("name")
    s.add_argument("--vcpus", type=int, required=True)
    s.add_argument("--memory", required=True, help=SIZE_SYNTAX)
    s.add_argument("--soft", help="soft affinity, Xen CPU-list syntax (0-27, node:1, all)")
    s.add_argument("--hard", help="hard affinity, Xen CPU-list syntax")
    s.add_argument("--load", default="busy", help=LOAD_SYNTAX)
    s.add_argument("--type", choices=("pv", "pvh", "hvm"), default="pv")
    s.add_argument("--paused", action="store_true", help="leave the new domain paused (xl create -p)")
    s.add_argument("--passthrough", action="store_true", help="the guest has a PCI device passed through")
    s.set_defaults(func=cmd_sim_create)

    for action in ("pause", "unpause", "destroy"):
        s = sim.add_parser(action, help=f"{action} a domain")
        s.add_argument("path")
        s.add_argument("name", help="name, domid or UUID")
        s.set_defaults(func=cmd_sim_control, action=action)

    s = sim.add_parser("run", help="advance simulated time")
    s.add_argument("path")
    s.add_argument("--seconds", type=float, required=True)
    s.set_defaults(func=cmd_sim_run)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NumaError as err:
        print(f"xapi-numa: error: {err.message}", file=sys.stderr)
        return 2 if isinstance(err, InvalidArgument) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:  # never show a traceback to a user
        if os.environ.get("XAPI_NUMA_DEBUG"):
            traceback.print_exc()
        print(f"xapi-numa: internal error: {type(err).__name__}: {err} "
              "(set XAPI_NUMA_DEBUG=1 for details)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
