"""Hindsight check: how far single-node choices can go on a trace when the future is known.

Not a placement rule (no engine knows when a VM will stop); it answers the
question the quality benchmark leaves open where the goals seem to conflict:
are "fewer splits" and "more even memory" at odds on that trace, or is the
gap what an online rule cannot know?

:class:`Hindsight` is the engine's default rule everywhere except where a VM
fits two or more nodes alone.  There it tries each of those nodes, replays
the next ``window`` events of the trace (stops included, later starts by the
default rule) and keeps the node with the lowest

    weight x VMs split in the window + mean memory CV over the window
        (+ cpu_weight x mean vCPU CV over the window)

(the default rule's node on a tie).  A one-step rollout, so a lower bound on
what hindsight reaches, not the optimum.  Run, for one trace of the
benchmark, side by side with the default rule and the baselines::

    python bench/quality/hindsight.py 2n-reg-nosmt --seed 7 --weights 0.01,0.03
"""

import os
import sys
from typing import List, Sequence

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from xapi_numa.core.placement import SINGLE_NODE_RULE, Request  # noqa: E402

from quality.policies import BASELINES, Decision, Ours, all_policies  # noqa: E402
from quality.replay import HostState, cv, fits_one_node, land, memory_cv, replay, stop  # noqa: E402
from quality.trace import Event, HostSpec, hosts, make_trace  # noqa: E402


def fitting_nodes(planner, state: HostState, vm) -> List[int]:
    """The nodes that hold the VM alone (its build in free memory, its vCPUs in cores)."""
    need = planner.need(Request(vm.vcpus, vm.memory))
    return [i for i, free in enumerate(state.free_bytes()) if free >= need and planner.cores[i] >= vm.vcpus]


class Hindsight:
    """The default rule, with single-node choices made by a rollout over the known future."""

    def __init__(self, host: HostSpec, trace: Sequence[Event], weight: float, window: int,
                 cpu_weight: float = 0.0) -> None:
        self.base = Ours(host.topology(), SINGLE_NODE_RULE)
        self.name = f"hindsight-{weight}" + (f"-cpu{cpu_weight}" if cpu_weight else "")
        self.trace, self.weight, self.window, self.cpu_weight = list(trace), weight, window, cpu_weight
        self.where = {ev.vm.vid: k for k, ev in enumerate(self.trace) if ev.start}

    def cost(self, state: HostState, k: int, node: int) -> float:
        """The window's cost when the VM started at event ``k`` goes to ``node``."""
        sim = HostState(state.n)
        sim.free, sim.vms = list(state.free), dict(state.vms)  # Running values are never mutated
        splits, cvs, cpu = 0, [], []
        for j, ev in enumerate(self.trace[k:k + self.window]):
            if not ev.start:
                stop(sim, ev.vm)
            else:
                d = Decision((node,)) if j == 0 else self.base.decide(sim, ev.vm, record=False)
                landed = land(sim, ev.vm, d, self.base.planner.overhead)
                splits += landed is not None and len(landed) > 1 and fits_one_node(ev.vm, self.base.planner.overhead)
            cvs.append(memory_cv(sim))
            if self.cpu_weight:
                cpu.append(cv(sim.spread_vcpus()))
        return self.weight * splits + (sum(cvs) + self.cpu_weight * sum(cpu)) / len(cvs)

    def decide(self, state: HostState, vm) -> Decision:
        d = self.base.decide(state, vm)
        if d.refused or d.home is None or len(d.home) != 1:
            return d
        fits = fitting_nodes(self.base.planner, state, vm)
        if len(fits) < 2:
            return d
        k = self.where[vm.vid]
        best = min(fits, key=lambda node: (self.cost(state, k, node), node != d.home[0], node))
        return Decision((best,))


def compare(name: str, seed: int, weights: Sequence[float], window: int, cpu_weight: float = 0.0,
            starts: int = 1500) -> List[str]:
    host = next(h for h in hosts() if h.name == name)
    trace = make_trace(host, seed, starts)
    policies = [p for p in all_policies(host.topology()) if p.name == "ours" or p.name in BASELINES]
    policies += [Hindsight(host, trace, w, window, cpu_weight) for w in weights]
    out = [f"{name}, seed {seed}, {starts} starts (hindsight: window {window} events)",
           "  {:<22}{:>10}{:>8}{:>9}{:>8}{:>9}".format("rule", "split", "dist", "mem cv", "cpu cv", "refused")]
    for p in policies:
        r = replay(host, trace, p)
        out.append("  {:<22}{:>10}{:>8.3f}{:>9.4f}{:>8.3f}{:>9}".format(
            r["policy"], f"{r['splits']}/{r['fitting']}", r["distance_mean"], r["memory_cv"], r["vcpu_cv"],
            r["refusals"]))
    return out


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", help="a host of the benchmark, e.g. 2n-reg-nosmt")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--weights", default="0.01,0.03", help="weights of a split against the mean memory CV")
    parser.add_argument("--cpu-weight", type=float, default=0.0, help="weight of the mean vCPU CV")
    args = parser.parse_args()
    print("\n".join(compare(args.trace, args.seed, [float(w) for w in args.weights.split(",")], args.window,
                             args.cpu_weight)))
