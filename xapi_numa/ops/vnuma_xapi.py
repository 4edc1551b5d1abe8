"""A VM's vNUMA plan in XAPI: planned on a host from the VM's record, stored in
``VM.other_config``, read back for ``vm-placement``.

xenopsd builds domains without vNUMA today, so the stored plan is a record of
intent: what a patched domain builder should set before the guest's ACPI tables
are written (see docs/vnuma.md), what an admin starting the VM through xl copies,
and what ``vm-placement`` shows next to where the VM really is.  The plan is
one key, ``numa_vnuma`` (JSON of :meth:`VnumaPlan.to_dict`), written on its own
like every key of ours (:func:`xapi_numa.backends.xapi.set_other_config`).

Guest facts come from xapi's datamodel fields: ``domain_type`` (hvm, pvh, pv;
pv_in_pvh refused: its PV guest is built by the PV shim, which gives it no layout),
``VCPUs_max``, ``memory_static_max``
and ``memory_dynamic_min`` (below static-max: populate-on-demand, refused).
"""
import json
from typing import Dict, FrozenSet, Optional

from xapi_numa.backends import xapi
from xapi_numa.core import vnuma
from xapi_numa.core.xenopsd_build import resolved_domain_type, video_ram
from xapi_numa.core.policy import Policy
from xapi_numa.core.reservation import NO_OVERLAP
from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.errors import InvalidArgument, field_names
from xapi_numa.ops import observe, upkeep
from xapi_numa.ops.reserve import place_and_reserve, place_as_if_stopped
from xapi_numa.ops.place_request import never_starts, not_a_control_domain, start_request
from xapi_numa.ops.plugin_words import NO_STORE_SAID
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.state.ledger import Ledger

VNUMA_KEY = "numa_vnuma"
# xapi's domain_type enum -> what the planner calls the guest (pv_in_pvh runs a PV kernel)
DOMAIN_TYPES = {"hvm": "hvm", "pvh": "pvh", "pv": "pv", "pv_in_pvh": "pv"}
# the planner's names for what it checks -> the VM's fields in xapi's datamodel that say them
RECORD_FIELDS = {"type": "domain_type", "vcpus": "VCPUs_max", "memory": "memory_static_max"}


def guest_type_of(record: dict) -> str:
    """hvm, pvh or pv: what the planner calls the VM's guest type."""
    dtype = resolved_domain_type(record.get("domain_type", "unspecified"), record.get("HVM_boot_policy"))
    if dtype not in DOMAIN_TYPES:
        raise InvalidArgument("domain_type", f"{dtype!r}", ", ".join(sorted(DOMAIN_TYPES)))
    return DOMAIN_TYPES[dtype]


def guest_of(record: dict) -> vnuma.GuestSpec:
    """The planner's view of a VM, from its xapi record.  A pv_in_pvh VM is refused: Xen builds
    the PV shim (a PVH domain, the one a layout would be set on), and the shim builds the PV
    guest inside it from its own memory with no layout (Xen 4.17's pv-shim sets none)."""
    if record.get("domain_type") == "pv_in_pvh":
        raise InvalidArgument("domain_type", "'pv_in_pvh': the layout would be the PV shim's, whose PV guest it "
                                             "builds with none", "hvm, pvh or pv")
    return vnuma.GuestSpec(guest_type_of(record), int(record["VCPUs_max"]), int(record["memory_static_max"]),
                           int(record["memory_dynamic_min"]), Policy.from_other_config(record.get("other_config", {})))


def video_ram_of(record: dict, vgpu: bool) -> int:
    """Bytes of the VM's static max that xenopsd gives an HVM guest's emulated VGA, as
    xapi works them out: part of vnode 0 but no guest RAM, so a builder laying out the
    stored plan's ranges needs them (0 for a PVH guest, which has no emulated VGA).
    ``vgpu``: xapi builds it with a vGPU (:func:`xapi_numa.backends.xapi.builds_with_vgpu`);
    :func:`xapi_numa.core.xenopsd_build.video_ram`."""
    return video_ram(guest_type_of(record), record.get("platform", {}).get("videoram", ""), vgpu)


