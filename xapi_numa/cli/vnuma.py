"""``xapi-numa vnuma``: the vNUMA layout a VM should be started with.

Prints the plan of :mod:`xapi_numa.core.vnuma` for a VM about to start: by
default its vnodes follow where the placement engine would put it (a dry run,
nothing reserved); ``--nodes`` names the pnodes; ``--split 0|1`` puts it on one
half of a split host.  ``--xl`` prints the lines for xl.cfg.  ``--store`` (with
``--pool``) plans a VM from its xapi record on its host and keeps the plan in its
``other_config`` (:mod:`xapi_numa.ops.vnuma_xapi`).
"""
import re
from typing import Dict, FrozenSet, List, Optional, Tuple

from xapi_numa.cli import common, rebalance, render
from xapi_numa.core import locality, numbers, vnuma, xenalloc
from xapi_numa.core.cpuset import check_known, format_ids
from xapi_numa.core.host import DomainInfo, refuse_blank
from xapi_numa.core.xenopsd_build import DEFAULT_VIDEO_MIB
from xapi_numa.core.placement import Request
from xapi_numa.core.policy import Policy, parse_ordered_nodes
from xapi_numa.core.numbers import signed_whole_number, whole_number
from xapi_numa.core.vnode_units import layout_affinity_actions
from xapi_numa.core.vnuma_guest import VNUMA_MEMORY, VNUMA_TYPES
from xapi_numa.core.units import PAGE_SHIFT, SizeRange, exact_size, format_size, parse_size
from xapi_numa.errors import InvalidArgument
from xapi_numa.ops.command_line import given as given_text
from xapi_numa.ops.executor import DONE, Executor
from xapi_numa.ops.observe import domain_by_name_or_id
from xapi_numa.ops.reserve import place_and_reserve
from xapi_numa.ops.vnuma_xapi import free_for_plan
from xapi_numa.state.ledger import Ledger


# the core's names for what this command's flags set
FLAGS = dict(common.POLICY_FLAGS, nodes="--policy-nodes", type="--type", memory_dynamic_min="--dynamic-min",
             memory="--memory", vcpus="--vcpus", half="--split")
# What the toolstacks put on top of a vNUMA guest's static max for Xen's maximum, once built.
# libxl 4.17: xc_domain_setmaxmem(target + LIBXL_MAXMEM_CONSTANT, 1024 KiB) in libxl__build_pre
# (libxl__arch_extra_memory, x86), the target being the static max (libxl refuses vNUMA with PoD);
# xenopsd: squeezed's target + xen_max_offset_mib (HVM and PVH: extra_internal_mib, 1 MiB,
# xapi-idl memory.ml) + the memory-offset it measures once the guest balloons.  Before the first
# unpause xenopsd leaves the maximum at squeezed's reservation instead (static max + overhead_mib:
# shadow, per-vCPU), so a domain is checked by the static max its toolstack records
# (Hypervisor.static_max) and by this slack only where nothing is recorded.
TOOLSTACK_SLACK = 1 << 20
HEX_OR_DECIMAL = re.compile(r"0[xX][0-9a-fA-F]{1,16}|[0-9]{1,20}")
# how --store's refusal of a VM xapi never starts offers a plan not kept, in this command's words
# (the plugin's vnuma_plan offers store=false, which no option of this command is)
NO_STORE_SAID = "no --store (a plan of --vcpus and --memory, shown and kept nowhere)"


def _guest(args) -> vnuma.GuestSpec:
    if not 1 <= args.vcpus <= 4096:
        raise InvalidArgument("--vcpus", "{}".format(args.vcpus), "1..4096")
    memory = parse_size(args.memory, "--memory", VNUMA_MEMORY)
    dynamic_min = parse_size(args.dynamic_min, "--dynamic-min", dynamic_min_sizes(memory)) if args.dynamic_min else None
    with common.flag_names(FLAGS):
        policy = Policy.parse(args.mode, args.policy_nodes, args.on_exhaust)
    return vnuma.GuestSpec(args.type, args.vcpus, memory, dynamic_min, policy)


def dynamic_min_sizes(memory: int) -> SizeRange:
    """--dynamic-min: --memory itself (the one value vNUMA takes)."""
    return SizeRange(memory, memory, "--memory: below it the guest would start with populate-on-demand, "
                                     "which Xen refuses with vNUMA")


