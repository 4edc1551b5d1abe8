"""Variants of the default single-node rule ``scored``, replayed on the quality benchmark's traces.

A research check, not rules the engine has.  Each variant replaces the engine's
choice among the nodes that hold a VM alone (``placement.choose_node`` is
patched for that replay only) and is counted as ``make_room.py`` counts: misses
of issue 13's goals per trace, split / distance / memory (against the placing
baselines) / vCPU.  Baselines are replayed once per seed and cached under
``.cache/bench/variants/``.  A spec is ``kind:p,q,w``:

* ``scored``: the cached ``ours`` row (the engine's rule when the cache was made);
* ``engine``: the engine's default rule, replayed now (its split risk over the starts placed);
  ``engine-tried``: the same over every start tried, refused ones too (as ``risk`` counts);
* ``tol-rr:tol``: among nodes whose score is within ``tol`` of the lowest, the
  one this replay picked least so far (xenopsd's use count, never lowered);
* ``use:w,decay``: score + ``w`` x a use count that decays by ``decay`` per pick;
* ``small-best:f``: VMs below ``f`` of a node best fit, the rest ``scored``;
* ``tol-small:tol,f``: VMs below ``f`` of a node the tightest fit among nodes
  within ``tol`` of the lowest score, the rest ``scored``;
* ``risk:r,m,w``: score + ``r`` x the share of the VM sizes started so far (the
  last ``w`` starts; 0 = all) bigger than the biggest free memory on one node
  after the choice, with the fragmentation term weighted ``m`` x FRAG_WEIGHT;
  ``riskrun:r,m``: the same over the sizes of the VMs running now.  ``risk:0.5,0.5`` is
  ``engine-tried`` with ``RISK_WEIGHT`` 0.5 (the same figures on seeds 1-20).

Run: ``python bench/quality/variants.py 1-6 scored risk:0.5,0.5 tol-rr:0.01``
"""
import bisect
import json
import os
import sys
from typing import Dict, List
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from xapi_numa.core import placement  # noqa: E402
from xapi_numa.core.single_node import CPU_WEIGHT, FRAG_WEIGHT, cv, fragmentation, used_memory  # noqa: E402
from xapi_numa.core.units import PAGE_SHIFT  # noqa: E402

from quality.make_room import GOALS, misses, seeds_of  # noqa: E402
from quality.policies import BASELINES, Ours, all_policies  # noqa: E402
from quality.replay import replay  # noqa: E402
from quality.trace import CORES_PER_NODE, NODE_MEMORY, hosts, make_trace  # noqa: E402

CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     ".cache", "bench", "variants")


def scores(fits, avail, vcpus_on, cores, vcpus, need, sizes, frag_weight=FRAG_WEIGHT) -> Dict[int, float]:
    """``scored``'s score of each node that fits (the engine's formula, written plainly)."""
    used = used_memory(avail, sizes)
    load = [v / c for v, c in zip(vcpus_on, cores)]
    out = {}
    for i in fits:
        u, ld, a = list(used), list(load), list(avail)
        u[i] += need
        ld[i] += vcpus / cores[i]
        a[i] -= need
        out[i] = cv(u) + CPU_WEIGHT * cv(ld) + frag_weight * fragmentation(sum(a), max(a))
    return out


class Variant:
    """One replay's chooser (it keeps the use counts and sizes seen of that replay)."""

    def __init__(self, kind: str, p: float, q: float = 1.0, window: float = 0) -> None:
        self.kind, self.p, self.q, self.window = kind, p, q, int(window)
        self.use: List[float] = []
        self.seen: List[int] = []  # sorted sizes of the VMs started so far that fit one node
        self.recent: List[int] = []  # the same, oldest first (for the window)

    def saw(self, size: int) -> None:
        bisect.insort(self.seen, size)
        self.recent.append(size)
        if self.window and len(self.recent) > self.window:
            del self.seen[bisect.bisect_left(self.seen, self.recent.pop(0))]

    def __call__(self, rule, fits, avail, vcpus_on, cores, vcpus, need=0, sizes=(), *history):
        # (``history``: the engine's own start sizes, which a variant does not read)
        cores = [c or 1 for c in cores]
        self.use = self.use or [0.0] * len(avail)
        k, p, q = self.kind, self.p, self.q
        small = need < (p if k == "small-best" else q) * max(sizes)
        if k == "small-best" and small:
            pick = min(fits, key=lambda i: (avail[i], vcpus_on[i] / cores[i], i))
        elif k in ("risk", "riskrun"):
            s = scores(fits, avail, vcpus_on, cores, vcpus, need, sizes, q * FRAG_WEIGHT)
            seen = self.seen or [need]
            for i in fits:
                hole = max(a - need if j == i else a for j, a in enumerate(avail))
                s[i] += p * (len(seen) - bisect.bisect_right(seen, hole)) / len(seen)
            pick = min(fits, key=lambda i: (s[i], i))
        else:
            s = scores(fits, avail, vcpus_on, cores, vcpus, need, sizes)
            near = [i for i in fits if s[i] <= min(s.values()) + p]
            if k == "tol-rr":
                pick = min(near, key=lambda i: (self.use[i], s[i], i))
            elif k == "tol-small" and small:
                pick = min(near, key=lambda i: (avail[i], s[i], i))
            elif k == "use":
                pick = min(fits, key=lambda i: (s[i] + p * self.use[i], i))
            else:
                pick = min(fits, key=lambda i: (s[i], i))
        if k == "use":
            self.use = [u * q for u in self.use]
        self.use[pick] += 1
        return pick


