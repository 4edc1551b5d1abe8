"""``xapi-numa rebalance --dry-run``: what the rebalancer would do now, and why."""
from xapi_numa.cli import common, render
from xapi_numa.core import actions as act
from xapi_numa.errors import InvalidArgument
from xapi_numa.ops import runtime
from xapi_numa.core.numbers import whole_number


def cmd_rebalance(args) -> int:
    if not args.dry_run:
        raise InvalidArgument("--dry-run", "rebalancing is done by xapi-numad; this command only shows its plan",
                              "xapi-numa rebalance --dry-run")
    if not 1 <= args.samples <= 30:
        raise InvalidArgument("--samples", "{}".format(args.samples), "1..30")
    hv = common.hypervisor(args)
    rt = runtime.Runtime(hv, common.ledger(args).db, runtime.Settings(fixup_every=0))
    decision = rt.rebalance_dry_run(args.samples)
    value = dict(decision.assessment.to_dict(), decision=decision.note,
                 actions=[act.describe(a) for a in decision.actions], home_moves=rt.rebalancer.counts(),
                 demand={uuid: round(d, 3) for uuid, d in sorted(rt.rebalancer.demand.items())})
    common.emit(args, value, _render)
    return 0


def _render(value: dict) -> str:
    lines = ["node loads (demand / pCPUs): " + ", ".join("{}: {:.2f}".format(n, l)
                                                        for n, l in value["loads"].items()),
             "decision: " + render.cell(value["decision"])]  # it names VMs: their names shown escaped
    if value["actions"]:
        lines.append(render.table(["action", "vm", "what"],
                                  [[a["action"], a.get("uuid", ""), _what(a)] for a in value["actions"]]))
    if value["home_moves"]:
        lines.append("home moves so far: " + ", ".join("{} {}".format(n, k) for k, n in value["home_moves"].items()))
    return "\n".join(lines)


def _what(a: dict) -> str:
    if a["action"] == "SetNodeAffinity":
        return "node affinity {}".format(a["nodes"])
    if a["action"] == "SetAffinity":
        return "vCPU {} soft affinity {} CPUs".format(a["vcpu"], len(a["soft"] or []))
    if a["action"] == "MoveMemory" and a.get("vnode") is not None:
        return "move vnode {} whole to pnode {}".format(a["vnode"], a["to"])
    if a["action"] == "MoveMemory":
        return "move up to {} pages to node {}".format(a["max_pages"], a["to"])
    return ""


def register(sub) -> None:
    q = sub.add_parser("rebalance", help="what the rebalancer would do now (home moves, memory that follows)")
    q.add_argument("--dry-run", action="store_true", help="show the decision (the only mode)")
    q.add_argument("--samples", type=whole_number, default=3,
                   help="looks at the host's CPU demand, one rebalance period apart (default 3)")
    common.add_ledger(q)
    common.add_json(q)
    q.set_defaults(func=cmd_rebalance)
