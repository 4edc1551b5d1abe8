"""``xapi-numa backends [VM] [--json]``: each guest's backend threads and IRQs in dom0,
where they may run, where they ran, and whether they sit on its home nodes."""
from xapi_numa.backends.open import backend_spec
from xapi_numa.cli import common, render
from xapi_numa.errors import BackendUnavailable, InvalidArgument
from xapi_numa.ops import backend_alignment, observe
from xapi_numa.ops.observe import domain_by_name_or_id


def cmd_backends(args) -> int:
    if args.pool:
        raise InvalidArgument("--pool", "backend work is per host (it lives in each host's dom0)",
                              "xapi-numa backends on the host itself")
    hv = common.hypervisor(args)
    # the VM first: a simulated host's dom0 tree is made at its first look, and a VM
    # that is not there must change nothing
    if args.vm is not None:
        domain = domain_by_name_or_id(hv, args.vm)
        if domain.domid == 0:
            raise InvalidArgument("VM", "dom0 has no backends of its own", "a guest's domid, name or UUID")
    dom0 = backend_alignment.dom0_for(backend_spec(args.backend), hv)
    if dom0 is None:
        raise BackendUnavailable("this machine is not dom0 of a Xen host (no /proc/xen): "
                                 "backend threads can only be read there")
    report = backend_alignment.report(observe.take(hv), dom0, None if args.vm is None else domain.domid)
    common.emit(args, report, render_report)
    return 0


def render_report(rep: dict) -> str:
    """For people; names (a VM's, a thread's) shown escaped."""
    lines = ["dom0 vCPU -> node: " + (", ".join("{}->{}".format(v, n) for v, n in rep["dom0_layout"].items())
                                      or "none")]
    lines += ["problem: " + p for p in rep["problems"]]
    lines.append("irqbalance: " + rep["irqbalance"])
    for vm in rep["vms"]:
        lines.append("{} (domid {}): home nodes {}, backend work belongs on dom0 vCPUs {}".format(
            render.cell(vm["name"]), vm["domid"], ",".join(map(str, vm["home_nodes"])), vm["dom0_vcpus"] or "-"))
        for t in vm["threads"]:
            lines.append("  thread {:>7} {:<16} {:<8} allowed {:<8} last ran on {:>3}  {:8.2f}s {}".format(
                t["tid"], render.cell(t["name"]), t["kind"], t["allowed"], t["last_cpu"], t["cpu_time"],
                "" if t["aligned"] else "(not aligned)"))
        for q in vm["irqs"]:
            ran = ",".join("{}:{}".format(c, n) for c, n in q["ran_on"].items()) or "-"
            lines.append("  irq    {:>7} {:<16} allowed {:<8} taken on {} {}".format(
                q["irq"], render.cell(q["name"]), q["allowed"], ran, "" if q["aligned"] else "(not aligned)"))
        if not vm["threads"] and not vm["irqs"]:
            lines.append("  no backend threads or IRQs found in dom0")
    return "\n".join(lines)


def register(sub) -> None:
    q = sub.add_parser("backends", help="each VM's backend threads and IRQs in dom0: allowed where, ran where")
    q.add_argument("vm", nargs="?", metavar="VM", help="domid, name or UUID (default: every guest)")
    common.add_json(q)
    q.set_defaults(func=cmd_backends)
