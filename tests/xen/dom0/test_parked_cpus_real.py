"""A CPU taken offline on real Xen (xen-hptool cpu-offline), as a host booted with smt=0
parks its second threads: Xen still lists it in cputopoinfo, with its node, among the
online CPUs.  Ours must leave it out of its node, the masks read and every placement,
and take it back once it is online again.  (Run in dom0 by make xen-test.)
"""
import json
import os
import subprocess
import sys

import pytest

PARKED = 1  # node 0's second CPU (2 nodes x 2 CPUs): CPU 3, the last one, would not even be listed


def _hptool(action: str) -> None:
    done = subprocess.run(["xen-hptool", action, str(PARKED)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def parked():
    _hptool("cpu-offline")
    try:
        yield PARKED
    finally:
        _hptool("cpu-online")


def test_a_parked_cpu_is_on_no_node_and_in_no_mask(hv, parked):
    topo = hv.topology()
    assert topo.all_cpus == {0, 2, 3}, topo.all_cpus
    assert topo.node_cpus == {0: {0}, 1: {2, 3}}
    assert len(topo.cpu_node) == 4  # (Xen's ids are kept: the parked CPU is a gap, not renumbered)
    # dom0's vCPUs are not pinned (dom0_max_vcpus=4): their hard map, all of Xen's bits, read as online CPUs
    assert {v.hard for v in hv.vcpus(0)} == {frozenset({0, 2, 3})}
    assert all(v.cpu != parked for v in hv.vcpus(0) if v.state != "offline")


def _cli(*args: str) -> dict:
    env = dict(os.environ, PYTHONPATH="/opt/xapi-numa", XAPI_NUMA_LEDGER="/tmp/parked-ledger.db")
    done = subprocess.run([sys.executable, "-m", "xapi_numa.cli", "--backend", "xen", *args, "--json"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_cli_places_on_online_cpus_only(parked):
    report = _cli("topology")
    assert [n["cpus"] for n in report["nodes"]] == ["0", "2-3"], report["nodes"]
    assert [c["cpu"] for c in report["cpus"]] == [0, 2, 3]
    placed = _cli("place", "--vcpus", "1", "--memory", "64M", "--nodes", "0", "--mode", "strict", "--dry-run")
    assert placed["nodes"] == [0] and placed["hard"] == "0", placed


def test_an_online_cpu_again_is_on_its_node_again(hv):
    _hptool("cpu-offline")
    _hptool("cpu-online")
    assert hv.topology().node_cpus == {0: {0, 1}, 1: {2, 3}}
