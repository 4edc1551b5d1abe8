"""The ``numa`` XAPI host plugin: its functions and its one error mapping.

Functions (all arguments are strings; every result is a JSON string):
``host_topology``, ``vm_memory``, ``vcpus``, ``set_policy``, ``get_policy``,
``place``, ``settle``, ``release``, ``migrate_memory``, ``migration_status``.  Failures: a :class:`NumaError` becomes
``[code, ...]`` here and nowhere else; xapi failures pass through; anything
unexpected becomes ``XENAPI_PLUGIN_FAILURE`` as xapi's own dispatcher does.
Nothing but the one methodResponse reaches stdout; logs go to syslog and
stderr.

Configuration for tests and odd hosts: ``$XAPI_NUMA_BACKEND`` (hypervisor),
``$XAPI_NUMA_LEDGER`` (reservations), ``$XAPI_NUMA_XENAPI_URL`` (xapi).
"""

import json
import logging
import logging.handlers
import os
import re
import sys
import traceback
from typing import Callable, Dict, List, Optional, Set

from xapi_numa.plugin import protocol as proto
from xapi_numa.ops import queries
from xapi_numa.backends import xapi
from xapi_numa.errors import InvalidArgument, NotMovable, NotRunning, NumaError, UnknownVM
from xapi_numa.state.ledger import Ledger
from xapi_numa.core.placement import Planner, Request
from xapi_numa.core.policy import Policy
from xapi_numa.ops.reserve import place_and_reserve
from xapi_numa.core.units import parse_size

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_ARG = 1024
LOG = logging.getLogger("xapi-numa.plugin")


# --- argument checking ---------------------------------------------------------------------
def check_args(args: Dict[str, str], required: Set[str], optional: Set[str] = frozenset()) -> None:
    allowed = sorted(required | set(optional))
    for key, value in args.items():
        if key not in required and key not in optional:
            raise InvalidArgument(key, "unknown argument", ", ".join(allowed) or "no arguments")
        if len(value) > MAX_ARG:
            raise InvalidArgument(key, f"value is longer than {MAX_ARG} characters")
    for key in sorted(required):
        if key not in args:
            raise InvalidArgument(key, "missing argument", ", ".join(allowed))


def uuid_arg(args: Dict[str, str], key: str = "vm") -> str:
    value = args[key].strip().lower()
    if not UUID_RE.match(value):
        raise InvalidArgument(key, f"{args[key]!r} is not a UUID", "a UUID like 01234567-89ab-cdef-0123-456789abcdef")
    return value


def bool_arg(args: Dict[str, str], key: str, default: bool = False) -> bool:
    if key not in args:
        return default
    value = args[key].strip().lower()
    if value not in ("true", "false"):
        raise InvalidArgument(key, f"{args[key]!r}", "true, false")
    return value == "true"


def int_arg(args: Dict[str, str], key: str, low: int, high: int) -> int:
    try:
        value = int(args[key])
    except ValueError:
        raise InvalidArgument(key, f"{args[key]!r} is not an integer", f"{low}..{high}") from None
    if not low <= value <= high:
        raise InvalidArgument(key, f"{value} is out of range", f"{low}..{high}")
    return value


# --- context: what a call may touch ---------------------------------------------------------
class Context:
    """Lazily opened hypervisor, ledger and xapi session for one call."""

    def __init__(self, session_id: str, session=None, hv=None) -> None:
        self.session_id = session_id
        self._session, self._hv, self._ledger = session, hv, None

    @property
    def hv(self):
        if self._hv is None:
            from xapi_numa.backends.open import open_hypervisor

            self._hv = open_hypervisor()
        return self._hv

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger()
        return self._ledger

    @property
    def session(self):
        if self._session is None:
            self._session = xapi.plugin_session(self.session_id)
        return self._session

    def domain_of(self, uuid: str):
        """The running domain of VM ``uuid`` on this host."""
        for d in self.hv.domains():
            if d.uuid == uuid:
                return d
        xapi.vm_ref(self.session, uuid)  # UnknownVM if xapi does not know it either
        raise NotRunning(uuid)


# --- functions -------------------------------------------------------------------------------
def host_topology(ctx: Context, args: Dict[str, str]) -> dict:
    check_args(args, set())
    report = queries.topology_report(ctx.hv)
    reserved = ctx.ledger.outstanding()
    for node in report["nodes"]:
        node["memory_reserved"] = reserved.get(node["id"], 0)
        node["memory_claimable"] = max(0, node["memory_free"] - node["memory_claimed"] - node["memory_reserved"])
    caps = ctx.hv.capabilities()
    report["scheduler"] = caps.scheduler
    report["features"] = dict(caps.features)
    del report["cpus"]
    return report


