"""Pool-wide queries: one numa plugin function asked of every host of the pool, each
host's answer (or why it gave none) kept apart, keyed by host UUID (``topology --pool``,
``vcpus --pool``)."""
from typing import Dict, Optional

from xapi_numa.backends import xapi
from xapi_numa.ops.pool import HOST_UNAVAILABLE, host_label, host_query


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