def _pnodes(args, hv, ledger: Ledger, guest: vnuma.GuestSpec, vm: str) -> Tuple[List[int], Optional[Dict[int, int]]]:
    """The pnodes to follow: given, or where a placement dry run puts the VM (and the
    bytes it puts on each)."""
    if args.nodes is not None:
        topo = hv.topology()
        order = parse_ordered_nodes(args.nodes, "--nodes")
        check_known(order, topo.node_ids, "--nodes", args.nodes, "node")  # named with the host's range, as typed
        return list(order), None
    request = Request(guest.vcpus, guest.memory, guest.policy, dtype=guest.type)
    placement, _, _ = place_and_reserve(hv, ledger, request, vm, dry_run=True)
    return list(placement.nodes), placement.bytes_per_node


def _landed(hv, d: DomainInfo) -> Dict[int, int]:
    """Bytes per node where a built domain's memory is, on the nodes that hold a
    meaningful share of it (a few pages elsewhere make no vnode)."""
    pages = hv.node_pages(d.domid)
    return {n: pages[n] << PAGE_SHIFT for n in sorted(locality.memory_nodes(pages))}


def _check_landed(plan: vnuma.VnumaPlan, landed: Dict[int, int], d: DomainInfo) -> None:
    """A layout for a built domain must put its vnodes where its memory is: a vnode on
    a pnode that holds none of it would tell the guest its memory is where it is not."""
    planned = {v.pnode for v in plan.vnodes}
    if landed and planned != set(landed):
        raise InvalidArgument("--nodes", "vnodes on nodes {}, but domain {}'s memory is on nodes {}".format(
            ",".join(map(str, sorted(planned))), d.name, ",".join(map(str, landed))),
            "no --nodes or --split with --apply (the layout follows the memory), or move the memory first "
            "(xapi-numa move-memory)")


def _render(plan: dict) -> str:
    table = render.table(["vnode", "pnode", "memory", "vcpus", "vdistances"],
                         [[v["vnode"], v["pnode"], format_size(v["memory"]), format_ids(v["vcpus"]),
                           ",".join(map(str, v["vdistances"]))] for v in plan["vnodes"]])
    if "affinity" not in plan:
        return table
    video = " (vnode 0's ranges without {} of video RAM)".format(format_size(plan["video_ram"])) \
        if plan["video_ram"] else ""
    return table + "\nlayout set{}; each vnode's vCPUs' soft affinity on its pnode: {}".format(video, plan["affinity"])


def _store(args) -> int:
    """Through the pool: the plan from the VM's own record on its host, kept in its other_config."""
    from xapi_numa.ops.vnuma_pool import pool_plan
    from xapi_numa.ops.vnuma_xapi import VNUMA_KEY

    given = [flag for flag, value in (("--vcpus", args.vcpus is not None), ("--memory", args.memory),
                                      ("--dynamic-min", args.dynamic_min), ("--type", args.type),
                                      ("--nodes", args.nodes is not None), ("--mode", args.mode),
                                      ("--policy-nodes", args.policy_nodes), ("--on-exhaust", args.on_exhaust),
                                      ("--xl", args.xl), ("--apply", args.apply), ("--hole-start", args.hole_start),
                                      ("--videoram", args.videoram is not None))
             if value]
    if given:  # never quietly ignored: the stored plan would not be what was asked for
        raise InvalidArgument(given[0], "not with --store (the VM's record and policy say what it is; its host "
                                        "plans it)", "--store [--split 0|1] [--host HOST]")
    if args.split is not None and args.split not in (0, 1):
        raise InvalidArgument("--split", vnuma.SPLIT_HALF_REFUSED.format(args.split), vnuma.SPLIT_HALVES)
    vm, host = common.xapi_name(args.vm, "VM"), common.xapi_name(args.host, "--host")
    with common.pool_session(args) as session, common.flag_names({"host": "--host"}):
        result = pool_plan(session, vm, "split" if args.split is not None else "follow", args.split,
                           host, store=True, no_store_said=NO_STORE_SAID)
    common.emit(args, result, lambda r: "{} on {}: stored in other_config:{}\n{}".format(
        render.cell(args.vm), render.cell(r["host"]), VNUMA_KEY, _render(r)))
    return 0


