"""Review 11 (docs against code): xapi-numa-rrdd's refusal of a --names value names the
flag typed (--names), as --once's refusal names --once and every xapi-numa refusal names
its flag; it named a field "names" that no user types."""
import os
import subprocess
import sys

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_bad_names_value_is_refused_naming_the_flag(tmp_path):
    path = str(tmp_path / "host.json")
    SimHypervisor.init(path, Topology.uniform(2, 2, 1 << 30, [[10, 21], [21, 10]]), "credit2", seed=1)
    before = open(path, "rb").read()
    proc = subprocess.run([sys.executable, "-m", "xapi_numa.rrdd_plugin", "--backend", "sim:" + path, "--once",
                           "--file", str(tmp_path / "out"), "--names", "every"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "--names: unknown choice 'every' (allowed: auto, all, own)" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not os.path.exists(str(tmp_path / "out")) and open(path, "rb").read() == before
