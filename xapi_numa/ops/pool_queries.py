"""Pool-wide queries: one numa plugin function asked of every host of the pool, each
host's answer (or why it gave none) kept apart, keyed by host UUID (``topology --pool``,
``vcpus --pool``); and where a VM is, or would go (``vm-placement``)."""
from typing import Dict, List, Optional

from xapi_numa.backends import xapi
from xapi_numa.core.policy import stored_or_default
from xapi_numa.errors import InvalidArgument
from xapi_numa.ops.pool import HOST_UNAVAILABLE, candidates, host_label, host_query
from xapi_numa.ops.vnuma_xapi import stored_plan, video_ram_in


def per_host(session, fn: str, args: Optional[Dict[str, str]] = None) -> Dict[str, dict]:
    """Each host's answer, keyed by the host's UUID (xapi does not keep names
    unique): ``{"name_label": ..., "answer": ...}``.  A disabled host too: it still runs
    its VMs, and xapi forwards a plugin call to it.  A host that cannot answer (no
    plugin yet, down, unreachable from the master: any xapi failure about that one
    member) gets ``{"name_label": ..., "error": [code, ...]}`` rather than failing the
    whole pool's query.  An expired session, or the plugin refusing the call itself
    (every host would), fails it."""
    out: Dict[str, dict] = {}
    records = xapi.call(session.xenapi.host.get_all_records)
    for ref, rec in sorted(records.items(), key=lambda kv: (kv[1]["name_label"], kv[1]["uuid"])):
        try:
            out[rec["uuid"]] = {"name_label": rec["name_label"], "answer": host_query(session, ref, fn, args or {})}
        except xapi.XapiError as err:
            if err.code == xapi.SESSION_INVALID or (err.code.startswith("NUMA_") and err.code not in HOST_UNAVAILABLE):
                raise
            out[rec["uuid"]] = {"name_label": rec["name_label"], "error": [err.code, *err.params]}
    return out


def host_labels(per: Dict[str, dict]) -> Dict[str, str]:
    """:func:`host_label` for each host of :func:`per_host`'s answer, by UUID."""
    records = {uuid: {"uuid": uuid, "name_label": entry["name_label"]} for uuid, entry in per.items()}
    return {uuid: host_label(rec, records) for uuid, rec in records.items()}


def failed_host(entry: dict) -> Optional[str]:
    """Why a host in :func:`per_host`'s answer did not answer, or None if it did."""
    if "error" in entry:
        return " ".join(entry["error"])
    return None


def vm_placement(session, vm_name_or_uuid: str) -> dict:
    """Where a running VM's memory and vCPUs are; for a halted VM, where it would go."""
    vm, uuid = xapi.vm_ref_by_name_or_uuid(session, vm_name_or_uuid)
    record = xapi.vm_record(session, vm)
    if record["power_state"] in ("Running", "Paused"):
        host = record["resident_on"]
        host_uuid = xapi.call(session.xenapi.host.get_uuid, host)
        return {"vm": uuid, "state": record["power_state"],
                "host": xapi.call(session.xenapi.host.get_name_label, host), "host_uuid": host_uuid,
                "memory": host_query(session, host, "vm_memory", {"vm": uuid}),
                "vcpus": host_query(session, host, "vcpus", {"vm": uuid}),
                **_stored_policy_of(record), "vnuma_plan": _stored_plan_of(session, record, host_uuid)}
    left_out: List[str] = []
    options = [{"host": xapi.call(session.xenapi.host.get_name_label, host),
                "host_uuid": xapi.call(session.xenapi.host.get_uuid, host), **placement}
               for _, host, placement in candidates(session, uuid, left_out=left_out)]
    return {"vm": uuid, "state": record["power_state"], "options": options, "left_out": left_out,
            "vnuma_plan": _stored_plan_of(session, record)}


def _stored_policy_of(record: dict) -> dict:
    """``policy`` (as the plugin's ``get_policy`` answers; None if invalid) and ``policy_error``
    (naming the other_config key to fix): a bad stored policy is shown beside where the VM
    is, not instead of it."""
    policy, error = stored_or_default(record["other_config"])
    return {"policy": None if error else dict(policy.to_dict(), vm=record["uuid"]), "policy_error": error}


def _stored_plan_of(session, record: dict, running_on: Optional[str] = None) -> Optional[dict]:
    """The VM's stored vNUMA plan, checked against its vCPUs and memory now, and, for a VM
    running on the host of UUID ``running_on``, against the host it was planned on."""
    return stored_plan(record["other_config"], int(record["VCPUs_max"]), int(record["memory_static_max"]),
                       _video_ram_or_none(session, record), running_on)


def _video_ram_or_none(session, record: dict) -> Optional[int]:
    """The VM's video RAM now, None where its domain_type is not one xapi-numa knows or
    xapi refused to read its vGPUs (one removed meanwhile is not counted: :func:`xapi.builds_with_vgpu`):
    the plan is then not judged on it."""
    try:
        return video_ram_in(session, record)
    except InvalidArgument:
        return None
    except xapi.XapiError as err:
        if err.code == xapi.SESSION_INVALID:
            raise
        return None