def cmd_vnuma(args) -> int:
    args.vm, args.host = common.typed(args.vm), common.typed(args.host)
    if args.store:
        return _store(args)  # (a blank VM refused as vm-placement's is)
    refuse_blank(args.vm, "the VM's name (with --apply its domid, name or UUID)")  # a plan for no one is no plan
    for flag, given in (("--pool", args.pool), ("--host", args.host)):
        if given:  # not quietly ignored: without --store the plan is made on this host
            raise InvalidArgument(flag, "only with --store (a plan through the pool)", "--store " + flag)
    if args.vcpus is None or args.memory is None:
        raise InvalidArgument("--vcpus" if args.vcpus is None else "--memory", "missing",
                              "--vcpus N --memory SIZE (or --store to plan from the VM's xapi record)")
    if args.xl and (args.json or args.apply):
        raise InvalidArgument("--xl", "not with {} (it prints xl.cfg lines)".format(
            "--json" if args.json else "--apply"), "one of --xl, --json, --apply")
    if args.hole_start is not None and not args.apply:
        raise InvalidArgument("--hole-start", "only with --apply (where the domain's RAM below 4 GiB ends)",
                              "--apply --hole-start ADDRESS")
    if args.videoram is not None and not args.apply:
        raise InvalidArgument("--videoram", "only with --apply (it places the ranges, not the vnodes)",
                              "--apply --videoram MIB")
    args.type = args.type or "hvm"
    guest = _guest(args)
    with common.flag_names(FLAGS):
        vnuma.check_guest(guest)  # populate-on-demand refused before asking the host anything
    hv = common.hypervisor(args)
    topo = hv.topology()
    target = domain_by_name_or_id(hv, args.vm) if args.apply else None
    # a reservation is keyed by the VM's UUID
    vm = target.uuid if target is not None else common.xapi_name(args.vm, "VM")
    # the plan reads the reservations and writes none (--apply changes the domain only): never makes the database
    ledger = common.ledger_to_read(args)
    free = free_for_plan(hv, target.domid if target is not None else None, ledger, vm)
    landed = _landed(hv, target) if target is not None else {}
    if args.split is not None:
        if args.nodes is not None:
            raise InvalidArgument("--nodes", "not with --split (the half decides the nodes)", "one of them")
        with common.flag_names(FLAGS):
            # a built domain's vnodes hold the bytes its nodes hold, whichever names the nodes
            plan = vnuma.plan_split(topo, guest, args.split, free, landed)
    elif target is not None and args.nodes is None:
        # the domain is built: its memory is where it is, and the vnodes follow that
        if not landed:
            raise InvalidArgument("VM", "domain {} ({}) has no node holding a meaningful share of its memory (not "
                                        "built yet, or spread thin over many nodes): there is nothing for the "
                                        "vnodes to follow".format(target.domid, target.name),
                                  "--nodes naming the pnodes, one vnode each")
        with common.flag_names(dict(FLAGS, nodes="--nodes")):
            plan = vnuma.plan_follow(topo, guest, list(landed), free, landed)
    else:
        with common.flag_names(FLAGS):  # the policy's nodes are --policy-nodes
            pnodes, placed = _pnodes(args, hv, ledger, guest, vm)
        with common.flag_names(dict(FLAGS, nodes="--nodes")):
            plan = vnuma.plan_follow(topo, guest, pnodes, free, landed or placed)
    if args.xl:
        print(vnuma.xl_lines(plan, topo, hard=guest.policy.mode == "strict"))
        return 0
    out = dict(plan.to_dict(), vm=args.vm)
    if target is not None:
        out["video_ram"] = _video_ram(args)
        out["affinity"] = _apply(args, hv, target, plan, landed, out["video_ram"])  # vCPUs' soft affinity
    common.emit(args, out, _render)
    return 0


