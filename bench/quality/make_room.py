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

import math
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple
from unittest import mock

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from xapi_numa.core import single_node  # noqa: E402
from xapi_numa.core.placement import SINGLE_NODE_RULE  # noqa: E402
from xapi_numa.core.single_node import CPU_WEIGHT, FRAG_WEIGHT, cv, fragmentation  # noqa: E402
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


def score(used: Sequence[float], load: Sequence[float], free: Sequence[int], weight: float) -> float:
    """The engine's ``scored`` measure of a host state: CV(memory used) + CPU_WEIGHT x CV(vCPUs
    per core) + ``weight`` x ln(free memory / biggest free memory on one node)."""
    return cv(used) + CPU_WEIGHT * cv(load) + weight * fragmentation(sum(free), max(free))


def can_free(pages: Sequence[int], deficit: int, room: int) -> bool:
    """Whether VMs holding ``pages`` can free ``deficit`` pages moving at most ``room``: the
    smallest one that does, else the largest ones that stay within ``room`` (a sufficient test)."""
    if deficit <= 0:
        return True
    if any(deficit <= p <= room for p in pages):
        return True
    freed = 0
    for p in sorted(pages, reverse=True):
        if freed + p <= room:
            freed += p
    return freed >= deficit


def balanced_plan(state: HostState, cores: Sequence[int], vm, need: int, cap: int,
                  weight: float) -> Optional[Tuple[float, int, List[Tuple[int, int, int]]]]:
    """(score, node, moves) for the node and home moves after which, with ``vm`` built there
    (``need`` pages on it), the host scores lowest: for each node short by at most ``cap``,
    greedily the move (a VM homed on it alone, to any other node that holds it) after which
    the state with the VM built there scores lowest, among those after which the rest of the
    shortfall can still be freed within the rest of the cap (:func:`can_free`), until the VM
    fits (None: no node can be freed)."""
    total = NODE_MEMORY >> PAGE_SHIFT
    vcpus_on = state.single_home_vcpus()
    best = None
    for node in range(state.n):
        if not 0 < need - state.free[node] <= cap:
            continue
        free, on = list(state.free), list(vcpus_on)
        free[node] -= need
        on[node] += vm.vcpus
        homed = {vid: (r.pages.get(node, 0), r.vcpus) for vid, r in state.vms.items() if r.home == (node,)}
        moves, moved = [], 0
        while free[node] < 0:
            pick = None
            for vid, (pages, vcpus) in homed.items():
                if not 0 < pages <= cap - moved or not can_free(
                        [p for v, (p, _) in homed.items() if v != vid], -free[node] - pages, cap - moved - pages):
                    continue
                for to in range(state.n):
                    if to == node or free[to] < pages:
                        continue
                    f, o = list(free), list(on)
                    f[node] += pages
                    f[to] -= pages
                    o[node] -= vcpus
                    o[to] += vcpus
                    s = score([total - x for x in f], [v / c for v, c in zip(o, cores)], f, weight)
                    if pick is None or s < pick[0]:
                        pick = (s, vid, to, pages, vcpus)
            if pick is None:
                break
            _, vid, to, pages, vcpus = pick
            free[node] += pages
            free[to] -= pages
            on[node] -= vcpus
            on[to] += vcpus
            moved += pages
            moves.append((vid, to, pages))
            del homed[vid]
        if free[node] >= 0:
            s = score([total - x for x in free], [v / c for v, c in zip(on, cores)], free, weight)
            if best is None or s < best[0]:
                best = (s, node, moves)
    return best


def _cv(s1: float, s2: float, n: int) -> float:
    mean = s1 / n
    return math.sqrt(max(s2 / n - mean * mean, 0.0)) / mean if mean > 0 else 0.0


