"""Sampled-future check: the hindsight rollout, online (futures drawn, not known).

:mod:`quality.hindsight` shows that the default rule's choices among nodes
that fit, made by replaying the *real* next events, meet every goal at once.
This asks whether the same one-step rollout over *sampled* futures, which an
online engine could run, gets there too.  Each future is drawn from what the
host has seen so far: a start with probability L / (L + N) (L the mean number
of VMs running so far, N those running in the sample: Poisson arrivals and
exponential lifetimes, as in the trace) of a size drawn from the sizes started
so far, otherwise the stop of a running VM drawn uniformly (lifetimes are
memoryless, so none is likelier to stop than another).  The same draws are
used for every candidate node.  Cost and tie-break as in the hindsight check.
Not a placement rule; run side by side with the default rule and baselines::

    python bench/quality/sampled_rollout.py 2n-reg-nosmt --seed 7 --specs 0.003:40:4:0.75
"""

import os
import random
import sys
import time
from typing import List, Sequence

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from xapi_numa.core.placement import SINGLE_NODE_RULE  # noqa: E402

from quality.hindsight import fitting_nodes  # noqa: E402
from quality.policies import BASELINES, Decision, Ours, all_policies  # noqa: E402
from quality.replay import HostState, cv, fits_one_node, land, memory_cv, replay  # noqa: E402
from quality.trace import HostSpec, Vm, hosts, make_trace  # noqa: E402

MIN_HISTORY = 50  # starts seen before sizes are drawn from them


class SampledRollout:
    """The default rule, with single-node choices made by rollouts over drawn futures."""

    def __init__(self, host: HostSpec, weight: float, window: int, samples: int, cpu_weight: float = 0.0) -> None:
        self.base = Ours(host.topology(), SINGLE_NODE_RULE)
        self.name = f"sampled-{weight}-{window}x{samples}" + (f"-cpu{cpu_weight}" if cpu_weight else "")
        self.weight, self.window, self.samples, self.cpu_weight = weight, window, samples, cpu_weight
        self.sizes: List[tuple] = []
        self.running_sum = 0
        self.decisions = 0

    def cost(self, state: HostState, vm, node: int, seed: int, mean_running: float) -> float:
        rng = random.Random(seed)
        sim = HostState(state.n)
        sim.free, sim.vms = list(state.free), dict(state.vms)
        overhead = self.base.planner.overhead
        land(sim, vm, Decision((node,)), overhead)
        splits, cvs, cpu = 0, [memory_cv(sim)], []
        next_vid = -1
        for _ in range(self.window - 1):
            running = len(sim.vms)
            if running == 0 or rng.random() < mean_running / (mean_running + running):
                vcpus, memory = self.sizes[rng.randrange(len(self.sizes))]
                drawn = Vm(next_vid, vcpus, memory)
                next_vid -= 1
                landed = land(sim, drawn, self.base.decide(sim, drawn, record=False), overhead)
                splits += landed is not None and len(landed) > 1 and fits_one_node(drawn, overhead)
            else:
                vids = sorted(sim.vms)
                gone = sim.vms.pop(vids[rng.randrange(len(vids))])
                for n, pages in gone.pages.items():
                    sim.free[n] += pages
            cvs.append(memory_cv(sim))
            if self.cpu_weight:
                cpu.append(cv(sim.spread_vcpus()))
        return self.weight * splits + (sum(cvs) + self.cpu_weight * sum(cpu)) / len(cvs)

    def decide(self, state: HostState, vm) -> Decision:
        self.decisions += 1
        self.running_sum += len(state.vms)
        self.sizes.append((vm.vcpus, vm.memory))
        d = self.base.decide(state, vm)
        if d.refused or d.home is None or len(d.home) != 1 or len(self.sizes) < MIN_HISTORY:
            return d
        fits = fitting_nodes(self.base.planner, state, vm)
        if len(fits) < 2:
            return d
        mean_running = self.running_sum / self.decisions
        costs = {n: sum(self.cost(state, vm, n, self.decisions * 1000 + s, mean_running)
                        for s in range(self.samples)) for n in fits}
        return Decision((min(fits, key=lambda n: (costs[n], n != d.home[0], n)),))


def compare(name: str, seed: int, specs: Sequence[str], starts: int = 1500) -> List[str]:
    host = next(h for h in hosts() if h.name == name)
    trace = make_trace(host, seed, starts)
    policies = [p for p in all_policies(host.topology()) if p.name == "ours" or p.name in BASELINES]
    for spec in specs:  # weight:window:samples[:cpu_weight]
        parts = spec.split(":")
        policies.append(SampledRollout(host, float(parts[0]), int(parts[1]), int(parts[2]),
                                       float(parts[3]) if len(parts) > 3 else 0.0))
    out = [f"{name}, seed {seed}, {starts} starts",
           "  {:<26}{:>10}{:>8}{:>9}{:>8}{:>9}{:>7}".format("rule", "split", "dist", "mem cv", "cpu cv", "refused",
                                                             "secs")]
    for p in policies:
        began = time.monotonic()
        r = replay(host, trace, p)
        out.append("  {:<26}{:>10}{:>8.3f}{:>9.4f}{:>8.3f}{:>9}{:>7.0f}".format(
            r["policy"], f"{r['splits']}/{r['fitting']}", r["distance_mean"], r["memory_cv"], r["vcpu_cv"],
            r["refusals"], time.monotonic() - began))
    return out


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", help="a host of the benchmark, e.g. 2n-reg-nosmt")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--specs", default="0.003:40:4:0.75",
                        help="comma-separated weight:window:samples[:cpu_weight] (split weight against the mean "
                             "memory CV over the window)")
    args = parser.parse_args()
    print("\n".join(compare(args.trace, args.seed, args.specs.split(","))))