def _check_static_max(memory: int, d: DomainInfo, static_max: Optional[int]) -> None:
    """The vnodes hold the guest's static max (video RAM included), exactly: what its toolstack
    recorded, else Xen's maximum less the toolstacks' slack.  A byte short is RAM in no vnode."""
    if static_max is not None and memory != static_max:
        raise InvalidArgument("--memory", "{}, but domain {}'s static max is {} (memory/static-max, as its "
                                          "toolstack recorded it)".format(exact_size(memory), d.name,
                                                                          exact_size(static_max)),
                              "{} exactly".format(exact_size(static_max)))
    if static_max is None and memory != d.max_memory - TOOLSTACK_SLACK:
        # (a domain xenopsd has created but not built yet holds squeezed's whole reservation as its maximum)
        raise InvalidArgument("--memory", "{}, but domain {} has a maximum of {} in Xen and no static max "
                                          "recorded (xenstore memory/static-max: a build not done yet?)".format(
                                              exact_size(memory), d.name, exact_size(d.max_memory)),
                              "{} exactly: its maximum less the {} libxl and xenopsd add (LIBXL_MAXMEM_CONSTANT, "
                              "xen_max_offset_mib)".format(exact_size(d.max_memory - TOOLSTACK_SLACK),
                                                           format_size(TOOLSTACK_SLACK)))


def _hole_start(args) -> int:
    """--hole-start, or where the builder ends RAM below 4 GiB for the VM's type (a PV guest has no hole)."""
    if args.hole_start is None:
        return xenalloc.ram_end_below_4g(args.type)
    if args.type not in xenalloc.LOWMEM_END:
        raise InvalidArgument("--hole-start", "{}, but a {} guest has no MMIO hole: its ranges run end to end "
                                              "from 0".format(numbers.shown(args.hole_start), args.type),
                              "no --hole-start for a PV guest")
    text = numbers.trim(args.hole_start)
    if not HEX_OR_DECIMAL.fullmatch(text):
        raise InvalidArgument("--hole-start", numbers.shown(args.hole_start),
                              "a byte address in ASCII hex or decimal, e.g. 0xf0000000")
    address = int(text, 0 if text[:2] in ("0x", "0X") else 10)
    # checked here, not only by the layout, so that the message shows what was typed, not its hex
    if address % 4096 or not 0 < address <= vnuma.FOUR_GiB:
        raise InvalidArgument("--hole-start", numbers.shown(args.hole_start),
                              "a 4 KiB-aligned address above 0, at most 0x100000000 (4 GiB), e.g. 0xf0000000")
    return address


def _video_ram(args) -> int:
    """Bytes of the guest's static max that are video RAM, not guest RAM: --videoram,
    else xenopsd's default for HVM.  Nothing the hypervisor holds says it: Xen's maximum
    is the static max plus the toolstack's slack (:data:`TOOLSTACK_SLACK`), and QEMU
    has populated the video RAM before the domain is unpaused."""
    if args.type != "hvm":
        if args.videoram:
            raise InvalidArgument("--videoram", "{} MiB, but a {} guest has no emulated VGA and no video RAM".format(
                args.videoram, args.type), "0, or no --videoram")
        return 0
    return (DEFAULT_VIDEO_MIB if args.videoram is None else args.videoram) * vnuma.MiB


def _apply(args, hv, d: DomainInfo, plan: vnuma.VnumaPlan, landed: Dict[int, int], video: int) -> str:
    """Set the layout on the built, not yet started domain ``d`` (what a domain builder
    such as xenopsd would do before the first unpause), and each vnode's vCPUs' soft
    affinity on its pnode (as libxl does for a ``vnuma=`` guest): "set", or "partly refused"."""
    if d.vcpus != sum(len(v.vcpus) for v in plan.vnodes):
        raise InvalidArgument("--vcpus", f"{args.vcpus}, but domain {d.name} has {d.vcpus}", str(d.vcpus))
    _check_static_max(sum(v.memory for v in plan.vnodes), d, hv.static_max(d.domid))
    # the memory below 4 GiB ends where the type's builder ends it: a wrong type, wrong ranges
    if d.type != args.type:
        raise InvalidArgument("--type", "{}, but domain {} is {}".format(args.type, d.name, d.type),
                              d.type if d.type in VNUMA_TYPES else "an HVM, PVH or PV domain")
    hole = _hole_start(args)
    # a guest's kernel reads its vNUMA layout once, at boot: a domain that has run keeps the old one
    if not d.paused or any(v.cpu_time > 0 for v in hv.vcpus(d.domid)):
        raise InvalidArgument("VM", "domain {} ({}) has already run".format(d.domid, d.name),
                              "a built domain that has not run yet (xl create -p; xenopsd before unpause)")
    _check_landed(plan, landed, d)
    usable = _guest_mask(args)  # (before anything is set: xapi's failure then changes nothing)
    with common.flag_names({"hole": "--hole-start", "video": "--videoram"}):
        hv.set_vnuma(d.domid, plan, vnuma.memory_ranges(plan, hole, vnuma.FOUR_GiB, video))
    outcomes = Executor(hv).apply(layout_affinity_actions(d.domid, d.uuid, plan, hv.topology(),
                                                          "its vNUMA layout was set", usable))
    return "set" if all(o.status == DONE for o in outcomes) else "partly refused"