def video_ram_in(session, record: dict) -> int:
    """:func:`video_ram_of` the VM, asking xapi about its vGPUs' types."""
    return video_ram_of(record, xapi.builds_with_vgpu(session, record))


def free_for_plan(hv: Hypervisor, domid: Optional[int], ledger: Optional[Ledger] = None,
                  vm: Optional[str] = None) -> Dict[int, int]:
    """Claimable bytes per node for a vNUMA plan, less what starting VMs reserved in
    ``ledger`` (``vm``'s own reservation aside: placed again, it replaces it); a built or
    running domain ``domid`` counts its own memory as free (the plan lays out memory it
    already has)."""
    reserved, overlap = upkeep.held_after_reconcile(hv, ledger, vm) if ledger is not None else (None, NO_OVERLAP)
    # a host-wide claim bounds every node (what a row holds of a claim counted once); node claims the
    # hypervisor reports host-wide are put on their nodes
    free = observe.claimable(hv, reserved, known=observe.known_node_claims(hv, ledger), overlap=overlap)
    if domid is not None:
        for node, pages in hv.node_pages(domid).items():
            free[node] = free.get(node, 0) + (pages << PAGE_SHIFT)
    return free


def plan_for(hv: Hypervisor, ledger: Ledger, record: dict, uuid: str, mode: str = "follow",
             half: Optional[int] = None, host_cpus: Optional[FrozenSet[int]] = None, *, session,
             vgpu: Optional[bool] = None) -> vnuma.VnumaPlan:
    """The VM's vNUMA plan on this host: ``follow`` where placement would start it now
    (a dry run: nothing reserved; ``session`` asks xapi about its vGPUs, as ``place`` does:
    :func:`start_request`, unless ``vgpu`` is that answer, read by the caller), or ``split``
    on half ``half`` of the split host (asks xapi nothing).
    A VM running here counts its own memory as free (the plan is for its next start).
    A figure of the VM's refused is named by its field in xapi's datamodel."""
    with field_names(RECORD_FIELDS):
        return _plan_for(hv, ledger, record, uuid, mode, half, host_cpus, session, vgpu)


def check_mode(mode: str, half: Optional[int]) -> None:
    """A plan's ``mode`` and ``half`` (split only), refused before the VM is read."""
    if mode not in vnuma.MODES:
        raise InvalidArgument("mode", f"{mode!r} is not a plan mode", ", ".join(vnuma.MODES))
    if (half is None) != (mode == "follow"):
        raise InvalidArgument("half", "a split plan needs the half (0 or 1); a follow plan takes none",
                              "half with mode=split only")


def _plan_for(hv: Hypervisor, ledger: Ledger, record: dict, uuid: str, mode: str, half: Optional[int],
              host_cpus: Optional[FrozenSet[int]], session, vgpu: Optional[bool]) -> vnuma.VnumaPlan:
    check_mode(mode, half)
    not_a_control_domain(record, uuid)  # (no guest to plan at all, whatever its type)
    guest = guest_of(record)
    vnuma.check_guest(guest)  # populate-on-demand refused before the host is asked anything
    topo = hv.topology()
    running = next((d for d in hv.domains() if d.uuid == uuid), None)
    if running is None and record.get("power_state") in ("Running", "Paused"):
        # its memory is on another host: planned here it would count none of it as free
        raise InvalidArgument("vm", "VM {} is {} on another host".format(uuid, record["power_state"].lower()),
                              "the host it runs on (or any host once it is halted)")
    free = free_for_plan(hv, running.domid if running is not None else None, ledger, uuid)
    if mode == "split":
        return vnuma.plan_split(topo, guest, half, free)
    # as place asks: the host's mask, the vGPU; no free memory read: a VM check_guest lets through has no
    # balloon range, so its start target is its dynamic maximum whatever the host has (place_request.start_target)
    request = start_request(session, record, topo, host_cpus, vgpu=vgpu)
    if running is not None:
        placement = place_as_if_stopped(hv, ledger, request, uuid, running.domid)
    else:
        placement, _, _ = place_and_reserve(hv, ledger, request, uuid, dry_run=True)
    with field_names({"nodes": "vm"}):  # (placement's nodes, which the VM's record decides: no argument names them)
        return vnuma.plan_follow(topo, guest, list(placement.nodes), free, placement.bytes_per_node)