def base_rows(seed: int) -> Dict[str, Dict[str, dict]]:
    """Per host, the baselines' and ``ours``' figures on this seed's trace (cached)."""
    path = os.path.join(CACHE, f"base-{seed}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    out = {}
    for host in hosts():
        trace = make_trace(host, seed, 1500)
        out[host.name] = {p.name: replay(host, trace, p) for p in all_policies(host.topology())
                          if p.name == "ours" or p.name in BASELINES}
    os.makedirs(CACHE, exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f)
    return out


def fits_a_node(vcpus: int, memory: int) -> bool:
    return vcpus <= CORES_PER_NODE and memory < NODE_MEMORY


class EveryStartTried(Ours):
    """The engine, with the sizes of refused starts in its history too."""

    def decide(self, state, vm, record: bool = True):
        d = super().decide(state, vm, record)
        if record and d.refused and fits_a_node(vm.vcpus, vm.memory):
            self.starts = self.starts.with_start(vm.memory)
        return d


def replay_variant(host, seed: int, kind: str, vals: List[float]) -> dict:
    if kind in ("engine", "engine-tried"):
        policy = (Ours if kind == "engine" else EveryStartTried)(host.topology(), "scored")
        return replay(host, make_trace(host, seed, 1500), policy)
    v = Variant(kind, *vals)
    policy = Ours(host.topology(), "scored")
    decide = policy.decide

    def seeing(state, vm):
        if kind == "riskrun":  # the VMs running now, by the pages they hold (overhead included)
            held = [sum(r.pages.values()) << PAGE_SHIFT for r in state.vms.values()]
            v.seen = sorted(b for b, r in zip(held, state.vms.values()) if fits_a_node(r.vcpus, b))
        elif fits_a_node(vm.vcpus, vm.memory):
            v.saw(vm.memory)
        return decide(state, vm)

    policy.decide = seeing
    with mock.patch.object(placement, "choose_node", v):
        return replay(host, make_trace(host, seed, 1500), policy)


def run(spec: str, seeds: List[int]) -> None:
    kind, _, rest = spec.partition(":")
    vals = [float(x) for x in rest.split(",")] if rest else [0.0]
    counts, per_size = [0] * len(GOALS), {}
    for seed in seeds:
        base = base_rows(seed)
        for host in hosts():
            rows = base[host.name]
            r = rows["ours"] if kind == "scored" else replay_variant(host, seed, kind, vals)
            m = misses(rows, r)
            size = host.name.split("-")[0]
            for g, goal in enumerate(GOALS):
                counts[g] += goal in m
                per_size.setdefault(size, [0] * len(GOALS))[g] += goal in m
            print(f"  {spec} seed {seed} {host.name}: split {r['splits']} dist {r['distance_mean']:.3f} "
                  f"mem {r['memory_cv']:.4f} vcpu {r['vcpu_cv']:.4f} miss [{m}]", flush=True)
    print(f"RESULT {spec} seeds {seeds[0]}-{seeds[-1]}: {'/'.join(map(str, counts))} = {sum(counts)}; by size "
          + ", ".join(f"{k} {'/'.join(map(str, v))}" for k, v in per_size.items()), flush=True)


if __name__ == "__main__":
    for spec in sys.argv[2:]:
        run(spec, seeds_of(sys.argv[1]))