def vm_memory(ctx: Context, args: Dict[str, str]) -> dict:
    check_args(args, {"vm"})
    uuid = uuid_arg(args)
    dom = ctx.domain_of(uuid)
    topo = ctx.hv.topology()
    pages = ctx.hv.node_pages(dom.domid)
    soft_nodes: Set[int] = set()
    for v in ctx.hv.vcpus(dom.domid):
        soft_nodes |= topo.nodes_of_cpus(v.soft & v.hard or v.hard)
    total = sum(pages.values())
    local = sum(p for n, p in pages.items() if n in soft_nodes)
    return {"vm": uuid, "domid": dom.domid, "nodes": {str(n): p << 12 for n, p in sorted(pages.items())},
            "total": total << 12, "soft_nodes": sorted(soft_nodes),
            "local_share": round(local / total, 4) if total else 0.0}


def vcpus(ctx: Context, args: Dict[str, str]) -> list:
    check_args(args, set(), {"vm"})
    domids = [ctx.domain_of(uuid_arg(args)).domid] if "vm" in args else None
    return queries.vcpu_rows(ctx.hv, domids)


def set_policy(ctx: Context, args: Dict[str, str]) -> dict:
    check_args(args, {"vm", "mode"}, {"nodes", "on_exhaust"})
    uuid = uuid_arg(args)
    policy = Policy.parse(args["mode"], args.get("nodes"), args.get("on_exhaust"))
    nr_nodes = len(ctx.hv.topology().nodes)
    for node in policy.nodes:
        if node >= nr_nodes:
            raise InvalidArgument("nodes", f"node {node} does not exist on this host", f"nodes 0..{nr_nodes - 1}")
    vm = xapi.vm_ref(ctx.session, uuid)
    xapi.store_policy(ctx.session, vm, policy)
    return {"vm": uuid, **policy.to_dict()}


def get_policy(ctx: Context, args: Dict[str, str]) -> dict:
    check_args(args, {"vm"})
    uuid = uuid_arg(args)
    return {"vm": uuid, **xapi.get_policy(ctx.session, xapi.vm_ref(ctx.session, uuid)).to_dict()}


def place(ctx: Context, args: Dict[str, str]) -> dict:
    """A placement for a VM about to start here: reserve, and pin the boot to it."""
    if "vm" in args:
        check_args(args, {"vm"}, {"dry_run"})
        uuid = uuid_arg(args)
        dry_run = bool_arg(args, "dry_run")
        vm = xapi.vm_ref(ctx.session, uuid)
        record = xapi.vm_record(ctx.session, vm)
        if not dry_run and record["power_state"] != "Halted":
            raise InvalidArgument("vm", f"VM {uuid} is {record['power_state']}; place reserves for a start",
                                  "a Halted VM, or dry_run=true")
        request = Request(int(record["VCPUs_max"]), int(record["memory_static_max"]),
                          Policy.from_other_config(record["other_config"]),
                          translated=record.get("domain_type", "hvm") != "pv")
    else:
        check_args(args, {"vcpus", "memory"}, {"dry_run", "mode", "nodes", "on_exhaust"})
        if not bool_arg(args, "dry_run", True):
            raise InvalidArgument("dry_run", "a what-if placement (vcpus, memory) cannot reserve", "true")
        uuid, vm, dry_run, record = None, None, True, None
        request = Request(int_arg(args, "vcpus", 1, 4096), parse_size(args["memory"], "memory"),
                          Policy.parse(args.get("mode"), args.get("nodes"), args.get("on_exhaust")))
    hv = ctx.hv
    planner = Planner(hv.topology())
    placement, reservation, loads = place_and_reserve(hv, ctx.ledger, request, uuid, dry_run=dry_run,
                                                      planner=planner)
    available = loads.available()
    result = placement.to_dict(planner.topology)
    result.update(vm=uuid, reserved=reservation is not None,
                  max_distance=max(planner.topology.distance(a, b) for a in placement.nodes for b in placement.nodes),
                  # what the chosen nodes still have after other starts' reservations and this VM
                  headroom=sum(available[n] for n in placement.nodes) - sum(placement.bytes_per_node.values()))
    if not dry_run:
        try:
            pin_boot(ctx.session, vm, record, placement.nodes, planner.topology.cpus_of_nodes(placement.nodes))
        except BaseException:
            ctx.ledger.release(uuid)
            raise
    return result


def pin_boot(session, vm: str, record: dict, nodes, cpus) -> None:
    """Boot-time hard pin in VCPUs_params["mask"], keeping the admin's own mask aside."""
    other = record["other_config"]
    if xapi.SAVED_MASK_KEY not in other:  # a second place keeps the first saved mask
        saved = record["VCPUs_params"].get("mask", xapi.NO_SAVED_MASK)
        xapi.set_other_config(session, vm, xapi.SAVED_MASK_KEY, saved)
    xapi.set_other_config(session, vm, xapi.PLACED_KEY, ",".join(map(str, nodes)))
    xapi.set_vcpus_param(session, vm, "mask", xapi.format_mask(cpus))


