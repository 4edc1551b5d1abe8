"""``xapi-numa sim ...`` and ``xapi-numa demo``: scripting the simulated host."""
import contextlib
import os
import sys
from typing import Iterator, List, Set

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.store import SimStore
from xapi_numa.cli import common, render
from xapi_numa.ops import instance_lock
from xapi_numa.ops.command_line import given
from xapi_numa.ops.observe import as_typed, domain_by_name_or_id
from xapi_numa.backends.sim.loads import LOAD_SYNTAX
from xapi_numa.core.topology import Topology, parse_distances
from xapi_numa.core.units import SIZE_FORMS, SizeRange, exact_size, parse_size
from xapi_numa.errors import InvalidArgument, NoCapacity, StateError
from xapi_numa.core.numbers import plain, signed_decimal_number, signed_whole_number, whole_number
from xapi_numa.state.locks import FileLock, take_vm_locks

SCHEDULERS = ("credit", "credit2")


MAX_PCPUS = 4096  # Xen's NR_CPUS at most
STATE_FILE = "the simulated host's state file (as in --backend sim:PATH)"
NODE_MEMORY = SizeRange(64 << 20, 64 << 40, "one node")  # 64T: beyond any host built


def cmd_sim_init(args) -> int:
    if not args.path.strip():
        raise InvalidArgument("PATH", repr(args.path), "a state file's path, e.g. host.json")
    if os.path.isdir(args.path):
        raise InvalidArgument("PATH", "{} is a directory".format(args.path), "a state file's path, e.g. host.json")
    if not 1 <= args.nodes <= 64:
        raise InvalidArgument("--nodes", "{}".format(args.nodes), "1..64")
    if not 1 <= args.cpus_per_node <= 512:
        raise InvalidArgument("--cpus-per-node", "{}".format(args.cpus_per_node), "1..512")
    if args.nodes * args.cpus_per_node > MAX_PCPUS:
        raise InvalidArgument("--cpus-per-node", "{} nodes x {} pCPUs is {} pCPUs".format(
            args.nodes, args.cpus_per_node, args.nodes * args.cpus_per_node),
            "at most {} pCPUs in all (Xen's NR_CPUS)".format(MAX_PCPUS))
    memory = parse_size(args.memory_per_node, "--memory-per-node", NODE_MEMORY)
    with common.flag_names({"distances": "--distances"}):
        distances = parse_distances(args.distances, args.nodes, "--distances") if args.distances else None
        topo = Topology.uniform(args.nodes, args.cpus_per_node, memory, distances)
    dom0_sizes = SizeRange(64 << 20, memory * args.nodes // 2, "half the host")
    dom0_memory = parse_size(args.dom0_memory, "--dom0-memory", dom0_sizes) if args.dom0_memory else None
    if args.dom0_vcpus is None:  # the default: 4, or every pCPU of a smaller host
        args.dom0_vcpus = min(4, len(topo.cpus))
    if not 1 <= args.dom0_vcpus <= min(512, len(topo.cpus)):
        raise InvalidArgument("--dom0-vcpus", "{}".format(args.dom0_vcpus),
                              "1..{} (the host's pCPUs)".format(min(512, len(topo.cpus))))
    try:  # a PATH no host can be made at is refused input (exit 2), as a directory there is
        SimStore(args.path).refuse_unless_replaceable(args.force)
    except StateError as err:
        raise InvalidArgument("PATH", err.message, "a new file's path in an existing folder, or a simulated "
                                                   "host's with --force") from None
    with _held_for_replacement(args.path, args.force):
        with common.flag_names({"dma_bits": "--dma-bits"}):
            SimHypervisor.init(args.path, topo, args.scheduler, args.seed, args.dom0_vcpus, dom0_memory, args.force,
                               args.dma_bits)
    print("simulated host at {}: {} nodes x {} pCPUs, {} per node, scheduler {}".format(
        args.path, args.nodes, args.cpus_per_node, args.memory_per_node, args.scheduler))
    return 0


@contextlib.contextmanager
def _held_for_replacement(path: str, force: bool) -> Iterator[None]:
    """A new host at ``path`` deletes the state database beside it: not under xapi-numad
    running for the old one, nor under a page mover or a place of one of its VMs (each
    holds its VM's lock beside that database until it ends).  A mover's next batch would
    move the pages of whatever domain of the new host has its domid, and its journal
    would go to the deleted database.  (xapi-numa-rrdd only reads the host.)  From the
    check to the end of the replacement this process holds xapi-numad's lock and every
    VM lock of the old host's VMs, so that none of them can start in between.  The same
    holds where the host's file is gone but its database is still there: a daemon of the
    old host may still hold that database open."""
    store = SimStore(path)
    store.refuse_unless_replaceable(force)  # (nothing made beside a path that is refused)
    if not os.path.exists(path) and not any(map(os.path.exists, store.ledger_files())):
        yield  # nothing to replace: no host, and no database a process could be using
        return
    held = instance_lock.holder("sim:" + path)
    if held is not None:
        raise StateError("xapi-numad runs for the simulated host {} (it holds {}): stop it before "
                         "replacing the host".format(path, held))
    daemon = instance_lock.acquire("sim:" + path)  # (one that started since the check is refused here)
    taken: List[FileLock] = []
    try:
        seen: Set[str] = set()
        uuids = _vm_uuids(store)
        while True:  # until no VM was made since the last read: each new one's locks taken too
            seen |= uuids
            taken, busy = take_vm_locks(store.ledger_path, uuids, taken)
            if busy:
                kind, vm, lock = busy[0]
                what = {"move": "a memory move", "place": "a place"}.get(kind, "a " + kind)
                raise StateError("{} of VM {} runs on the simulated host {} (it holds {}): let it end, or stop "
                                 "it, before replacing the host".format(what, vm, path, lock))
            uuids = _vm_uuids(store) - seen
            if not uuids:
                break
        yield
    finally:
        for lock in taken:
            lock.release()
        os.close(daemon)


def _vm_uuids(store: SimStore) -> Set[str]:
    """The UUIDs of the domains of the host in ``store``: none where it cannot be read
    (a damaged file replaced by --force: nothing works on that host)."""
    try:
        with store.snapshot() as host:
            return {d.uuid for d in host.domains.values()}
    except StateError:
        return set()


def cmd_sim_create(args) -> int:
    sim = SimHypervisor(args.path)
    topo = sim.topology()
    # given, even as "", is given: an empty list is refused, never read as "not given"
    hard = topo.parse_cpus(args.hard, "--hard") if args.hard is not None else None
    soft = topo.parse_cpus(args.soft, "--soft") if args.soft is not None else None
    for flag, text, cpus in (("--hard", args.hard, hard), ("--soft", args.soft, soft)):
        if cpus is not None and not cpus:
            raise InvalidArgument(flag, "{!r} leaves no CPU".format(text), "a non-empty CPU list")
    if not 1 <= args.vcpus <= 512:
        raise InvalidArgument("--vcpus", "{}".format(args.vcpus), "1..512")
    sizes = sim.guest_memory(args.vcpus, args.type)
    memory = parse_size(args.memory, "--memory", sizes)
    try:
        with common.flag_names({"load": "--load", "type": "--type", "memory": "--memory"}):
            domid = sim.create(as_typed(args.name), args.vcpus, memory, hard, soft, args.load, args.type, args.paused,
                               passthrough=args.passthrough)
    except NoCapacity:
        # the allocator counts pages; the user typed a size
        raise InvalidArgument("--memory", "{} does not fit: the most that does, with its build's overhead, "
                              "is {}".format(args.memory, exact_size(sizes.high)), sizes.allowed) from None
    print(domid)
    return 0


_DONE = {"pause": "paused", "unpause": "unpaused", "destroy": "destroyed"}


def cmd_sim_control(args) -> int:
    sim = SimHypervisor(args.path)
    domain = domain_by_name_or_id(sim, args.name)  # a name typed in UTF-8 on an ASCII locale too
    domid = domain.domid
    if domid == 0:  # Xen refuses it (EPERM, EINVAL): "not privileged" or "invalid argument" would mislead
        raise InvalidArgument("VM", "dom0 cannot be {}".format(_DONE[args.action]), "a guest's domid, name or UUID")
    {"pause": sim.pause, "unpause": sim.unpause, "destroy": sim.destroy}[args.action](domid)
    print("domain {} ({}) {}".format(domid, render.cell(domain.name), _DONE[args.action]))
    return 0


def cmd_sim_run(args) -> int:
    if not 0 < args.seconds <= 86400:
        raise InvalidArgument("--seconds", plain(args.seconds), "more than 0, at most 86400")
    SimHypervisor(args.path).run(args.seconds)
    return 0


def _check_plot_path(path: str) -> None:
    if path == "none":
        return
    folder = os.path.dirname(os.path.abspath(path)) if path.strip() else ""
    if not path.strip() or os.path.isdir(path) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise InvalidArgument("--plot", repr(path) if not path.strip() else "{}: {}".format(
            path, "a directory" if os.path.isdir(path) else "its directory does not exist or cannot be written"),
            "a file path in a writable directory, or none")


def cmd_demo(args) -> int:
    from xapi_numa.cli.demo import run_demo
    from xapi_numa.cli.demo_rebalance import run_rebalance_demo

    _check_plot_path(args.plot)  # before minutes of simulation, not after
    run_demo(args.seed, args.schedulers.split(","), sys.stdout)
    if args.plot != "none":
        run_rebalance_demo(args.seed, sys.stdout, args.plot)
    return 0


def register(sub) -> None:
    q = sub.add_parser("demo", help="the seed scenario on a simulated 2 x 28 pCPU host")
    q.add_argument("--seed", type=whole_number, default=1, help="simulation seed (default 1)")
    q.add_argument("--schedulers", default="credit,credit2", help="comma-separated: credit, credit2 (default both)")
    q.add_argument("--plot", default="xapi-numa-demo.svg",
                   help="where to write the rebalancing chart (default xapi-numa-demo.svg; none: skip that part)")
    q.set_defaults(func=cmd_demo)

    sim = sub.add_parser("sim", help="script the simulated host").add_subparsers(dest="sim_command",
                                                                                    metavar="SIMCOMMAND")
    sim.required = True
    s = sim.add_parser("init", help="create a simulated host at PATH")
    s.add_argument("path", help=STATE_FILE)
    s.add_argument("--nodes", type=signed_whole_number, required=True, help="NUMA nodes: 1..64")
    s.add_argument("--cpus-per-node", type=signed_whole_number, required=True,
                   help="pCPUs on each node: 1..512, at most {} in all".format(MAX_PCPUS))
    s.add_argument("--memory-per-node", required=True,
                   help="each node's memory: " + NODE_MEMORY.allowed)
    s.add_argument("--distances", type=given, help='SLIT rows, e.g. "10,21;21,10" (default 10 local, 20 remote)')
    s.add_argument("--scheduler", choices=SCHEDULERS, default="credit2", help="Xen's scheduler (default credit2)")
    s.add_argument("--seed", type=whole_number, default=0, help="simulation seed, 0 or more (default 0)")
    s.add_argument("--dom0-vcpus", type=signed_whole_number, help="dom0's vCPUs (default 4, at most the host's pCPUs)")
    s.add_argument("--dom0-memory", type=given, help="dom0's memory: 64M .. half the host's, as " + SIZE_FORMS
                   + "; default min(1G, 10%% of the host)")
    s.add_argument("--dma-bits", type=signed_whole_number,
                   help="dma_bits= on the host's Xen command line, 12..52 (52: no DMA zone); default none: Xen's "
                        "default DMA width (a quarter of node 0, at most 32 bits) on a host of more than one node")
    s.add_argument("--force", action="store_true", help="replace an existing state file")
    s.set_defaults(func=cmd_sim_init)

    s = sim.add_parser("create", help="create a guest (as xl create would)")
    s.add_argument("path", help=STATE_FILE)
    s.add_argument("name", help="the new domain's name: unique, not all digits, not another domain's UUID")
    s.add_argument("--vcpus", type=signed_whole_number, required=True, help="the guest's vCPUs: 1..512, the simulated "
                   "Xen's own limit (place and vnuma plan up to 4096 for a real host)")
    s.add_argument("--memory", required=True, help="1M (xl's memory= counts MiB) .. the host's free memory "
                                                   "after other domains' claims, as " + SIZE_FORMS)
    s.add_argument("--soft", help="soft affinity, Xen CPU-list syntax (0-27, node:1, all)")
    s.add_argument("--hard", help="hard affinity, Xen CPU-list syntax")
    # argparse formats help with %: a literal % must be doubled
    s.add_argument("--load", default="busy", help=LOAD_SYNTAX.replace("%", "%%") + " (default busy)")
    s.add_argument("--type", choices=("pv", "pvh", "hvm"), default="pv", help="guest type (default pv, as xl's)")
    s.add_argument("--paused", action="store_true", help="leave the new domain paused (xl create -p)")
    s.add_argument("--passthrough", action="store_true", help="the guest has a PCI device passed through")
    s.set_defaults(func=cmd_sim_create)

    for action in ("pause", "unpause", "destroy"):
        s = sim.add_parser(action, help="{} a domain".format(action))
        s.add_argument("path", help=STATE_FILE)
        s.add_argument("name", help="name, domid or UUID")
        s.set_defaults(func=cmd_sim_control, action=action)

    s = sim.add_parser("run", help="advance simulated time")
    s.add_argument("path", help=STATE_FILE)
    s.add_argument("--seconds", type=signed_decimal_number, required=True,
                   help="simulated seconds to run: more than 0, at most 86400")
    s.set_defaults(func=cmd_sim_run)
