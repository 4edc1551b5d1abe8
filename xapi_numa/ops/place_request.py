"""What a ``place`` asks the engine: the VM's size and policy, and the nodes its vCPUs may reach.

Two masks bound those nodes.  The admin's own hard affinity (``VCPUs_params:mask``)
bounds one VM; the host's guest mask (``guest_VCPUs_params:mask``), which xapi
intersects with every VM's mask at a start there, bounds every VM started on the
host.  Only nodes they reach are candidates, and the policy decides inside them
(:mod:`xapi_numa.core.placement`).  A VM's ``place`` (dry run or not), the plugin's
what-if ``place`` (a size and policy, no VM) and ``xapi-numa place`` (with ``--vm``, that
VM's own mask too) build their requests here (:func:`start_request`, :func:`sized_request`),
so that each answers what the others would: a mask that leaves no room is
``NUMA_NO_CAPACITY``, naming the mask(s) that narrowed the nodes; one that leaves no
CPU, or cannot be read, or keeps out every node of a binding list, an invalid argument
naming it.

:func:`host_mask` is the one reader of the host's guest mask, for every command and
for xapi-numad (settle, move-memory, vNUMA, homing): one that cannot be read is
refused by each command, and leaves every VM alone in xapi-numad's cycles
(:mod:`.left_alone`), never read as no mask.
"""
import functools
import math
from typing import Callable, FrozenSet, Optional, Tuple

import attrs

from xapi_numa.backends import xapi
from xapi_numa.core.cpuset import format_ids
from xapi_numa.core.overhead import xapi_model
from xapi_numa.core.placement import Request
from xapi_numa.core.policy import Policy
from xapi_numa.core.topology import Topology
from xapi_numa.core.vcpu_mask import VcpuMask
from xapi_numa.core.units import format_size
from xapi_numa.core.xenopsd_build import (SQUEEZED_SLACK, build_type, resolved_domain_type, squeezed_target,
                                          start_memory, video_ram)
from xapi_numa.errors import InvalidArgument, NoCapacity
from xapi_numa.ops import boot_pin

ADMIN_MASK_FIELD = "VCPUs_params:mask"
MASK_OWN = "the VM's own mask (VCPUs_params:mask)"  # as a refusal names the masks that narrowed the nodes
MASK_HOST = "the host's guest mask (guest_VCPUs_params:mask)"


def host_mask(session, host_uuid: Optional[str]) -> Optional[FrozenSet[int]]:
    """Host ``host_uuid``'s guest mask as everything here reads it (None: no host named, as
    off a dom0, or it has none, or one xapi itself reads as none); one that cannot be read
    raises InvalidArgument naming it and the syntax (:func:`xapi.host_guest_cpus`): never
    taken for no mask.  xapi refusing the read (XapiError) reaches the caller too."""
    return xapi.host_guest_cpus(session, host_uuid) if host_uuid else None


def admin_mask(record: dict) -> Optional[VcpuMask]:
    """The admin's own mask (:func:`boot_pin.admin_mask_text`), or None; one that cannot
    be read is refused, naming it, rather than placed around."""
    mask = boot_pin.admin_mask_text(record)
    if not mask or mask == xapi.NO_SAVED_MASK:
        return None
    return xapi.parse_mask(mask)


def admin_cpus(record: dict, topo: Topology) -> Optional[FrozenSet[int]]:
    """The CPUs the admin's mask allows (the union over vCPUs), or None for no mask."""
    mask = admin_mask(record)
    if mask is None:
        return None
    cpus = mask.cpus & topo.all_cpus
    if not cpus:
        raise InvalidArgument(ADMIN_MASK_FIELD, "{!r} names no CPU of this host".format(xapi.format_mask(mask)),
                              "CPUs 0..{}".format(max(topo.all_cpus)))
    return cpus


def mask_bound(policy: Policy, allowed_nodes: FrozenSet[int], topo: Topology, field: str = ADMIN_MASK_FIELD,
               nodes_field: str = "other_config:numa_nodes") -> Optional[FrozenSet[int]]:
    """The nodes a mask (``field``) reaches, as a hard bound for the engine (None when it
    reaches every node).  The policy itself is kept as it is; only a node list it binds
    (``strict``, or ``on_exhaust=fail``; set by ``nodes_field``) with none of its nodes
    in reach is refused: the mask never stands in for the admin's own list."""
    if allowed_nodes >= frozenset(n.id for n in topo.nodes):
        return None
    binding = policy.nodes and policy.binding
    if binding and not any(node in allowed_nodes for node in policy.nodes):
        raise InvalidArgument(field, "it reaches nodes {} only, none of the policy's nodes {} ({} {})".format(
            format_ids(allowed_nodes), ",".join(map(str, policy.nodes)), policy.mode,
            "on_exhaust=" + policy.on_exhaust),
            "a mask that reaches a node of {}, or another policy".format(nodes_field))
    return allowed_nodes


