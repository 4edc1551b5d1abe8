"""Make-room check: would moving small VMs' pages aside let the engine meet issue 13's goals?

Every single-node rule in :mod:`xapi_numa.core.single_node` trades splits for
memory balance.  This asks whether our page mover, which neither xenopsd nor
libxl has, changes that trade: the default rule decides as usual, and when it
would split a VM that fits one node, a planner looks for the node that needs
the fewest pages moved to hold it, moving whole VMs homed on that node (the
smallest single VM that frees enough, else the largest ones until enough is
free), each to the other node with most free memory, at most ``cap`` of a
node in all per start.  Moved VMs take their new node as home (a home move,
as the rebalancer makes), so they stay local.  Figures: misses of the
benchmark's goals per trace, as ``bench_quality.py`` counts them (memory
against the placing baselines), and the VMs and GiB moved.

A check, not a rule the engine has: a start would wait for the moves (at
about 1.4 GiB/s, the page mover's modelled speed, 8 GiB is some 6 s), and it
moves every page the VM holds on the node, the build's overhead share too,
which a guest page move cannot (a small optimism).  Run::

    python bench/quality/make_room.py --seeds 1-6 --caps 0.0625,0.125 --frag 0
"""

import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple
from unittest import mock

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from xapi_numa.core import single_node  # noqa: E402
from xapi_numa.core.placement import SINGLE_NODE_RULE  # noqa: E402
from xapi_numa.core.units import PAGE_SHIFT  # noqa: E402

from quality.policies import BASELINES, Decision, Ours, all_policies  # noqa: E402
from quality.replay import HostState, Running, fits_one_node, pages_of, replay  # noqa: E402
from quality.trace import NODE_MEMORY, hosts, make_trace  # noqa: E402

PLACING = ("xenopsd", "xenopsd-memonly", "libxl")
GOALS = "SDMV"  # split, distance, memory (placing baselines), vCPU within 10 % of libxl


def vms_to_move(state: HostState, node: int, deficit: int) -> Optional[List[Tuple[int, int]]]:
    """(vid, pages on ``node``) of VMs homed on ``node`` alone that free ``deficit`` pages:
    the smallest one that does, else the largest ones until enough is free (None: too few)."""
    homed = sorted((r.pages.get(node, 0), vid) for vid, r in state.vms.items() if r.home == (node,))
    for pages, vid in homed:
        if pages >= deficit:
            return [(vid, pages)]
    chosen, freed = [], 0
    for pages, vid in reversed(homed):
        chosen.append((vid, pages))
        freed += pages
        if freed >= deficit:
            return chosen
    return None


def targets(state: HostState, node: int, moving: Sequence[Tuple[int, int]]) -> Optional[List[Tuple[int, int, int]]]:
    """(vid, target node, pages) for each VM, the biggest first, each to the other node with
    most free memory that holds it (None: one does not fit)."""
    free = list(state.free)
    out = []
    for vid, pages in sorted(moving, key=lambda m: -m[1]):
        room = [i for i in range(state.n) if i != node and free[i] >= pages]
        if not room:
            return None
        to = max(room, key=lambda i: (free[i], -i))
        free[to] -= pages
        out.append((vid, to, pages))
    return out