def restore_boot(session, vm: str) -> Optional[List[int]]:
    """Undo pin_boot; returns the admin's mask (None if there was none)."""
    other = xapi.call(session.xenapi.VM.get_other_config, vm)
    saved = other.get(xapi.SAVED_MASK_KEY)
    if saved is None:
        mask = xapi.call(session.xenapi.VM.get_VCPUs_params, vm).get("mask")
        return xapi.parse_mask(mask) if mask and xapi.PLACED_KEY not in other else None
    xapi.set_vcpus_param(session, vm, "mask", None if saved == xapi.NO_SAVED_MASK else saved)
    xapi.set_other_config(session, vm, xapi.SAVED_MASK_KEY, None)
    xapi.set_other_config(session, vm, xapi.PLACED_KEY, None)
    return None if saved == xapi.NO_SAVED_MASK else xapi.parse_mask(saved)


def settle(ctx: Context, args: Dict[str, str]) -> dict:
    """After the build: the policy's affinity replaces the boot pin; follow the memory."""
    check_args(args, {"vm"})
    uuid = uuid_arg(args)
    dom = ctx.domain_of(uuid)
    session, hv = ctx.session, ctx.hv
    vm = xapi.vm_ref(session, uuid)
    other = xapi.call(session.xenapi.VM.get_other_config, vm)
    policy = Policy.from_other_config(other)
    topo = hv.topology()
    placed = [int(n) for n in other.get(xapi.PLACED_KEY, "").split(",") if n.strip()]
    pages = hv.node_pages(dom.domid)
    total = sum(pages.values()) or 1
    # nodes holding a meaningful share of the memory (not the odd page Xen puts elsewhere)
    landed = sorted(n for n, p in pages.items() if p * 100 >= total)
    admin_mask = restore_boot(session, vm)
    nodes = placed or landed
    fixed_up = False
    if policy.mode == "strict":
        hard, soft = topo.cpus_of_nodes(nodes), None
    elif policy.mode == "any":
        hard, soft = frozenset(admin_mask) if admin_mask else topo.all_cpus, topo.all_cpus
    else:
        if landed and set(landed) != set(nodes):
            nodes, fixed_up = landed, True  # the memory decides where the vCPUs should be
        hard = frozenset(admin_mask) if admin_mask else topo.all_cpus
        soft = topo.cpus_of_nodes(nodes)
    for v in hv.vcpus(dom.domid):
        hv.set_vcpu_affinity(dom.domid, v.vcpu, hard=hard, soft=soft)
    ctx.ledger.release(uuid)
    return {"vm": uuid, "domid": dom.domid, "memory_nodes": landed, "nodes": sorted(nodes),
            "hard": topo.format_cpus(hard), "soft": topo.format_cpus(soft) if soft is not None else None,
            "fixed_up": fixed_up}


BUSY_OPERATIONS = {"migrate_send", "pool_migrate", "suspend", "checkpoint", "snapshot_with_quiesce"}


def migrate_memory(ctx: Context, args: Dict[str, str]) -> dict:
    """Move a running VM's memory to node ``to``, in the background; returns at once.
    Refusals (PV, passthrough, a live migration, already moving, no room) come back now."""
    from xapi_numa.ops import move_memory as migrate

    check_args(args, {"vm", "to"}, {"max", "rate"})
    uuid = uuid_arg(args)
    to = migrate.parse_node(args["to"], "to")
    nodes = len(ctx.hv.topology().nodes)
    if to >= nodes:
        raise InvalidArgument("to", f"no node {to} on this host", f"0..{nodes - 1}")
    max_bytes = parse_size(args["max"], "max") if "max" in args else None
    migrate.parse_rate(args.get("rate"), "rate")
    dom = ctx.domain_of(uuid)
    record = xapi.vm_record(ctx.session, xapi.vm_ref(ctx.session, uuid))
    busy = sorted(BUSY_OPERATIONS & set(record.get("current_operations", {}).values()))
    if busy:
        raise NotMovable(uuid, f"xapi is running {', '.join(busy)} on it")
    if record.get("attached_PCIs") or record.get("VGPUs"):
        raise NotMovable(uuid, "it has PCI devices or vGPUs passed through: device DMA mappings would go stale")
    journal = migrate.Journal(ctx.ledger)
    migrate.recover(ctx.hv, journal)  # before claiming: a dead mover's batch record must be used first
    migrate.check(ctx.hv, str(dom.domid), to, max_bytes)  # the scan and the plan are the mover's
    report = {"vm": dom.name, "uuid": uuid, "domid": dom.domid, "to": to, "state": migrate.RUNNING}
    journal.begin(dom, to, report)  # claimed now, atomically: a second call is refused
    child = migrate.start_background(dom.domid, to, ctx.ledger.path, max_bytes, args.get("rate"))
    journal.begin(dom, to, report, pid=child, owner=os.getpid())
    return dict(report, pid=child)