def reach(policy: Policy, topo: Topology, cpus: Optional[FrozenSet[int]], host_cpus: Optional[FrozenSet[int]],
          nodes_field: str = "other_config:numa_nodes") -> Optional[FrozenSet[int]]:
    """The nodes the VM's vCPUs may reach (None: every node): its own mask's CPUs (``cpus``,
    None for no mask), inside the host's guest mask (``host_cpus``, None for none).  Each
    mask that keeps a binding node list (``nodes_field``) wholly out is refused, naming it."""
    within = mask_bound(policy, topo.nodes_of_cpus(cpus), topo, nodes_field=nodes_field) if cpus is not None else None
    if host_cpus is None:
        return within
    left = host_cpus & topo.all_cpus & (cpus if cpus is not None else topo.all_cpus)
    if not left:
        raise InvalidArgument(xapi.HOST_MASK_FIELD, "{} leaves this VM no CPU (its own mask: {})".format(
            format_ids(host_cpus), format_ids(cpus) if cpus is not None else "none"),
            "a host mask that meets the VM's CPUs 0..{}".format(max(topo.all_cpus)))
    return mask_bound(policy, topo.nodes_of_cpus(left), topo, xapi.HOST_MASK_FIELD, nodes_field)


def check_nodes(policy: Policy, topo: Topology, field: str) -> None:
    """Every node the policy lists (set by ``field``) is one of this host's."""
    for node in policy.nodes:  # (hosts of a pool may differ)
        if node >= len(topo.nodes):
            raise InvalidArgument(field, "node {} does not exist on this host".format(node),
                                  "nodes 0..{}".format(len(topo.nodes) - 1))


def narrowed_by(topo: Topology, cpus: Optional[FrozenSet[int]],
                host_cpus: Optional[FrozenSet[int]]) -> Tuple[str, ...]:
    """Which masks narrow the nodes :func:`reach` gives (MASK_OWN for the VM's ``cpus``,
    MASK_HOST for ``host_cpus``): each that alone reaches fewer nodes than the host has,
    or both where only together they do."""
    given = [(name, mask) for name, mask in ((MASK_OWN, cpus), (MASK_HOST, host_cpus)) if mask is not None]
    alone = tuple(name for name, mask in given if topo.nodes_of_cpus(mask & topo.all_cpus) < topo.node_ids)
    return alone or tuple(name for name, _ in given)


def bounds(policy: Policy, topo: Topology, cpus: Optional[FrozenSet[int]], host_cpus: Optional[FrozenSet[int]],
           nodes_field: str) -> dict:
    """A request's ``within`` (the nodes its vCPUs may reach: :func:`reach`) and
    ``within_by`` (the masks that narrowed them: :func:`narrowed_by`, which a refusal for
    room names), as :class:`Request`'s keyword arguments."""
    within = reach(policy, topo, cpus, host_cpus, nodes_field)
    return dict(within=within, within_by=() if within is None else narrowed_by(topo, cpus, host_cpus))


def never_starts(record: dict) -> Optional[str]:
    """"template" or "snapshot" for a VM xapi never starts (its keys are only copied into
    its clones), else None.  A snapshot first: xapi marks one a template too."""
    return "snapshot" if record.get("is_a_snapshot") else "template" if record.get("is_a_template") else None


def not_a_control_domain(record: dict, vm: str) -> None:
    """Refuse a control domain (dom0; ``vm``: how the caller names it): xapi never starts one, so
    nothing places, plans or starts it (a dry run neither: it would predict a build never made)."""
    if record.get("is_control_domain"):
        raise InvalidArgument("vm", "{} is a control domain (dom0)".format(vm), "a guest VM")


def domain_type_of(record: dict) -> str:
    """The VM's guest type as a place answer says it (``domain_type``: pv, pvh or hvm; a pv_in_pvh
    VM builds as pvh), populate-on-demand or not: :func:`request_for` predicts a PoD build's RAM
    as PV's (2 MiB extents), which makes no PV guest of an HVM one."""
    return build_type(resolved_domain_type(record.get("domain_type"), record.get("HVM_boot_policy")))


