"""Backend-neutral queries: port snapshots in, plain rows out, and their rendering.

The rows are what ``--json`` prints and what tables show; they are built from
the :class:`~xapi_numa.hypervisor.Hypervisor` port only, so they work the same
on the simulator and on real Xen.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from .cpuset import format_ids
from .hypervisor import Hypervisor, VcpuInfo
from .topology import Topology
from .units import PAGE_SHIFT, format_size


def soft_is_narrow(v: VcpuInfo, topo: Topology) -> bool:
    """Does soft affinity say anything (narrower than the host, meets hard)?"""
    return bool(v.soft & v.hard) and not v.hard <= v.soft and not topo.all_cpus <= v.soft


def outside_soft(v: VcpuInfo, topo: Topology) -> bool:
    """A vCPU that runs or waits to run on a pCPU outside its soft affinity."""
    return v.state in ("running", "runnable") and soft_is_narrow(v, topo) and v.cpu not in v.soft


def topology_report(hv: Hypervisor) -> dict:
    topo = hv.topology()
    memory = {m.node: m for m in hv.node_memory()}
    return {
        "nodes": [
            {"id": n.id, "cpus": format_ids(n.cpus), "memory_total": memory[n.id].size,
             "memory_free": memory[n.id].free, "memory_claimed": memory[n.id].claimed}
            for n in topo.nodes
        ],
        "distances": [list(r) for r in topo.distances],
        "cpus": [{"cpu": c.id, "core": c.core, "socket": c.socket, "node": c.node} for c in topo.cpus],
    }


def vcpu_rows(hv: Hypervisor, domids: Optional[Sequence[int]] = None) -> List[dict]:
    topo = hv.topology()
    names = {d.domid: d.name for d in hv.domains()}
    rows = []
    for domid in (domids if domids is not None else sorted(names)):
        for v in hv.vcpus(domid):
            rows.append({
                "domid": domid, "name": names.get(domid, ""), "vcpu": v.vcpu, "cpu": v.cpu,
                "node": topo.node_of(v.cpu), "state": v.state,
                "hard": topo.format_cpus(v.hard), "soft": topo.format_cpus(v.soft),
                "outside_soft": outside_soft(v, topo),
            })
    return rows


def memory_rows(hv: Hypervisor) -> List[dict]:
    rows = []
    for d in sorted(hv.domains(), key=lambda d: d.domid):
        pages = hv.node_pages(d.domid)
        rows.append({"domid": d.domid, "name": d.name,
                     "nodes": {str(n): p << PAGE_SHIFT for n, p in sorted(pages.items())},
                     "total": sum(pages.values()) << PAGE_SHIFT})
    return rows


def outside_soft_counts(rows: Sequence[dict]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for r in rows:
        counts[r["name"]] = counts.get(r["name"], 0) + (1 if r["outside_soft"] else 0)
    return counts


# --- rendering ------------------------------------------------------------------------------
def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def render_topology(report: dict) -> str:
    nodes = table(["node", "cpus", "memory", "free", "claimed"],
                  [[n["id"], n["cpus"], format_size(n["memory_total"]), format_size(n["memory_free"]),
                    format_size(n["memory_claimed"])] for n in report["nodes"]])
    ids = [n["id"] for n in report["nodes"]]
    dist = table(["distance"] + [str(i) for i in ids],
                 [[i] + row for i, row in zip(ids, report["distances"])])
    return nodes + "\n\n" + dist


def render_vcpus(rows: Sequence[dict]) -> str:
    return table(["domid", "name", "vcpu", "cpu", "node", "state", "hard", "soft", "outside-soft"],
                 [[r["domid"], r["name"], r["vcpu"], r["cpu"], r["node"], r["state"], r["hard"], r["soft"],
                   "yes" if r["outside_soft"] else ""] for r in rows])


def render_memory(rows: Sequence[dict]) -> str:
    nodes = sorted({n for r in rows for n in r["nodes"]}, key=int)
    return table(["domid", "name"] + [f"node{n}" for n in nodes] + ["total"],
                 [[r["domid"], r["name"]] + [format_size(r["nodes"].get(n, 0)) for n in nodes]
                  + [format_size(r["total"])] for r in rows])


# --- top -------------------------------------------------------------------------------------
def top_report(hv: Hypervisor, reserved: Optional[Dict[int, int]] = None) -> dict:
    """Per node: busy CPUs and memory; per VM: home nodes, memory local, vCPUs outside soft."""
    topo = hv.topology()
    memory = {m.node: m for m in hv.node_memory()}
    reserved = reserved or {}
    busy = {n.id: 0 for n in topo.nodes}
    vms = []
    for d in sorted(hv.domains(), key=lambda d: d.domid):
        vcpus = hv.vcpus(d.domid)
        for v in vcpus:
            if v.state == "running":
                busy[topo.node_of(v.cpu)] += 1
        if d.domid == 0:
            continue
        homes = set()
        for v in vcpus:
            if soft_is_narrow(v, topo):
                homes |= topo.nodes_of_cpus(v.soft & v.hard)
        pages = hv.node_pages(d.domid)
        total = sum(pages.values())
        local = sum(p for n, p in pages.items() if n in homes) if homes else total
        vms.append({"domid": d.domid, "name": d.name, "home_nodes": sorted(homes),
                    "memory": total << PAGE_SHIFT, "local_share": round(local / total, 4) if total else 1.0,
                    "outside_soft": sum(1 for v in vcpus if outside_soft(v, topo)), "vcpus": len(vcpus),
                    "paused": d.paused})
    nodes = [{"id": n.id, "cpus": len(n.cpus), "busy_cpus": busy[n.id], "memory_total": memory[n.id].size,
              "memory_free": memory[n.id].free, "memory_used": memory[n.id].size - memory[n.id].free,
              "memory_reserved": reserved.get(n.id, 0)} for n in topo.nodes]
    return {"nodes": nodes, "vms": vms}


def render_top(report: dict) -> str:
    nodes = table(["node", "busy", "used", "free", "reserved"],
                  [[n["id"], f"{n['busy_cpus']}/{n['cpus']}", format_size(n["memory_used"]),
                    format_size(n["memory_free"]), format_size(n["memory_reserved"])] for n in report["nodes"]])
    vms = table(["domid", "name", "home", "memory", "local", "outside-soft"],
                [[v["domid"], v["name"] + (" (paused)" if v["paused"] else ""),
                  ",".join(map(str, v["home_nodes"])) or "-", format_size(v["memory"]),
                  f"{100 * v['local_share']:.0f}%", f"{v['outside_soft']}/{v['vcpus']}"] for v in report["vms"]])
    return nodes + "\n\n" + vms