def levelling_moves(state: HostState, cores: Sequence[int], budget: int, weight: float,
                    gain: float) -> List[Tuple[int, int, int]]:
    """(vid, target node, pages): home moves of VMs homed on one node, at most ``budget`` pages
    in all, each the one that lowers the engine's score of the host (no new VM) most, while
    that is by at least ``gain`` (the rebalancer's move, between starts)."""
    n, total = state.n, NODE_MEMORY >> PAGE_SHIFT
    free = list(state.free)
    used = [total - f for f in free]
    load = [v / c for v, c in zip(state.single_home_vcpus(), cores)]
    groups: Dict[Tuple[int, int, int], List[int]] = {}  # (node, pages there, vCPUs): VMs alike
    for vid, r in state.vms.items():
        if r.home is not None and len(r.home) == 1 and 0 < r.pages.get(r.home[0], 0) <= budget:
            groups.setdefault((r.home[0], r.pages[r.home[0]], r.vcpus), []).append(vid)
    moves, moved = [], 0
    while True:
        u1, u2, l1, l2 = sum(used), sum(x * x for x in used), sum(load), sum(x * x for x in load)
        top = sorted(range(n), key=lambda i: -free[i])[:3]
        now = _cv(u1, u2, n) + CPU_WEIGHT * _cv(l1, l2, n) + weight * fragmentation(sum(free), free[top[0]])
        pick = None
        for (a, p, v), vids in groups.items():
            if not vids or p > budget - moved:
                continue
            for b in range(n):
                if b == a or free[b] < p:
                    continue
                du = (used[a] - p) ** 2 - used[a] ** 2 + (used[b] + p) ** 2 - used[b] ** 2
                la, lb = load[a] - v / cores[a], load[b] + v / cores[b]
                dl = la * la - load[a] ** 2 + lb * lb - load[b] ** 2
                s = _cv(u1, u2 + du, n) + CPU_WEIGHT * _cv(l1 + la + lb - load[a] - load[b], l2 + dl, n)
                if weight:
                    rest = next((free[i] for i in top if i not in (a, b)), 0)
                    s += weight * fragmentation(sum(free), max(free[a] + p, free[b] - p, rest))
                if pick is None or s < pick[0]:
                    pick = (s, a, p, v, b)
        if pick is None or now - pick[0] < gain:
            return moves
        _, a, p, v, b = pick
        vid = groups[(a, p, v)].pop()
        free[a] += p
        free[b] -= p
        used[a] -= p
        used[b] += p
        load[a] -= v / cores[a]
        load[b] += v / cores[b]
        moved += p
        moves.append((vid, b, p))


class MakeRoom(Ours):
    """The default rule; a VM it would split though it fits one node gets one, made by home moves.
    ``choose``: ``hole`` (the node that needs least moved, VMs to the most free memory) or
    ``balance`` (:func:`balanced_plan`, by the engine's score with fragmentation weight ``weight``)."""

    def __init__(self, topology, cap: float, choose: str = "hole", weight: float = FRAG_WEIGHT,
                 level: float = 0.0, gain: float = 0.0) -> None:
        super().__init__(topology, SINGLE_NODE_RULE)
        self.name = f"make-room-{cap:g}" + ("" if choose == "hole" else f"-{choose}") + (
            f"-level-{level:g}-{gain:g}" if level else "")
        self.cap = int(cap * NODE_MEMORY) >> PAGE_SHIFT
        self.level = int(level * NODE_MEMORY) >> PAGE_SHIFT
        self.choose, self.weight, self.gain = choose, weight, gain
        self.moved_vms = self.moved_pages = 0  # every move, levelling ones too
        self.levelled_vms = self.levelled_pages = 0

    def decide(self, state: HostState, vm) -> Decision:
        if self.level:  # the rebalancer's moves since the last start
            for vid, to, pages in levelling_moves(state, self.planner.cores, self.level, self.weight, self.gain):
                self.move(state, vid, state.vms[vid].home[0], to, pages)
                self.levelled_vms += 1
                self.levelled_pages += pages
        d = super().decide(state, vm)
        if d.refused or d.home is None or len(d.home) == 1 or not fits_one_node(vm, self.planner.overhead):
            return d
        # the guest's memory and this node's share of the build overhead (striped over every node)
        need = pages_of(vm.memory) + pages_of(self.planner.overhead.bytes_for(vm.vcpus, vm.memory)) // state.n + 1
        if self.choose == "balance":
            best = balanced_plan(state, self.planner.cores, vm, need, self.cap, self.weight)
            return d if best is None else self.apply(state, best[1], best[2])
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
        return self.apply(state, best[1], best[2])

    def apply(self, state: HostState, node: int, plan: Sequence[Tuple[int, int, int]]) -> Decision:
        """Make the home moves ``plan`` off ``node``; the decision to build there."""
        for vid, to, pages in plan:
            self.move(state, vid, node, to, pages)
        return Decision((node,))

    def move(self, state: HostState, vid: int, node: int, to: int, pages: int) -> None:
        """A home move: the VM's ``pages`` on ``node`` go to ``to``, its new home."""
        r = state.vms[vid]
        held = {n: p for n, p in r.pages.items() if n != node}
        held[to] = held.get(to, 0) + pages
        state.free[node] += pages
        state.free[to] -= pages
        state.vms[vid] = Running(held, (to,), r.vcpus)
        self.moved_vms += 1
        self.moved_pages += pages