def _guest_mask(args) -> Optional[FrozenSet[int]]:
    """The host's guest mask (``guest_VCPUs_params:mask``), read from xapi as ``rebalance
    --dry-run`` reads it: None with ``--no-xapi``, on a simulated host, or where xapi says none."""
    link = rebalance.daemon_view(args)[0]
    if link is None:
        return None
    try:
        return link.host_guest_cpus()
    finally:
        link.close()


def register(sub) -> None:
    q = sub.add_parser("vnuma", help="the vNUMA layout (vnodes) to start a VM with; --xl for xl.cfg")
    q.add_argument("vm", help="the VM's name (for the record; the layout is computed from the options)")
    q.add_argument("--vcpus", type=signed_whole_number, help="the VM's vCPUs: 1..4096 (needed unless --store)")
    q.add_argument("--memory", help="static-max (needed unless --store): " + VNUMA_MEMORY.allowed)
    q.add_argument("--dynamic-min", dest="dynamic_min", type=given_text, help="if below --memory the VM would use "
                                                             "populate-on-demand, which vNUMA excludes")
    q.add_argument("--type", type=given_text, help="hvm (default), pvh or pv")
    q.add_argument("--nodes", help="the pnodes, one vnode each, in order: 1,0, 0-1 or nodes:0-1 "
                                   "(default: where placement puts it)")
    q.add_argument("--split", type=signed_whole_number, help="split host: the half (0 or 1) whose nodes the vnodes use")
    q.add_argument("--mode", type=given_text, help="the VM's NUMA policy mode (must agree with the vnode map)")
    q.add_argument("--policy-nodes", dest="policy_nodes", help="the VM's NUMA policy node list")
    q.add_argument("--on-exhaust", dest="on_exhaust", type=given_text, help="fallback (default) or fail")
    q.add_argument("--xl", action="store_true", help="print the vnuma/memory/cpus_soft lines for xl.cfg")
    q.add_argument("--apply", action="store_true",
                   help="also set the layout on the built, paused domain VM (for toolstacks without vNUMA)")
    q.add_argument("--hole-start", dest="hole_start", type=given_text,
                   help="with --apply: where the domain's RAM below 4 GiB ends (its builder's lowmem end; "
                        "default as xenopsd builds it: 0xf0000000 for hvm and pvh; xl's pvh: 0xfc000000)")
    q.add_argument("--videoram", type=whole_number,
                   help="with --apply: an HVM guest's video RAM in MiB (xapi's platform:videoram, at least 16 with "
                        "a vGPU; xl's videoram=): part of --memory but not guest RAM, so vnode 0's ranges leave it "
                        "out, as libxl does (default {}, xenopsd's; none for pvh)".format(DEFAULT_VIDEO_MIB))
    q.add_argument("--store", action="store_true",
                   help="with --pool: plan VM (UUID or name) from its xapi record on its host and keep the plan "
                        "in its other_config:numa_vnuma (xenopsd does not apply it; "
                        "see vnuma.md in /opt/xapi-numa/doc)")
    q.add_argument("--host", type=given_text,
                   help="with --store, for a halted VM: plan on this host (default: placement's best)")
    # (--apply: the soft affinity it sets keeps to the host's guest mask)
    rebalance.add_no_xapi(q, "do not read the host's guest mask from xapi (as on a simulated host): --apply's soft "
                             "affinity then keeps to no mask")
    common.add_json(q)
    common.add_ledger(q)
    q.set_defaults(func=cmd_vnuma)
