"""The simulated host's state file, field by field, checked before any of it is used.

Every value the loaders read (:mod:`.state_format`, :class:`~.domain.Domain`, the
schedulers' ``from_dict``, :mod:`.guestmem`, the vNUMA layout), with its type and its
bounds, and how the values fit together: a vCPU a run queue names exists and says it
is there, a page run names a node, a layout covers the domain's vCPUs.  A file that
passes loads and runs without a Python error; :func:`check_shape` names the first thing
wrong in one that does not (raises :class:`Damaged`).  What this module accepts is what
the model writes: the store checks every write too.
"""
import uuid
from typing import Any, Dict, List, Tuple

from xapi_numa.backends.sim.credit2 import runqueue_layout
from xapi_numa.backends.sim.heap import zone_pages
from xapi_numa.backends.sim.loads import LoadProfile
from xapi_numa.backends.sim.masks import has, iter_bits
from xapi_numa.backends.sim.model import STATE_VERSION
from xapi_numa.backends.sim.state_sched import check_scheduler
from xapi_numa.backends.sim.state_shape import (
    BOOL, COUNT, CPU, NODE, SINCE, Context, Damaged, Int, Kind, ListOf, Mask, Maybe, Number, OneOf, Parsed, Record,
    Row, check, last, type_name)
from xapi_numa.core.cpuset import format_ids
from xapi_numa.core.host import DOMAIN_TYPES
from xapi_numa.core.topology import Topology
from xapi_numa.errors import InvalidArgument

__all__ = ["Damaged", "check_shape"]

GFNS = 1 << 40  # an x86 guest's frame numbers: 52-bit physical addresses (PADDR_BITS) of 4 KiB pages
RNG_WORDS = 625  # random.getstate(): the Mersenne Twister's 624 words and its position
# Before 2026-12-04 a host made through the Python API could hold any text as a domain's UUID
UUID_HINT = "a host made before 2026-12-04 may hold other text there: xapi-numa sim init PATH --force makes it again"
RQ_INDEX = Int(-1, last("rqs"), "-1 or a run queue")  # credit has none: -1 there

TOPOLOGY = Record([("memory_size", ListOf(COUNT, least=1)), ("cpu_to_node", ListOf(NODE, least=1)),
                   ("cpu_to_core", ListOf(COUNT)), ("cpu_to_socket", ListOf(COUNT)),
                   ("distances", ListOf(ListOf(Int())))])
# Vcpu.to_list (the last three, CPU time, credit2's last load update and credit1's pick flag, came later)
VCPU = Row([("id", COUNT), ("hard", Mask()), ("soft", Mask(empty=True)), ("processor", CPU), ("running", BOOL),
            ("queued", BOOL), ("credit", Int()), ("pri", Int()), ("migrating", BOOL), ("avgload", COUNT),
            ("rqd", RQ_INDEX), ("migrate_rqd", RQ_INDEX), ("tickled_cpu", Int(-1, last("cpus"), "-1 or a CPU")),
            ("phase", COUNT), ("outside_since", SINCE), ("cpu_ticks", COUNT), ("load_last", SINCE), ("picked", BOOL)], optional=3)
VNODE = Record([("vnode", COUNT), ("pnode", Maybe(NODE)), ("memory", COUNT), ("vcpus", ListOf(COUNT)),
                ("vdistances", ListOf(COUNT)), ("ranges", ListOf(Row([("start", COUNT), ("end", COUNT)])))])
DOMAIN = Record(
    [("domid", COUNT), ("name", Kind(str)), ("uuid", Parsed(uuid.UUID, "a UUID", UUID_HINT)),
     ("type", OneOf(*DOMAIN_TYPES)), ("max_pages", COUNT), ("node_pages", ListOf(COUNT, per="nodes")),
     ("claim", COUNT), ("node_claims", Kind(dict)), ("node_affinity", Maybe(Mask("nodes"))),
     ("last_alloc_node", Int(-1, last("nodes"), "-1 or a node")), ("pause_count", COUNT),
     ("load", Parsed(LoadProfile.parse, "a load profile")), ("vcpus", ListOf(VCPU, least=1))],
    # fields files written before them lack (guest memory, the performance model, vNUMA)
    [("passthrough", BOOL), ("video", COUNT), ("dma_pages", ListOf(COUNT, per="nodes")),
     ("overhead_pages", ListOf(COUNT, per="nodes")), ("overhead_dma", ListOf(COUNT, per="nodes")),
     ("gfn_runs", Maybe(ListOf(Row([("first gfn", Int(0, GFNS - 1, "a gfn below 2^40")),
                                    ("count", Int(1, GFNS, "1 .. 2^40 frames")),
                                    ("node", Int(-1, last("nodes"), "-1 (unbacked) or a node"))])))),
     ("held", ListOf(COUNT)), ("granted", ListOf(COUNT)), ("stale", ListOf(Row([("node", NODE), ("pages", COUNT)]))),
     ("record", Maybe(ListOf(COUNT))), ("max_raise", Maybe(Row([("was", COUNT), ("set", Int(1))]))),
     ("work_ticks", Number(0)), ("remote_ticks", Number(0)),
     ("wait_ticks", COUNT), ("vnuma", Maybe(Record([("vnodes", ListOf(VNODE, least=1))])))])