def request_for(record: dict, topo: Topology, host_cpus: Optional[FrozenSet[int]] = None,
                vgpu: bool = False, free: Optional[Callable[[], int]] = None,
                balloons: Callable[[], bool] = lambda: True) -> Request:
    """What to place for the VM: its size, policy, and the nodes its mask and the host's
    guest mask (``host_cpus``) let its vCPUs reach.  ``vgpu``: xapi builds it with a vGPU
    (its video RAM at least 16 MiB: :func:`xapi_numa.core.xenopsd_build.video_ram`), which a
    start's prediction asks xapi (:func:`start_request`, not this).  ``free``: reads the host's free
    memory (bytes), for the start target squeezed gives (:func:`start_target`; None: the dynamic
    maximum); ``balloons``: whether a domain on the host may balloon (each asked only where it counts)."""
    policy = Policy.from_other_config(record["other_config"])
    check_nodes(policy, topo, "other_config:numa_nodes")  # the stored key is what the admin must fix
    bound = bounds(policy, topo, admin_cpus(record, topo), host_cpus, "other_config:numa_nodes")
    vcpus, static_max = int(record["VCPUs_max"]), int(record["memory_static_max"])
    # xapi sizes the overhead for the type it resolves "unspecified" to (its memory check refuses that one)
    dtype = resolved_domain_type(record.get("domain_type"), record.get("HVM_boot_policy"))
    overhead = xapi_model(static_max, vcpus, shadow_multiplier(record), dtype or "hvm")
    # xenopsd builds the domain with its start target (the balloon above it stays empty), in MiB as it
    # rounds them, populate-on-demand below the static maximum (core.xenopsd_build), an HVM guest's
    # video RAM populated after the RAM; it sizes the overhead on the static maximum
    dynamic_max = int(record.get("memory_dynamic_max", static_max))
    target = dynamic_max if free is None else start_target(record, free, overhead, balloons)
    memory, pod = start_memory(static_max, target)
    kind = domain_type_of(record)
    video = min(memory, video_ram(kind, record.get("platform", {}).get("videoram", ""), vgpu))
    return Request(vcpus, memory, policy, dtype=build_type(kind, pod), overhead=overhead, video=video, **bound)


def start_target(record: dict, read_free: Callable[[], int], overhead: int, balloons: Callable[[], bool]) -> int:
    """The start target (bytes) to plan the VM's start for on a host with ``read_free()`` bytes free
    (:func:`squeezed_target`: less than its dynamic maximum only where no domain there can balloon,
    which ``balloons`` is asked only then); one squeezed would refuse (the host short of its
    ``memory_dynamic_min``) is refused with ``NUMA_NO_CAPACITY``, naming it.  A VM with no balloon
    range (dynamic minimum = maximum, xapi's default) starts at its maximum or not at all: the free
    memory is not read for it (a second read of every reservation per start), and a host short of it
    is refused by the placement itself."""
    dynamic_max = int(record.get("memory_dynamic_max", record["memory_static_max"]))
    dynamic_min = int(record.get("memory_dynamic_min", dynamic_max))
    if dynamic_min >= dynamic_max:
        return dynamic_max
    free = read_free()
    target = squeezed_target(free, dynamic_min, dynamic_max, overhead, balloons=False)
    if target != dynamic_max and balloons():
        target = squeezed_target(free, dynamic_min, dynamic_max, overhead, balloons=True)
    if target is None:
        raise NoCapacity("VM {}: this host has {} free (less other starts' reservations), short of its "
                         "memory_dynamic_min {} with the build's overhead {} and the {} squeezed keeps free: "
                         "xapi would not start it here".format(
                             record.get("uuid", "?"), format_size(free), format_size(dynamic_min),
                             format_size(overhead), format_size(SQUEEZED_SLACK[-1])),
                         ("memory_dynamic_min", str(dynamic_min), str(free)))
    return target


