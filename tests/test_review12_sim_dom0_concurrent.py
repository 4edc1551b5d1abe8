"""Review 12: the simulated dom0 tree (``PATH.dom0``) was read, changed and rewritten with
no lock, so two processes using one simulated host -- xapi-numad and ``xapi-numa backends``
(docs/dom0-backends.md's way of seeing it), or two CLI calls -- broke each other: both wrote the same
``sim-backend.json.tmp`` and one's ``os.replace`` found it gone, one removed a gone guest's
``/proc/<tid>`` the other had just removed (FileNotFoundError out of a cycle or a command),
and an affinity written by one was lost when the other saved the state it had read before
(the journal then says aligned, the tree says not).  Every change of the tree is now made
under an exclusive lock of its own, and its files are replaced whole."""
import os
import subprocess
import sys

from test_backend_affinity import N1, sim_host

WORKER = r"""
import sys, traceback
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.dom0_tree import SimDom0
path, role, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
hv = SimHypervisor(path)
dom0 = SimDom0(hv, path)
errors = 0
for i in range(rounds):
    try:
        if role == "churn":
            d = hv.create("x%d" % i, 1, 64 << 20, dtype="hvm")
            dom0.sync()
            hv.destroy(d)
        elif role == "pin":
            tid = int(sys.argv[4])
            want = frozenset({i % 2})
            assert dom0.set_thread(tid, sys.argv[5], int(sys.argv[6]), want)
        dom0.tasks(); dom0.irqs()
    except Exception:
        errors += 1
        if errors < 3:
            traceback.print_exc()
print("errors", errors)
"""


def run_all(tmp_path, *roles):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "host")] + list(r),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env)
             for r in roles]
    return [p.communicate(timeout=600)[0] for p in procs]


def test_two_processes_syncing_one_simulated_dom0_do_not_break_each_other(tmp_path):
    sim_host(tmp_path)
    outs = run_all(tmp_path, ("churn", "40"), ("read", "60"))
    assert all(o.strip().endswith("errors 0") for o in outs), "\n".join(outs)


def test_an_affinity_written_while_another_process_syncs_is_not_lost(tmp_path):
    from xapi_numa.backends.sim.dom0_tree import SimDom0

    hv = sim_host(tmp_path)
    g = hv.create("g", 1, 256 << 20, soft=N1, dtype="pvh")
    dom0 = SimDom0(hv, str(tmp_path / "host"))
    t = dom0.tasks([g])[0]
    outs = run_all(tmp_path, ("pin", "41", str(t.tid), t.name, str(t.starttime)), ("read", "60"))
    assert all(o.strip().endswith("errors 0") for o in outs), "\n".join(outs)
    # the pinning process wrote {0} last (round 40): nothing the reader saved may undo it
    assert {x.tid: x.allowed for x in dom0.tasks([g])}[t.tid] == frozenset({0})