def check_storable(record: dict, uuid: str, no_store_said: str = NO_STORE_SAID) -> None:
    """A plan is stored only on a VM xapi starts: one stored on a template or a snapshot
    (planned on this host's nodes) would only be copied into its clones.  ``no_store_said``:
    how the caller's user asks for a plan not stored, which the refusal offers (the plugin's
    ``store=false`` by default; the CLI's ``vnuma --store`` passes its own words)."""
    kind = never_starts(record)
    if kind:
        raise InvalidArgument("vm", "{} is a {}; a stored plan is for a VM's start".format(uuid, kind),
                              "a VM that can start (plan its clone), or " + no_store_said)


def plan_record(plan: vnuma.VnumaPlan, video_ram: int, host: Optional[str] = None) -> dict:
    """The plan as answered and stored: its vnodes, the video RAM vnode 0 holds, and the
    UUID of the host whose nodes its pnodes are (if known)."""
    return dict(plan.to_dict(), video_ram=video_ram, **({"planned_on": host} if host else {}))


def store_plan(session, vm: str, plan: vnuma.VnumaPlan, video_ram: int, host: Optional[str] = None) -> None:
    xapi.set_other_config(session, vm, VNUMA_KEY, json.dumps(plan_record(plan, video_ram, host), sort_keys=True,
                                                             separators=(",", ":")))


def stored_plan(other_config: Dict[str, str], vcpus: Optional[int] = None,
                memory: Optional[int] = None, video_ram: Optional[int] = None,
                running_on: Optional[str] = None) -> Optional[dict]:
    """The stored plan, None if there is none; a value that is not a plan (hand-edited,
    say) is shown as such.  With the VM's ``vcpus``, ``memory`` (static max) and
    ``video_ram``, a plan made for other figures says so in ``stale``: it would no longer
    fit the VM (a plan stored before 2026-12-05 has no video RAM, and is not judged on it).
    ``running_on``: the UUID of the host the VM runs on; a plan made on another host's nodes
    says so in ``stale`` too (a plan stored before 2026-12-06 names no host)."""
    text = other_config.get(VNUMA_KEY)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not _is_plan(value):
        return {"error": f"other_config:{VNUMA_KEY} holds no vNUMA plan", "text": text[:200]}
    planned_vcpus = sum(len(v["vcpus"]) for v in value["vnodes"])
    planned_memory = sum(v["memory"] for v in value["vnodes"])
    if (vcpus is not None and planned_vcpus != vcpus) or (memory is not None and planned_memory != memory):
        value = dict(value, stale="planned for {} vCPUs and {} bytes; the VM now has {} and {}: plan again "
                                  "(xapi-numa vnuma VM --store)".format(planned_vcpus, planned_memory, vcpus, memory))
    elif video_ram is not None and _is_int(value.get("video_ram")) and value["video_ram"] != video_ram:
        value = dict(value, stale="planned for {} bytes of video RAM; the VM now has {}: plan again "
                                  "(xapi-numa vnuma VM --store)".format(value["video_ram"], video_ram))
    elif running_on is not None and value.get("planned_on") not in (None, running_on):
        value = dict(value, stale="planned on the nodes of host {}; the VM runs on host {}: plan again there "
                                  "(xapi-numa vnuma VM --store)".format(value["planned_on"], running_on))
    return value


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_plan(value: object) -> bool:
    """Has ``value`` the shape of :meth:`VnumaPlan.to_dict` (what ``vm-placement`` shows)?"""
    if not isinstance(value, dict) or not isinstance(value.get("vnodes"), list) or not value["vnodes"]:
        return False
    if "video_ram" in value and not (_is_int(value["video_ram"]) and value["video_ram"] >= 0):
        return False  # (a plan stored before 2026-12-05 has none)
    if "planned_on" in value and not isinstance(value["planned_on"], str):
        return False  # (nor one stored before 2026-12-06 a host)
    for v in value["vnodes"]:
        if not (isinstance(v, dict) and _is_int(v.get("vnode")) and _is_int(v.get("memory"))
                and (v.get("pnode") is None or _is_int(v.get("pnode")))
                and isinstance(v.get("vcpus"), list) and all(_is_int(c) for c in v["vcpus"])):
            return False
    return True