def misses(rows: Dict[str, dict], r: dict) -> str:
    refs = (min(rows[b]["split_share"] for b in BASELINES), min(rows[b]["distance_mean"] for b in BASELINES),
            min(rows[b]["memory_cv"] for b in PLACING), rows["libxl"]["vcpu_cv"] * 1.10)
    got = (r["split_share"], r["distance_mean"], r["memory_cv"], r["vcpu_cv"])
    return "".join(g for g, ours, ref in zip(GOALS, got, refs) if ours > ref + 1e-12)


def run_seed(seed: int, caps: Sequence[float], weight: float, starts: int = 1500, choose: str = "hole",
             moved: Optional[Dict[str, List[Tuple[int, int]]]] = None,
             level: Tuple[float, float] = (0.0, 0.0)) -> Dict[str, List[str]]:
    """Per policy (``ours`` and each cap), the goals missed on each trace; prints a line per trace.
    ``weight``: the default rule's fragmentation weight under the make-room rows (``ours`` keeps
    the engine's); ``choose`` and ``level`` (level, gain): :class:`MakeRoom`'s; ``moved`` gets
    (VMs, pages) moved per trace.
    The baselines' and ``ours``' rows come from ``variants.py``'s cache (1500 starts only)."""
    from quality.variants import base_rows  # variants imports this module
    base = base_rows(seed) if starts == 1500 else None
    out: Dict[str, List[str]] = {}
    for host in hosts():
        trace = make_trace(host, seed, starts)
        rows = base[host.name] if base else {p.name: replay(host, trace, p) for p in all_policies(host.topology())
                                             if p.name == "ours" or p.name in BASELINES}
        line = [f"seed {seed} {host.name}: ours miss [{misses(rows, rows['ours'])}]"]
        out.setdefault("ours", []).append(misses(rows, rows["ours"]))
        for cap in caps:
            policy = MakeRoom(host.topology(), cap, choose, weight, *level)
            # a module constant of the engine: patched for this replay only, never written back
            with mock.patch.object(single_node, "FRAG_WEIGHT", weight):
                r = replay(host, trace, policy)
            out.setdefault(policy.name, []).append(misses(rows, r))
            if moved is not None:
                moved.setdefault(policy.name, []).append((policy.moved_vms, policy.moved_pages))
            line.append(f"{policy.name}: split {r['splits']} dist {r['distance_mean']:.2f} mem {r['memory_cv']:.3f} "
                        f"vcpu {r['vcpu_cv']:.3f} moved {policy.moved_vms} VMs "
                        f"{(policy.moved_pages << PAGE_SHIFT) / 2 ** 30:.0f} GiB (levelling {policy.levelled_vms}, "
                        f"{(policy.levelled_pages << PAGE_SHIFT) / 2 ** 30:.0f} GiB) miss [{out[policy.name][-1]}]")
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
    parser.add_argument("--choose", choices=("hole", "balance"), default="hole",
                        help="hole: the node needing least moved, VMs to most free memory; "
                             "balance: node and moves by the engine's score after moves and build")
    parser.add_argument("--level", type=float, default=0.0,
                        help="levelling moves before each start, at most this many node sizes (0: none)")
    parser.add_argument("--gain", type=float, default=0.0, help="a levelling move's least drop in the score")
    args = parser.parse_args()
    weight = single_node.FRAG_WEIGHT if args.frag is None else args.frag
    totals: Dict[str, List[str]] = {}
    moves: Dict[str, List[Tuple[int, int]]] = {}
    for s in seeds_of(args.seeds):
        for name, got in run_seed(s, [float(c) for c in args.caps.split(",")], weight, choose=args.choose,
                                  moved=moves, level=(args.level, args.gain)).items():
            totals.setdefault(name, []).extend(got)
    for name, got in totals.items():
        counts = [sum(g in m for m in got) for g in GOALS]
        per = moves.get(name, [(0, 0)])
        print(f"RESULT {name} seeds {args.seeds} (FRAG_WEIGHT {weight:g} for the make-room rows): misses "
              f"split/distance/memory/vCPU {'/'.join(map(str, counts))} = {sum(counts)} over {len(got)} traces; "
              f"moved per trace {sum(v for v, _ in per) / len(per):.1f} VMs "
              f"{(sum(p for _, p in per) << PAGE_SHIFT) / 2 ** 30 / len(per):.0f} GiB")
