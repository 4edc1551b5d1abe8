"""``xapi-numa rebalance --dry-run``: what the rebalancer would do now, and why.

The same code path as xapi-numad's, with the same view of which VMs it may move:
their policies and opt-outs and the host's guest mask, read from xapi (a simulated host, or ``--no-xapi``,
has none: the output says so).  It creates and changes nothing: not even the state database, where
there is none yet (it reads an empty one, as every query does: :func:`common.ledger_to_read`)."""
import time

from xapi_numa.backends.open import backend_spec
from xapi_numa.cli import common, render
from xapi_numa.core import actions as act
from xapi_numa.core.cpuset import format_ids
from xapi_numa.errors import InvalidArgument
from xapi_numa.ops import runtime
from xapi_numa.ops.local_xapi import consulted_for
from xapi_numa.ops.xapi_link import XapiLink, local_login, vm_view
from xapi_numa.core.numbers import signed_whole_number


UNREACHABLE = "unreachable: every VM is left alone, as xapi-numad leaves them while xapi is away"
NO_DATABASE = "no state database yet: no home moved so far, none held down (the dry run creates none)"
NOT_CONSULTED = ("not consulted (a simulated host, or --no-xapi): the VMs' policies and opt-outs, and the "
                 "host's guest mask, are left out")


def daemon_view(args) -> tuple:
    """xapi-numad's own view of the VMs, for a dry run of what it would do: their policies,
    opt-outs and the host's guest mask, from xapi (a simulated host has a xapi only in
    tests, which name it): (the link or None, Runtime's keyword arguments)."""
    link = local_link(args)
    return link, {} if link is None else vm_view(link)


def local_link(args):
    """A link to this host's xapi, or None: on a simulated host (a xapi only in tests, which
    name it) and with ``--no-xapi``."""
    return None if args.no_xapi or not consulted_for(backend_spec(args.backend)) else XapiLink(local_login,
                                                                                              time.monotonic)


def xapi_state(link, unreachable: str = UNREACHABLE) -> str:
    """What a dry run says of xapi: not consulted, consulted, or ``unreachable`` (with what
    xapi-numad does without it)."""
    return NOT_CONSULTED if link is None else "consulted" if link.read else not_reached(link, unreachable)


def not_reached(link, unreachable: str) -> str:
    """What to say of a xapi the dry run did not read: ``unreachable`` (with what xapi-numad
    does without it), or, where xapi refused the login (a wrong password is no xapi that is
    away), that refusal, naming the user and where, with the same consequence; or, logged in,
    xapi's refusal of the VMs' records (a pool member whose master is gone, say)."""
    if link.refusal is not None:
        return "login refused: {}; {}".format(link.refusal, unreachable.partition(": ")[2])
    if link.records_refusal is not None:
        return "VM records refused: {}; {}".format(link.records_refusal, unreachable.partition(": ")[2])
    return unreachable


def add_no_xapi(q, help_text: str = "do not ask xapi for the VMs' policies, opt-outs and the host's guest mask "
                                     "(as xapi-numad --no-xapi)") -> None:
    q.add_argument("--no-xapi", dest="no_xapi", action="store_true", help=help_text)


def cmd_rebalance(args) -> int:
    if not args.dry_run:
        raise InvalidArgument("--dry-run", "rebalancing is done by xapi-numad; this command only shows its plan",
                              "xapi-numa rebalance --dry-run")
    if not 1 <= args.samples <= 30:
        raise InvalidArgument("--samples", "{}".format(args.samples), "1..30")
    hv = common.hypervisor(args)
    link, kw = daemon_view(args)
    try:
        db = common.ledger_to_read(args).db  # (none yet: xapi-numad never ran here, no home moved, none held down)
        rt = runtime.Runtime(hv, db, runtime.Settings(fixup_every=0), **kw)
        decision = rt.rebalance_dry_run(args.samples)
        home_moves = rt.rebalancer.counts()
    finally:
        if link is not None:
            link.close()
    value = dict(decision.assessment.to_dict(), decision=decision.note,
                 actions=[act.describe(a) for a in decision.actions], home_moves=home_moves,
                 demand={uuid: round(d, 3) for uuid, d in sorted(rt.rebalancer.demand.items())},
                 xapi=xapi_state(link), state_database=NO_DATABASE if db.in_memory else "read")
    topo = hv.topology()
    common.emit(args, value, lambda v: _render(v, topo))
    return 0


def _render(value: dict, topo) -> str:
    lines = [] if value["xapi"] == "consulted" else ["xapi: " + render.cell(value["xapi"])]
    lines += [] if value["state_database"] == "read" else ["state database: " + value["state_database"]]
    lines += ["node loads (demand / pCPUs): " + ", ".join("{}: {:.2f}".format(n, l)
                                                        for n, l in value["loads"].items())]
    # (as the JSON's dropped_samples: one reason per VM, naming it; left out of the loads and gains above)
    lines += ["demand samples dropped: " + render.cell(reason) for reason in value.get("dropped_samples", ())]
    lines.append("decision: " + render.cell(value["decision"]))  # it names VMs: their names shown escaped
    if value["actions"]:
        lines.append(render.table(["action", "vm", "what"],
                                  [[a["action"], a.get("uuid", ""), _what(a, topo)] for a in value["actions"]]))
    if value["home_moves"]:
        lines.append("home moves so far: " + ", ".join("{} {}".format(n, k) for k, n in value["home_moves"].items()))
    return "\n".join(lines)


def _what(a: dict, topo) -> str:
    """An action in words, its CPUs and nodes in Xen's syntax (as homing --dry-run shows them)."""
    if a["action"] == "SetNodeAffinity":
        return "node affinity {}".format("automatic" if a["nodes"] is None else format_ids(a["nodes"]))
    if a["action"] == "SetAffinity":
        return "vCPU {} {}".format(a["vcpu"], ", ".join("{} affinity {}".format(kind, topo.format_cpus(a[kind]))
                                                         for kind in ("hard", "soft") if a.get(kind) is not None))
    if a["action"] == "MoveMemory" and a.get("vnode") is not None:
        return "move vnode {} whole to pnode {}".format(a["vnode"], a["to"])
    if a["action"] == "MoveMemory":
        return "move up to {} pages to node {}".format(a["max_pages"], a["to"])
    return ""


def register(sub) -> None:
    q = sub.add_parser("rebalance", help="what the rebalancer would do now (home moves, memory that follows)")
    q.add_argument("--dry-run", action="store_true", help="show the decision (the only mode)")
    q.add_argument("--samples", type=signed_whole_number, default=3,
                   help="looks at the host's CPU demand, one rebalance period apart: 1..30 (default 3)")
    add_no_xapi(q)
    common.add_ledger(q)
    common.add_json(q)
    q.set_defaults(func=cmd_rebalance)
