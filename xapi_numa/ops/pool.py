"""Pool-wide operations over XenAPI: NUMA-aware VM start, and per-host queries.

``vm_start`` asks every enabled host's ``numa`` plugin for a dry-run
placement, picks the host with the best NUMA fit (one node over several, a
smaller distance, no fallback, more headroom; ties go to the host running
fewer VMs, then by name), reserves there (``place``), starts the VM there
(``VM.start_on``) and ``settle``s it.  If concurrent starts took the room
meanwhile (``place`` refuses, or places worse than the dry run promised) it
releases and ranks the hosts again; on any failure after ``place`` it
releases the reservation and restores ``VCPUs_params``.
"""

import json
from typing import Dict, List, Optional, Tuple

from xapi_numa.backends import xapi
from xapi_numa.errors import NoCapacity, NumaError
from xapi_numa.ops.vnuma_xapi import stored_plan

MAX_ATTEMPTS = 6


def plugin_result(session, host: str, fn: str, args: Dict[str, str]):
    """A numa plugin call on ``host``, its JSON result decoded."""
    return json.loads(xapi.call_plugin(session, host, fn, args))


def fit_key(placement: dict, host_record: dict) -> tuple:
    """Smaller is better: fewer nodes, closer, no fallback, more headroom, fewer VMs."""
    return (len(placement["nodes"]), placement["max_distance"], placement["fallback"], -placement["headroom"],
            len(host_record.get("resident_VMs", [])), host_record.get("name_label", ""))


def enabled_hosts_named(session, name: str) -> Dict[str, dict]:
    """The enabled hosts whose ref, uuid or name is ``name`` (refused if there is none)."""
    hosts = {ref: rec for ref, rec in xapi.enabled_hosts(session).items()
             if name in (ref, rec["uuid"], rec["name_label"])}
    if not hosts:
        raise NumaError(f"no enabled host called {name}")
    return hosts


def candidates(session, uuid: str, only_host: Optional[str] = None) -> List[Tuple[tuple, str, dict]]:
    """(fit, host ref, dry-run placement) for every enabled host that can take the VM, best first."""
    hosts = xapi.enabled_hosts(session) if only_host is None else enabled_hosts_named(session, only_host)
    found, refusals = [], []
    for ref, record in hosts.items():
        try:
            placement = plugin_result(session, ref, "place", {"vm": uuid, "dry_run": "true"})
        except xapi.XapiError as err:
            if err.code != "NUMA_NO_CAPACITY":
                raise
            refusals.append(f"{record['name_label']}: {' '.join(err.params[:1])}")
            continue
        found.append((fit_key(placement, record), ref, placement))
    if not found:
        raise NoCapacity("no host can take the VM: " + "; ".join(refusals), refusals)
    return sorted(found, key=lambda c: c[0])


def vm_start(session, vm_name_or_uuid: str, only_host: Optional[str] = None) -> dict:
    vm, uuid = xapi.vm_ref_by_name_or_uuid(session, vm_name_or_uuid)
    tried: List[str] = []
    for attempt in range(MAX_ATTEMPTS):
        ranked = candidates(session, uuid, only_host)
        fit, host, _ = ranked[0]
        record = xapi.call(session.xenapi.host.get_record, host)
        try:
            placement = plugin_result(session, host, "place", {"vm": uuid})
        except xapi.XapiError as err:
            if err.code == "NUMA_NO_CAPACITY":  # another start took it since the dry run
                tried.append(record["name_label"])
                continue
            raise
        # Concurrent starts may have taken the room the dry run saw: if this
        # placement is now worse than what the dry run promised (more nodes,
        # farther, a fallback), give it back and rank the hosts again.
        if (fit_key(placement, record)[:3] > fit[:3] and attempt < MAX_ATTEMPTS - 1
                and (len(ranked) > 1 or attempt == 0)):
            plugin_result(session, host, "release", {"vm": uuid})
            tried.append(record["name_label"])
            continue
        try:
            xapi.call(session.xenapi.VM.start_on, vm, host, False, False)
        except BaseException:
            try:
                plugin_result(session, host, "release", {"vm": uuid})
            except NumaError:
                pass
            raise
        settled = plugin_result(session, host, "settle", {"vm": uuid})
        return {"vm": uuid, "host": record["name_label"], "placement": placement, "settled": settled,
                "attempts": attempt + 1}
    raise NoCapacity(f"hosts {', '.join(tried)} filled up while starting {uuid}", tried)


def vm_placement(session, vm_name_or_uuid: str) -> dict:
    """Where a running VM's memory and vCPUs are; for a halted VM, where it would go."""
    vm, uuid = xapi.vm_ref_by_name_or_uuid(session, vm_name_or_uuid)
    record = xapi.vm_record(session, vm)
    if record["power_state"] in ("Running", "Paused"):
        host = record["resident_on"]
        return {"vm": uuid, "state": record["power_state"],
                "host": xapi.call(session.xenapi.host.get_name_label, host),
                "memory": plugin_result(session, host, "vm_memory", {"vm": uuid}),
                "vcpus": plugin_result(session, host, "vcpus", {"vm": uuid}),
                "policy": plugin_result(session, host, "get_policy", {"vm": uuid}),
                "vnuma_plan": stored_plan(record["other_config"])}
    options = [{"host": xapi.call(session.xenapi.host.get_name_label, host), **placement}
               for _, host, placement in candidates(session, uuid)]
    return {"vm": uuid, "state": record["power_state"], "options": options,
            "vnuma_plan": stored_plan(record["other_config"])}


def per_host(session, fn: str, args: Optional[Dict[str, str]] = None) -> Dict[str, object]:
    return {rec["name_label"]: plugin_result(session, ref, fn, args or {})
            for ref, rec in sorted(xapi.enabled_hosts(session).items(), key=lambda kv: kv[1]["name_label"])}