class MakeRoom(Ours):
    """The default rule; a VM it would split though it fits one node gets one, made by home moves."""

    def __init__(self, topology, cap: float) -> None:
        super().__init__(topology, SINGLE_NODE_RULE)
        self.name = f"make-room-{cap:g}"
        self.cap = int(cap * NODE_MEMORY) >> PAGE_SHIFT
        self.moved_vms = self.moved_pages = 0

    def decide(self, state: HostState, vm) -> Decision:
        d = super().decide(state, vm)
        if d.refused or d.home is None or len(d.home) == 1 or not fits_one_node(vm, self.planner.overhead):
            return d
        # the guest's memory and this node's share of the build overhead (striped over every node)
        need = pages_of(vm.memory) + pages_of(self.planner.overhead.bytes_for(vm.vcpus, vm.memory)) // state.n + 1
        best = None
        for node in range(state.n):
            deficit = need - state.free[node]
            if not 0 < deficit <= self.cap:
                continue
            moving = vms_to_move(state, node, deficit)
            plan = targets(state, node, moving) if moving else None
            if plan is not None:
                cost = sum(pages for _, _, pages in plan)
                if best is None or cost < best[0]:
                    best = (cost, node, plan)
        if best is None:
            return d
        _, node, plan = best
        for vid, to, pages in plan:
            r = state.vms[vid]
            held = {n: p for n, p in r.pages.items() if n != node}
            held[to] = held.get(to, 0) + pages
            state.free[node] += pages
            state.free[to] -= pages
            state.vms[vid] = Running(held, (to,), r.vcpus)
            self.moved_vms += 1
            self.moved_pages += pages
        return Decision((node,))


def misses(rows: Dict[str, dict], r: dict) -> str:
    refs = (min(rows[b]["split_share"] for b in BASELINES), min(rows[b]["distance_mean"] for b in BASELINES),
            min(rows[b]["memory_cv"] for b in PLACING), rows["libxl"]["vcpu_cv"] * 1.10)
    got = (r["split_share"], r["distance_mean"], r["memory_cv"], r["vcpu_cv"])
    return "".join(g for g, ours, ref in zip(GOALS, got, refs) if ours > ref + 1e-12)


def run_seed(seed: int, caps: Sequence[float], weight: float, starts: int = 1500) -> Dict[str, List[str]]:
    """Per policy (``ours`` and each cap), the goals missed on each trace; prints a line per trace.
    ``weight``: the default rule's fragmentation weight under the make-room rows (``ours`` keeps
    the engine's)."""
    out: Dict[str, List[str]] = {}
    for host in hosts():
        trace = make_trace(host, seed, starts)
        rows = {p.name: replay(host, trace, p) for p in all_policies(host.topology())
                if p.name == "ours" or p.name in BASELINES}
        line = [f"seed {seed} {host.name}: ours miss [{misses(rows, rows['ours'])}]"]
        out.setdefault("ours", []).append(misses(rows, rows["ours"]))
        for cap in caps:
            policy = MakeRoom(host.topology(), cap)
            # a module constant of the engine: patched for this replay only, never written back
            with mock.patch.object(single_node, "FRAG_WEIGHT", weight):
                r = replay(host, trace, policy)
            out.setdefault(policy.name, []).append(misses(rows, r))
            line.append(f"{policy.name}: split {r['splits']} dist {r['distance_mean']:.2f} mem {r['memory_cv']:.3f} "
                        f"vcpu {r['vcpu_cv']:.3f} moved {policy.moved_vms} VMs "
                        f"{(policy.moved_pages << PAGE_SHIFT) / 2 ** 30:.0f} GiB miss [{out[policy.name][-1]}]")
        print("; ".join(line), flush=True)
    return out


def seeds_of(text: str) -> List[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="7", help="a seed or a range, e.g. 1-6")
    parser.add_argument("--caps", default="0.0625", help="comma-separated caps, in node sizes moved per start")
    parser.add_argument("--frag", type=float, default=None,
                        help="the default rule's fragmentation weight for this run (default: the engine's)")
    args = parser.parse_args()
    weight = single_node.FRAG_WEIGHT if args.frag is None else args.frag
    totals: Dict[str, List[str]] = {}
    for s in seeds_of(args.seeds):
        for name, got in run_seed(s, [float(c) for c in args.caps.split(",")], weight).items():
            totals.setdefault(name, []).extend(got)
    for name, got in totals.items():
        counts = [sum(g in m for m in got) for g in GOALS]
        print(f"{name} (FRAG_WEIGHT {weight:g} for the make-room rows): misses split/distance/memory/vCPU "
              f"{'/'.join(map(str, counts))} = {sum(counts)} over {len(got)} traces")
