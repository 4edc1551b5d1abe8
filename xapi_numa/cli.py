"""The ``xapi-numa`` command line.

Queries (``topology``, ``vcpus``, ``memory``) work on any backend and take
``--json``; ``sim ...`` scripts the simulated host; ``demo`` runs the seed
scenario.  Errors print one line naming the field and what is allowed, and
exit non-zero; no traceback reaches the user (``XAPI_NUMA_DEBUG=1`` shows it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from typing import List, Optional

from . import __version__, views
from .errors import InvalidArgument, NumaError
from .hypervisor import BACKEND_SYNTAX, domain_by_name_or_id, open_hypervisor
from .sim.loads import LOAD_SYNTAX
from .topology import Topology
from .units import SIZE_SYNTAX, format_size, parse_size

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
    from . import xapi

    return xapi.login(xapi.credentials(args.pool, args.user, args.password_file))


def cmd_topology(args) -> int:
    if args.pool:
        from .pool import per_host

        reports = per_host(_pool_session(args), "host_topology")
        if args.json:
            _print_json(reports)
        else:
            for host, report in reports.items():
                print(f"== {host} ({report['scheduler']})\n{views.render_topology(report)}\n")
        return 0
    report = views.topology_report(open_hypervisor(args.backend))
    if args.json:
        _print_json(report)
    else:
        print(views.render_topology(report))
    return 0


def cmd_vcpus(args) -> int:
    if args.pool:
        from .pool import per_host

        per = per_host(_pool_session(args), "vcpus")
        rows = [dict(r, host=host) for host, host_rows in per.items() for r in host_rows
                if not args.domain or args.domain in (str(r["domid"]), r["name"])]
        if args.json:
            _print_json(rows)
        else:
            print(views.render_vcpus(rows))
        return 0
    hv = open_hypervisor(args.backend)
    domids = [domain_by_name_or_id(hv, args.domain).domid] if args.domain else None
    rows = views.vcpu_rows(hv, domids)
    if args.json:
        _print_json(rows)
    else:
        print(views.render_vcpus(rows))
    return 0


def cmd_memory(args) -> int:
    if args.pool:
        raise InvalidArgument("--pool", "memory is per host", "xapi-numa vm-placement VM for a VM in the pool")
    rows = views.memory_rows(open_hypervisor(args.backend))
    if args.json:
        _print_json(rows)
    else:
        print(views.render_memory(rows))
    return 0


# --- the simulated host -----------------------------------------------------------------------
def _sim(path: str):
    from .sim.backend import SimHypervisor

    return SimHypervisor(path)


def cmd_sim_init(args) -> int:
    from .sim.backend import SimHypervisor

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
    domid = sim.create(args.name, args.vcpus, memory, hard, soft, args.load, args.type, args.paused)
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
    from .demo import run_demo

    return run_demo(args.seed, args.schedulers.split(","), sys.stdout)


def _ledger(args):
    from .ledger import Ledger, default_path

    path = args.ledger
    if not path:
        from .hypervisor import backend_spec

        spec = backend_spec(args.backend)
        # A simulated host keeps its ledger beside its state file.
        path = spec[4:] + ".ledger.db" if spec.startswith("sim:") and not os.environ.get(
            "XAPI_NUMA_LEDGER") else default_path()
    return Ledger(path)


def cmd_place(args) -> int:
    from .placement import Request
    from .policy import Policy
    from .starts import place_and_reserve

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
    print(views.table(["vm", "nodes", "total", "expires in", "claimed"],
                      [[r["vm"], ", ".join(f"{n}:{format_size(b)}" for n, b in r["nodes"].items()),
                        format_size(r["total"]), f"{max(0, r['expires'] - time.time()):.0f}s",
                        "yes" if r["claimed"] else ""] for r in rows]))
    return 0


def cmd_vm_start(args) -> int:
    from .pool import vm_start

    result = vm_start(_pool_session(args), args.vm, args.host)
    if args.json:
        _print_json(result)
    else:
        p, s = result["placement"], result["settled"]
        print(f"{args.vm} started on {result['host']}, nodes {','.join(map(str, s['nodes']))} "
              f"(memory on {','.join(map(str, s['memory_nodes']))}); {p['reason']}")
    return 0


def cmd_vm_placement(args) -> int:
    from .pool import vm_placement

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
        print(views.render_vcpus(result["vcpus"]))
    return 0


def cmd_top(args) -> int:
    hv = open_hypervisor(args.backend)
    ledger = _ledger(args)
    if not 0.1 <= args.interval <= 3600:
        raise InvalidArgument("--interval", f"{args.interval:g}", "0.1..3600 seconds")
    while True:
        report = views.top_report(hv, ledger.outstanding())
        if args.json:
            _print_json(report)
        else:
            text = views.render_top(report)
            # refresh in place: home the cursor and clear the screen
            print(text if args.once else "\x1b[H\x1b[2J" + time.strftime("%H:%M:%S  xapi-numa top\n\n") + text,
                  flush=True)
        if args.once:
            return 0
        time.sleep(args.interval)


def cmd_homing(args) -> int:
    from . import homing, snapshot

    if not args.dry_run:
        raise InvalidArgument("--dry-run", "homing is done by xapi-numad; this command only shows its plan",
                              "xapi-numa homing --dry-run")
    hv = open_hypervisor(args.backend)
    snap = snapshot.take(hv, 0.0)
    scheduler = hv.scheduler() if hasattr(hv, "scheduler") else "credit2"
    pins = homing.plan(snap, {}, 0.0, scheduler)
    rows = [{"domid": p.domid, "vcpu": p.vcpu, "pin_to": snap.topology.format_cpus(p.cpus),
             "restore_to": snap.topology.format_cpus(p.original_hard), "reason": p.reason} for p in pins]
    if args.json:
        _print_json({"scheduler": scheduler, "displaced": len(homing.displaced(snap)), "pins": rows})
    elif not rows:
        print(f"nothing to do: {len(homing.displaced(snap))} vCPUs outside their soft affinity, none fixable now")
    else:
        print(views.table(["domid", "vcpu", "pin to", "then restore", "why"],
                          [[r["domid"], r["vcpu"], r["pin_to"], r["restore_to"], r["reason"]] for r in rows]))
    return 0


def cmd_release(args) -> int:
    if not _ledger(args).release(args.vm):
        raise NumaError(f"no reservation for {args.vm}")
    return 0


# --- parser ---------------------------------------------------------------------------------
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