def migration_status(ctx: Context, args: Dict[str, str]) -> dict:
    """Progress or outcome of the last memory move of a VM on this host."""
    from xapi_numa.ops import move_memory as migrate

    check_args(args, {"vm"})
    uuid = uuid_arg(args)
    journal = migrate.Journal(ctx.ledger)
    recovered = migrate.recover(ctx.hv, journal)
    row = journal.status(uuid)
    if row is None:
        xapi.vm_ref(ctx.session, uuid)
        return {"vm": uuid, "state": "none"}
    return dict(row["report"], vm=uuid, state=row["state"], to=row["to"], pid=row["pid"], updated=row["updated"],
                recovered=recovered)


def release(ctx: Context, args: Dict[str, str]) -> dict:
    check_args(args, {"vm"})
    uuid = uuid_arg(args)
    had = ctx.ledger.release(uuid)
    restore_boot(ctx.session, xapi.vm_ref(ctx.session, uuid))
    return {"vm": uuid, "released": had}


FUNCTIONS: Dict[str, Callable[[Context, Dict[str, str]], object]] = {
    "host_topology": host_topology, "vm_memory": vm_memory, "vcpus": vcpus, "set_policy": set_policy,
    "get_policy": get_policy, "place": place, "settle": settle, "release": release,
    "migrate_memory": migrate_memory, "migration_status": migration_status,
}


# --- the boundary ---------------------------------------------------------------------------------
def failure_details(err: NumaError) -> List[str]:
    """The one mapping from NumaError to a XenAPI failure."""
    if isinstance(err, xapi.XapiError):
        return [err.code, *err.params]
    if isinstance(err, (UnknownVM, NotRunning, InvalidArgument, NotMovable)) or err.code == "NUMA_HYPERVISOR_ERROR":
        return err.xenapi_failure()
    return [err.code, err.message, *err.params]


def run_function(method: str, session_id: str, args: Dict[str, str]) -> str:
    """One call, as a methodResponse document; never raises."""
    fn = FUNCTIONS.get(method)
    if fn is None:
        return proto.failure_response([proto.UNKNOWN_FUNCTION, method])
    try:
        value = fn(Context(session_id), args)
        return proto.success_response(json.dumps(value, sort_keys=True))
    except NumaError as err:
        LOG.info("%s failed: %s", method, err.message)
        return proto.failure_response(failure_details(err))
    except Exception as err:  # a bug: say so to xapi, keep the traceback for the logs
        LOG.error("%s crashed:\n%s", method, traceback.format_exc())
        return proto.failure_response([proto.PLUGIN_FAILURE, method, type(err).__name__, str(err)])


def setup_logging() -> None:
    LOG.setLevel(logging.INFO)
    LOG.addHandler(logging.StreamHandler(sys.stderr))
    if os.path.exists("/dev/log"):
        try:
            handler = logging.handlers.SysLogHandler(address="/dev/log")
            handler.setFormatter(logging.Formatter("xapi-numa plugin: %(message)s"))
            LOG.addHandler(handler)
        except OSError:
            pass


def main(argv: List[str]) -> int:
    """Entry point of /etc/xapi.d/plugins/numa: one call in argv[1], one response on stdout."""
    setup_logging()
    try:
        import XenAPIPlugin  # type: ignore[import-not-found]
    except ImportError:
        XenAPIPlugin = None
    if XenAPIPlugin is not None and not os.environ.get("XAPI_NUMA_BUILTIN_DISPATCH"):
        XenAPIPlugin.dispatch({name: _for_xenapiplugin(name, XenAPIPlugin) for name in FUNCTIONS})
        return 0
    if len(argv) != 2:
        sys.stdout.write(proto.failure_response([proto.PLUGIN_FAILURE, "usage",
                                                 "expected one argument: an XML-RPC methodCall"]))
        return 0
    try:
        method, session_id, args = proto.parse_call(argv[1])
    except proto.BadCall as err:
        sys.stdout.write(proto.failure_response([proto.PLUGIN_FAILURE, "bad call", str(err)]))
        return 0
    sys.stdout.write(run_function(method, session_id, args))
    return 0


def _for_xenapiplugin(name: str, XenAPIPlugin):
    """Adapt a function to the host's XenAPIPlugin.dispatch (session object, args)."""
    def call(session, args):
        response = proto.parse_response(run_function(name, session._session, args))
        if response["Status"] == "Success":
            return response["Value"]
        details = response["ErrorDescription"]
        raise XenAPIPlugin.Failure(details[0], details[1:])
    return call
