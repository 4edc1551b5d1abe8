"""Backend-neutral queries: the host through the port in, plain rows out.

The rows are what ``--json`` prints, what the plugin returns and what tables
show (rendering is the CLI's); they are built from the Hypervisor port only,
so they read the same on the simulator and on real Xen.
"""
from typing import Dict, List, Mapping, Optional, Sequence

from xapi_numa.core import locality
from xapi_numa.core.cpuset import format_ids
from xapi_numa.core.reservation import NO_OVERLAP, ClaimOverlap
from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.errors import NumaError
from xapi_numa.ops import observe
from xapi_numa.ports.hypervisor import Hypervisor


def topology_report(hv: Hypervisor, reserved: Mapping[int, int], known: Optional[Mapping[int, int]] = None,
                    overlap: ClaimOverlap = NO_OVERLAP) -> dict:
    """Nodes, distances and CPUs, and what this Xen offers: its scheduler and the
    features the host's paths depend on (per-node claims, the node-page query).
    ``reserved``: the ledger's outstanding bytes per node, left out of what is claimable;
    ``known``: node claims the hypervisor reports as host-wide (:func:`observe.known_node_claims`);
    ``overlap``: what of ``reserved`` claims hold too (:func:`observe.claims_overlap`)."""
    topo = hv.topology()
    listed = observe.on_their_nodes(hv.node_memory(), known)
    memory = {m.node: m for m in listed}
    # a host-wide claim (stock Xen's) bounds every node
    claimable = observe.claimable(hv, reserved, known=known, overlap=overlap)
    caps = hv.capabilities()
    return {
        "scheduler": caps.scheduler,
        "features": dict(caps.features),
        "memory_claimed_host_wide": observe.host_wide_claims(hv, listed),
        "nodes": [
            {"id": n.id, "cpus": format_ids(n.cpus), "memory_total": memory[n.id].size,
             "memory_free": memory[n.id].free, "memory_claimed": memory[n.id].claimed,
             "memory_dma_free": memory[n.id].dma_free,
             "memory_reserved": reserved.get(n.id, 0),
             "memory_claimable": claimable[n.id]}
            for n in topo.nodes
        ],
        "distances": [list(r) for r in topo.distances],
        "cpus": [{"cpu": c.id, "core": c.core, "socket": c.socket, "node": c.node} for c in topo.cpus
                 if c.id in topo.all_cpus],  # (the online ones: a parked CPU is on no node for us)
    }


def vcpu_rows(hv: Hypervisor, domids: Optional[Sequence[int]] = None) -> List[dict]:
    topo = hv.topology()
    domains = {d.domid: d for d in hv.domains()}
    rows = []
    for domid in (domids if domids is not None else sorted(domains)):
        d = domains.get(domid)
        try:
            vcpus = hv.vcpus(domid)
        except NumaError as err:
            if domids is not None or not observe.gone(err):
                raise
            continue  # destroyed since the list was read: not a failure of the query
        for v in vcpus:
            rows.append({
                "domid": domid, "name": d.name if d else "", "uuid": d.uuid if d else "",
                "vcpu": v.vcpu, "cpu": v.cpu,
                # (None: a CPU online since the topology was read, xen-hptool cpu-online: on no node of it)
                "node": topo.node_of(v.cpu) if v.cpu in topo.all_cpus else None, "state": v.state,
                "hard": topo.format_cpus(v.hard), "soft": topo.format_cpus(v.soft),
                "outside_soft": locality.outside_soft(v, topo),
            })
    return rows


def memory_rows(hv: Hypervisor) -> List[dict]:
    rows = []
    for d in sorted(hv.domains(), key=lambda d: d.domid):
        try:
            pages = hv.node_pages(d.domid)
        except NumaError as err:
            if not observe.gone(err):
                raise
            continue  # destroyed since the list was read
        rows.append({"domid": d.domid, "name": d.name,
                     "nodes": {str(n): p << PAGE_SHIFT for n, p in sorted(pages.items())},
                     "total": sum(pages.values()) << PAGE_SHIFT})
    return rows


