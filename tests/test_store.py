"""The state file: concurrent writers serialised, failed operations change nothing."""
import json
import multiprocessing
import os

import pytest

from xapi_numa.errors import HypervisorError, NoCapacity, StateError
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology


def _init(path, **kw):
    return SimHypervisor.init(path, Topology.uniform(2, 4, 1 << 30), "credit", 7, dom0_vcpus=1,
                              dom0_memory=64 << 20, **kw)


def _worker(path, wid, count):
    sim = SimHypervisor(path)
    for i in range(count):
        domid = sim.create(f"w{wid}-{i}", 1, 1 << 20, load="idle", paused=True)
        sim.claim(domid, 0)  # a second read-modify-write per round
        sim.run(0.01)


def test_concurrent_writers_lose_no_update(tmp_path):
    path = str(tmp_path / "host.json")
    _init(path)
    procs = [multiprocessing.Process(target=_worker, args=(path, w, 10)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    sim = SimHypervisor(path)
    names = {d.name for d in sim.domains()}
    assert names == {"Domain-0"} | {f"w{w}-{i}" for w in range(8) for i in range(10)}
    assert len({d.domid for d in sim.domains()}) == 81
    assert sim.now_ms() == 80 * 10  # every run() of every worker counted


def test_failed_operation_changes_nothing(tmp_path):
    path = str(tmp_path / "host.json")
    sim = _init(path)
    before = open(path).read()
    with pytest.raises(NoCapacity):
        sim.create("big", 2, 64 << 30)
    with pytest.raises(HypervisorError):
        sim.unpause(0)
    assert open(path).read() == before


def test_missing_and_damaged_state(tmp_path):
    path = str(tmp_path / "nope.json")
    with pytest.raises(StateError) as err:
        SimHypervisor(path).domains()
    assert "sim init" in err.value.message
    with open(path, "w") as f:
        f.write("{not json")
    with pytest.raises(StateError) as err:
        SimHypervisor(path).domains()
    assert "cannot read" in err.value.message


def test_init_refuses_to_overwrite(tmp_path):
    path = str(tmp_path / "host.json")
    _init(path)
    with pytest.raises(StateError) as err:
        _init(path)
    assert "--force" in err.value.message
    _init(path, force=True)
    assert json.load(open(path))["version"] == 1
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".sim-")]  # no temp files left
