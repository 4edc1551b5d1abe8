"""Page moves refuse HVM guests (a device model's map cache keeps guest frames
mapped; see ops/move_memory.py) before anything changes; PVH guests still move."""
import subprocess
import sys

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.errors import NotMovable
from xapi_numa.ops import move_memory as migrate
from xapi_numa.ports.hypervisor import DEVICE_MODEL_BLOCKER
from xapi_numa.state.ledger import Ledger

M = 1 << 20


@pytest.fixture
def sim(tmp_path):
    return SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 2 << 30), "credit2", 1,
                              dom0_vcpus=1, dom0_memory=128 << 20)


def _state(sim, domid):
    d = next(d for d in sim.domains() if d.domid == domid)
    return sim.node_pages(domid), sim.node_affinity(domid), [v.soft for v in sim.vcpus(domid)], d.paused


def test_hvm_guest_is_refused_and_nothing_changes(sim, tmp_path):
    domid = sim.create("win", 2, 256 * M, soft=frozenset({0, 1, 2, 3}), dtype="hvm")
    before = _state(sim, domid)
    assert DEVICE_MODEL_BLOCKER in sim.move_blockers(domid)
    for step in (lambda: migrate.check(sim, "win", 1), lambda: migrate.prepare(sim, "win", 1)):
        with pytest.raises(NotMovable) as info:
            step()
        assert info.value.code == "NUMA_NOT_MOVABLE"
        assert "map cache" in str(info.value) and "HVM" in str(info.value)
    assert _state(sim, domid) == before


def test_cli_refusal_is_one_line_and_changes_nothing(sim, tmp_path):
    domid = sim.create("win", 2, 256 * M, soft=frozenset({0, 1, 2, 3}), dtype="hvm")
    before = _state(sim, domid)
    out = subprocess.run([sys.executable, "-m", "xapi_numa.cli", "--backend", f"sim:{tmp_path}/h.json",
                          "migrate", "win", "--to", "node:1", "--ledger", str(tmp_path / "l.db")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and "cannot be moved" in out.stderr and "map cache" in out.stderr
    assert _state(sim, domid) == before


def test_pvh_guest_still_moves(sim, tmp_path):
    domid = sim.create("pvh", 2, 256 * M, soft=frozenset({0, 1, 2, 3}), dtype="pvh")
    assert DEVICE_MODEL_BLOCKER not in sim.move_blockers(domid)
    plan = migrate.prepare(sim, "pvh", 1)
    report = migrate.run(sim, Ledger(str(tmp_path / "l.db")).db, plan)
    assert report["state"] == "done" and sim.node_pages(domid)[1] == plan.pages
