"""The numa plugin's cost per call: xapi runs plugins/numa as a new process for every call
(``place`` and ``settle`` on every VM start), so its start-up is on the VM start path.

Two calls, each the wall time of the whole process as xapi would run it (argv[1], stdout),
median of interleaved runs: an unknown function (the plugin loads, checks the call and
answers: start-up alone), and a what-if ``place`` (2 vCPUs, 1 GiB) on a simulated
2-node host, which loads what a VM start's ``place`` does, less the XenAPI client and
the Xen backend.  Run with dom0's Python 3.6 (.venv36) where there is one, else this
Python.  Baseline in the same run: ``python -c pass`` on the same interpreter.  No goal:
the figures are reported (the modules a call loads are held by
tests/test_plugin_startup_imports.py, not by a time).
"""

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from typing import Dict, List, Optional, Tuple

from common import Result

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = os.path.join(REPO, "plugins", "numa")
RUNS = 10


def interpreter() -> str:
    """dom0's Python (the repository's 3.6 environment) if there is one, else this one."""
    py36 = os.path.join(REPO, ".venv36", "bin", "python")
    return py36 if os.access(py36, os.X_OK) else sys.executable


def cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(argv: List[str], env: Dict[str, str], status: Optional[str] = None) -> Tuple[float, float]:
    """Wall and CPU seconds ``argv`` took (its CPU is steadier on a busy machine); a plugin
    call (``status`` given) must have answered with it."""
    start, start_cpu = time.perf_counter(), cpu()
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd="/", check=True)
    elapsed = time.perf_counter() - start, cpu() - start_cpu
    if status is not None:
        result = xmlrpc.client.loads(done.stdout.decode("ascii"))[0][0]
        if result["Status"] != status:
            raise RuntimeError("plugin answered {}, not {}".format(result, status))
    return elapsed


def run(runs: int = RUNS) -> List[Result]:
    py = interpreter()
    version = subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"], stdout=subprocess.PIPE,
                             check=True).stdout.decode().strip()
    with tempfile.TemporaryDirectory() as tmp:
        sim = os.path.join(tmp, "host.json")
        SimHypervisor.init(sim, Topology.uniform(2, 4, 4 << 30, [[10, 21], [21, 10]]))
        # what xapi gives a plugin (PATH alone), with the import path and this host's simulator
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": REPO, "XAPI_NUMA_BACKEND": "sim:" + sim,
               "XAPI_NUMA_LEDGER": os.path.join(tmp, "ledger.db"),
               "XAPI_NUMA_INVENTORY": os.path.join(tmp, "no-inventory")}
        calls = {"unknown function": ("no_such_function", {}, "Failure"),
                 "what-if place": ("place", {"vcpus": "2", "memory": "1G"}, "Success")}
        times = {name: [] for name in ("baseline", *calls)}
        for _ in range(runs):  # interleaved: a load on the machine weighs on all alike
            times["baseline"].append(timed([py, "-c", "pass"], env))
            for name, (fn, args, status) in calls.items():
                call = xmlrpc.client.dumps(("OpaqueRef:bench", args), fn)
                times[name].append(timed([py, PLUGIN, call], env, status))
    base, base_cpu = (statistics.median(t[i] for t in times["baseline"]) for i in (0, 1))
    results = []
    for name in calls:
        median, median_cpu = (statistics.median(t[i] for t in times[name]) for i in (0, 1))
        results.append(Result(f"plugin per call, {name}, Python {version}", median / base,
                              "python start-ups (wall)", "none (reported)", None,
                              f"wall median {median * 1000:.0f} ms (min {min(t[0] for t in times[name]) * 1000:.0f}), "
                              f"CPU median {median_cpu * 1000:.0f} ms, {runs} runs; baseline python -c pass: "
                              f"wall {base * 1000:.0f} ms, CPU {base_cpu * 1000:.0f} ms"))
    return results


if __name__ == "__main__":
    for r in run(int(sys.argv[1]) if len(sys.argv) > 1 else RUNS):
        print(f"[info] {r.name}: {r.ratio:.1f}x {r.unit} (goal {r.goal}); {r.detail}")