HOST = Record(
    [("scheduler", OneOf("credit", "credit2")), ("seed", Int()), ("tick", COUNT),
     ("free", ListOf(COUNT, per="nodes")), ("next_domid", COUNT),
     ("rng", Row([("version", Int(3, 3)), ("state", ListOf(Int(0, (1 << 32) - 1), per="rng_words")),
                  ("gauss_next", Maybe(Number()))])),
     ("domains", ListOf(DOMAIN)), ("sched", Kind(dict))],
    [("node_run_ticks", ListOf(COUNT, per="nodes")), ("node_wait_ticks", ListOf(COUNT, per="nodes")),
     ("xen_commandline", Kind(str))])

# what bounds depend on, each derived once its source is checked (see the order above)
FACTS = {
    "topology": lambda ctx: _topology(ctx.data),
    "nodes": lambda ctx: len(ctx.data["topology"]["memory_size"]),
    "cpus": lambda ctx: len(ctx.data["topology"]["cpu_to_node"]),
    "node_pages": lambda ctx: [size >> 12 for size in ctx.data["topology"]["memory_size"]],
    "tick": lambda ctx: ctx.data["tick"],
    "zone_pages": lambda ctx: zone_pages(ctx.data.get("xen_commandline", ""), ctx["node_pages"]),
    "rng_words": lambda ctx: RNG_WORDS,
    "rqs": lambda ctx: len(runqueue_layout(ctx["topology"])) if ctx.data["scheduler"] == "credit2" else 0,
    "vcpus": lambda ctx: {(d["domid"], j): (f"host.domains[{i}].vcpus[{j}]", v)
                          for i, d in enumerate(ctx.data["domains"]) for j, v in enumerate(d["vcpus"])},
}


def _topology(data: dict) -> Topology:
    t = data["topology"]
    return Topology.from_arrays(t["cpu_to_node"], t["distances"], t["memory_size"],
                                cpu_to_core=t["cpu_to_core"], cpu_to_socket=t["cpu_to_socket"])


def check_shape(data: Any) -> None:
    """Refuse a state of the wrong shape, naming the first thing wrong (raises Damaged)."""
    if type(data) is not dict:
        raise Damaged(f"the file holds {type_name(data)}, not a simulated host (a JSON object)")
    if type(data.get("version")) is not int or data["version"] != STATE_VERSION:
        raise Damaged(f"unsupported state version {data.get('version')!r} (this simulator writes {STATE_VERSION})")
    ctx = Context(data, FACTS)
    check(Record([("topology", TOPOLOGY)]), data, "host", ctx)
    try:
        ctx["topology"]
    except InvalidArgument as err:  # the distances, or CPUs on nodes it does not have
        raise Damaged(f"host.topology: {err.field}: {err.detail}") from None
    check(HOST, data, "host", ctx)
    _check_host(data, ctx)
    for i, d in enumerate(data["domains"]):
        _check_domain(d, f"host.domains[{i}]", ctx)
    check_scheduler(data, ctx)


def _check_host(data: dict, ctx: Context) -> None:
    _within(data["free"], ctx["node_pages"], "host.free")
    if data["rng"][1][-1] > RNG_WORDS - 1:
        raise Damaged(f"host.rng[1][{RNG_WORDS - 1}] (the generator's position) must be 0..{RNG_WORDS - 1}, "
                      f"not {data['rng'][1][-1]}")
    seen: Dict[int, int] = {}
    for i, d in enumerate(data["domains"]):
        if d["domid"] in seen:
            raise Damaged(f"host.domains[{i}].domid {d['domid']} is host.domains[{seen[d['domid']]}]'s too")
        seen[d["domid"]] = i
    if seen and data["next_domid"] <= max(seen):
        raise Damaged(f"host.next_domid must be more than every domain's domid ({max(seen)}), "
                      f"not {data['next_domid']}")
    for n, size in enumerate(ctx["node_pages"]):  # (the model asserts it at every step: the allocator's books)
        used = sum(_held(d, "node_pages", n) for d in data["domains"])
        if data["free"][n] + used != size:
            raise Damaged(f"host.free[{n}] ({data['free'][n]}) and the domains' node_pages[{n}] and "
                          f"overhead_pages[{n}] ({used}) must add up to node {n}'s {size} pages, "
                          f"not {data['free'][n] + used}")
    if all("dma_pages" in d for d in data["domains"]):  # (else worked out on loading: a file from before)
        _check_zone(data["domains"], ctx)