def vm_memory(hv: Hypervisor, domid: int) -> dict:
    """One VM's memory per node, its home nodes and the share of its memory there, and
    the vNUMA layout the hypervisor holds for it (None: it has none)."""
    topo = hv.topology()
    pages = hv.node_pages(domid)
    homes = locality.home_nodes(hv.vcpus(domid), topo)
    try:
        layout = hv.vnuma(domid)
        vnuma = None if layout is None else layout.to_dict()
    except NumaError as err:  # the rest of the answer stands; moves refuse on their own
        vnuma = {"error": err.message}
    return {"domid": domid, "nodes": {str(n): p << PAGE_SHIFT for n, p in sorted(pages.items())},
            "total": sum(pages.values()) << PAGE_SHIFT, "home_nodes": sorted(homes),
            "memory_nodes": sorted(locality.memory_nodes(pages)),
            "local_share": round(locality.local_share(pages, homes), 4),
            "vnuma": vnuma}


def outside_soft_counts(rows: Sequence[dict]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for r in rows:
        counts[r["name"]] = counts.get(r["name"], 0) + (1 if r["outside_soft"] else 0)
    return counts


def top_report(hv: Hypervisor, reserved: Optional[Mapping[int, int]] = None,
               demand: Optional[Mapping[str, float]] = None, outside_share: Optional[Mapping[str, float]] = None,
               home_moves: Optional[Mapping[str, int]] = None) -> dict:
    """Per node: busy CPUs, CPU demand of the VMs homed there against its pCPUs, memory;
    per VM: home nodes, memory local, vCPUs outside soft affinity now and the share of
    its time they were (over the samples the caller took); the rebalancer's moves by kind."""
    snap = observe.take(hv, with_pages=True)  # a VM destroyed meanwhile is left out, not a failure
    topo = snap.topology
    memory = {m.node: m for m in hv.node_memory()}
    reserved = reserved or {}
    busy = {n.id: 0 for n in topo.nodes}
    node_demand = {n.id: 0.0 for n in topo.nodes}
    vms = []
    for d in sorted(snap.domains, key=lambda d: d.domid):
        vcpus = snap.vcpus[d.domid]
        for v in vcpus:
            if v.state == "running" and v.cpu in topo.all_cpus:  # (not a CPU online since the topology was read)
                busy[topo.node_of(v.cpu)] += 1
        if d.domid == 0:
            continue
        homes = locality.home_nodes(vcpus, topo)
        pages = snap.pages.get(d.domid, {})
        wanted = (demand or {}).get(d.uuid, 0.0)
        for n, share in locality.home_shares(vcpus, topo).items():  # as the rebalancer counts it
            node_demand[n] += wanted * share
        vms.append({"domid": d.domid, "name": d.name, "home_nodes": sorted(homes),
                    "cpu_demand": round(wanted, 3),
                    "outside_soft_share": round((outside_share or {}).get(d.uuid, 0.0), 4),
                    "memory": sum(pages.values()) << PAGE_SHIFT,
                    "local_share": round(locality.local_share(pages, homes), 4),
                    "outside_soft": sum(1 for v in vcpus if locality.outside_soft(v, topo)), "vcpus": len(vcpus),
                    "paused": d.paused})
    nodes = [{"id": n.id, "cpus": len(n.cpus), "busy_cpus": busy[n.id], "cpu_demand": round(node_demand[n.id], 3),
              "memory_total": memory[n.id].size,
              "memory_free": memory[n.id].free, "memory_used": memory[n.id].size - memory[n.id].free,
              "memory_reserved": reserved.get(n.id, 0)} for n in topo.nodes]
    return {"nodes": nodes, "vms": vms, "home_moves": dict(home_moves or {})}