def balloons_on(session, host_uuid: Optional[str]) -> bool:
    """May a domain on host ``host_uuid`` balloon, so that squeezed moves memory at a start there?
    A VM resident there (not a control domain: squeezed leaves dom0 alone by default) whose
    ``memory_dynamic_min``, ``memory_target`` and ``memory_dynamic_max`` are not one figure.  True
    where no host is named (nothing tells).  xapi's records say what xenstore tells squeezed.  A VM
    being started there (not yet resident) counts as none, as squeezed counts it: until the guest's
    balloon driver writes ``feature-balloon``, squeezed's ``make_host`` takes the domain's dynamic
    range to be its maximum and never balloons it (once resident, it counts here before its driver
    runs: the dynamic maximum is planned, the most the build takes)."""
    if host_uuid is None:
        return True
    host = xapi.call(session.xenapi.host.get_by_uuid, host_uuid)
    for vm in xapi.call(session.xenapi.host.get_record, host).get("resident_VMs", ()):
        try:
            record = xapi.vm_record(session, vm)
        except xapi.XapiError as err:
            if err.code == "HANDLE_INVALID":  # gone meanwhile
                continue
            raise
        fixed = {record.get(key) for key in ("memory_dynamic_min", "memory_target", "memory_dynamic_max")}
        if not record.get("is_control_domain") and len(fixed) > 1:
            return True
    return False


def start_request(session, record: dict, topo: Topology, host_cpus: Optional[FrozenSet[int]] = None,
                  free: Optional[Callable[[], int]] = None, host_uuid: Optional[str] = None,
                  vgpu: Optional[bool] = None) -> Request:
    """:func:`start_sizing` the VM's start for the host's free memory as ``free()`` reads it (None:
    its dynamic maximum is planned)."""
    return start_sizing(session, record, topo, host_cpus, host_uuid, vgpu)(free)


def start_sizing(session, record: dict, topo: Topology, host_cpus: Optional[FrozenSet[int]] = None,
                 host_uuid: Optional[str] = None,
                 vgpu: Optional[bool] = None) -> Callable[[Optional[Callable[[], int]]], Request]:
    """The VM's start as :func:`request_for` it, for a reader of the host's free memory (the figure
    :func:`xapi_numa.ops.reserve.start_free` gives of the planner's own read, as
    :func:`xapi_numa.ops.reserve.place_sized` calls it at each read, read only for a VM with a
    balloon range): xapi asked once whether it builds the VM with a vGPU (:func:`xapi.builds_with_vgpu`:
    its video RAM then at least 16 MiB, which QEMU populates with the domain's node affinity as the
    rest; ``vgpu``: that answer, where the caller read it) and, where the free memory is short of its
    dynamic maximum, once whether a domain on host ``host_uuid`` may balloon (:func:`balloons_on`).
    Every prediction of a start from a VM's record (``place``, its dry run, a pool vm-start's, a
    vNUMA follow plan) is made here."""
    vgpu = xapi.builds_with_vgpu(session, record) if vgpu is None else vgpu
    balloons = functools.lru_cache(maxsize=None)(lambda: balloons_on(session, host_uuid))
    return lambda free: request_for(record, topo, host_cpus, vgpu, free, balloons)


def sized_request(request: Request, topo: Topology, host_cpus: Optional[FrozenSet[int]],
                  nodes_field: str = "nodes", record: Optional[dict] = None) -> Request:
    """A request given by size and policy (the plugin's what-if, the CLI's place), bounded
    as a VM's is (:func:`request_for`): by the host's guest mask (``host_cpus``) and by
    the VM's own mask, read from its ``record`` (None: no VM, no mask of its own; the
    request's ``within`` gives way); ``nodes_field``: the argument that set the policy's
    nodes, which a refusal names.  Its build overhead, where the request has none, is what
    :func:`request_for` predicts for a VM of its size (as static maximum) and type at xapi's
    default ``HVM_shadow_multiplier`` (1.0): no VM's own multiplier is read."""
    check_nodes(request.policy, topo, nodes_field)
    cpus = admin_cpus(record, topo) if record is not None else None
    overhead = request.overhead if request.overhead is not None else \
        xapi_model(request.memory, request.vcpus, 1.0, request.dtype)
    return attrs.evolve(request, overhead=overhead, **bounds(request.policy, topo, cpus, host_cpus, nodes_field))


def shadow_multiplier(record: dict) -> float:
    """The VM's ``HVM_shadow_multiplier`` (xapi's default 1.0 where the record has none)."""
    value = record.get("HVM_shadow_multiplier", 1.0)
    try:
        multiplier = float(value)
    except (TypeError, ValueError):
        multiplier = math.nan
    if not (math.isfinite(multiplier) and 1.0 <= multiplier <= 1000.0):  # xapi refuses below 1.0
        raise InvalidArgument("HVM_shadow_multiplier", repr(value), "a number from 1.0 (xapi's default)")
    return multiplier