def _check_zone(domains: List[dict], ctx: Context) -> None:
    """The domains' pages below the DMA width fit each node's zone, the rest above it."""
    for n, (size, zone) in enumerate(zip(ctx["node_pages"], ctx["zone_pages"])):
        for i, d in enumerate(domains):
            for low_field, field in (("dma_pages", "node_pages"), ("overhead_dma", "overhead_pages")):
                below, held = (d[f][n] if f in d else 0 for f in (low_field, field))
                if below > held:
                    raise Damaged(f"host.domains[{i}].{low_field}[{n}] ({below}) must be at most its "
                                  f"{field}[{n}] ({held})")
        low = sum(_held(d, "dma_pages", n) for d in domains)
        high = sum(_held(d, "node_pages", n) for d in domains) - low
        if low > zone or high > size - zone:
            raise Damaged(f"the domains hold {low} pages of node {n} below Xen's DMA width and {high} above it, "
                          f"where the node has {zone} and {size - zone} (host.xen_commandline, host.domains[*]"
                          f".dma_pages[{n}], .overhead_dma[{n}])")


def _held(d: dict, field: str, n: int) -> int:
    """Of node ``n``, the pages a domain's ``field`` (node_pages or dma_pages) says it holds, and
    those of its build's overhead (overhead_pages, overhead_dma: none in files from before it)."""
    apart = {"node_pages": "overhead_pages", "dma_pages": "overhead_dma"}[field]
    return d[field][n] + (d[apart][n] if apart in d else 0)


def _within(pages: List[int], sizes: List[int], where: str) -> None:
    for n, (p, size) in enumerate(zip(pages, sizes)):
        if p > size:
            raise Damaged(f"{where}[{n}] must be at most node {n}'s {size} pages, not {p}")


def _check_domain(d: dict, where: str, ctx: Context) -> None:
    nodes = ctx["nodes"]
    _within(d["node_pages"], ctx["node_pages"], f"{where}.node_pages")
    for node, pages in d["node_claims"].items():
        if not (node.isdigit() and int(node) < nodes and type(pages) is int and pages >= 0):
            raise Damaged(f"{where}.node_claims[{node!r}] must be pages (0 or more) claimed on a node "
                          f"0..{nodes - 1}, not {pages!r}")
    for j, v in enumerate(d["vcpus"]):
        if v[0] != j:
            raise Damaged(f"{where}.vcpus[{j}][0] (id) must be {j}, its place in the list, not {v[0]}")
        if not has(v[1], v[3]):  # (Xen never runs, nor queues, a vCPU outside its hard affinity)
            raise Damaged(f"{where}.vcpus[{j}][3] (processor) must be a CPU of its hard affinity "
                          f"({format_ids(iter_bits(v[1]))}), not {v[3]}")
    stale = [0] * nodes
    for node, pages in d.get("stale", []):
        stale[node] += pages
    for node, (pages, held) in enumerate(zip(stale, d["node_pages"])):
        if pages > held:  # old frames still the domain's: counted in its node_pages
            raise Damaged(f"{where}.stale holds {pages} pages on node {node}, more than "
                          f"{where}.node_pages[{node}] ({held})")
    _check_runs(d.get("gfn_runs") or [], f"{where}.gfn_runs")
    if d.get("vnuma") is not None:
        _check_vnuma(d["vnuma"]["vnodes"], len(d["vcpus"]), f"{where}.vnuma.vnodes")


def _check_runs(runs: List[List[int]], where: str) -> None:
    """Page runs in gfn order, none overlapping the one before (the model bisects them)."""
    end = 0
    for i, (first, count, _node) in enumerate(runs):
        if first < end:
            raise Damaged(f"{where}[{i}] starts at gfn {first}, inside the run before it (which ends at {end})")
        end = first + count


def _check_vnuma(vnodes: List[dict], vcpus: int, where: str) -> None:
    """As Xen's XEN_DOMCTL_setvnumainfo took it: vnodes 0..k-1 in order, a k x k distance
    table, every vCPU of the domain in one vnode, ranges that are not empty."""
    placed: List[Tuple[int, int]] = []
    for i, v in enumerate(vnodes):
        if v["vnode"] != i:
            raise Damaged(f"{where}[{i}].vnode must be {i}, its place in the list, not {v['vnode']}")
        if len(v["vdistances"]) != len(vnodes):
            raise Damaged(f"{where}[{i}].vdistances has {len(v['vdistances'])} entries for {len(vnodes)} vnodes")
        for j, (start, end) in enumerate(v["ranges"]):
            if start >= end:
                raise Damaged(f"{where}[{i}].ranges[{j}] must end after it starts, not at {end} (from {start})")
        placed.extend((c, i) for c in v["vcpus"])
    if sorted(c for c, _ in placed) != list(range(vcpus)):
        raise Damaged(f"{where}: the vnodes' vcpus must name each of the domain's {vcpus} vCPUs once, "
                      f"not {sorted(c for c, _ in placed)}")
