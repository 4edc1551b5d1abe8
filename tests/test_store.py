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


def _damage(path, change):
    """Rewrite the state file at ``path`` with ``change(data)`` applied."""
    with open(path) as f:
        data = json.load(f)
    data = change(data)
    with open(path, "w") as f:
        json.dump(data, f)


def _set(keys, value):
    def change(data):
        target = data
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
        return data
    return change


def _drop(keys):
    def change(data):
        target = data
        for k in keys[:-1]:
            target = target[k]
        del target[keys[-1]]
        return data
    return change


@pytest.mark.parametrize("change,says", [
    (lambda data: [1, 2, 3], "holds a list, not a simulated host"),
    (lambda data: "host", "holds a string"),
    (lambda data: None, "holds null"),
    (_drop(["domains"]), "host has no 'domains'"),
    (_drop(["topology", "distances"]), "host.topology has no 'distances'"),
    (_set(["tick"], "5"), "host.tick must be an integer, not a string"),
    (_set(["seed"], True), "host.seed must be an integer, not true/false"),
    (_set(["free"], [1, "x"]), "host.free[1] must be an integer"),
    (_set(["free"], [1, True]), "host.free[1] must be an integer, not true/false"),
    (_set(["topology", "distances"], [[10, 20], [20, 1.5]]), "host.topology.distances[1][1] must be an integer"),
    (_set(["domains", 1, "vcpus", 0], "v"), "host.domains[1].vcpus[0] must be a list, not a string"),
    (_set(["domains"], {"0": {}}), "host.domains must be a list, not an object"),
    (_set(["domains", 0, "node_affinity"], "all"),
     "host.domains[0].node_affinity must be a bitmask of the host's 2 nodes, not a string"),
    (_set(["domains", 1, "vcpus", 0], [0, 1]), "host.domains[1].vcpus[0] has 2 fields"),
    (_set(["domains", 1, "node_pages"], [1]), "host.domains[1].node_pages has 1 entries for 2 nodes"),
    (_set(["free"], [1, 2, 3]), "host.free has 3 entries for 2 nodes"),
    (_set(["version"], 99), "unsupported state version 99"),
    (_set(["topology", "distances"], [[10, 5], [5, 10]]), "distances"),
    (_set(["domains", 1, "load"], "sometimes"), "unknown load profile"),
    (_set(["scheduler"], "rtds"), "host.scheduler must be one of credit, credit2, not 'rtds'"),
    (_set(["sched", "curr"], [[1, 7], None, None, None, None, None, None, None]),
     "host.sched.curr[0] must be [domid, vcpu] of a vCPU of this host, not [1, 7]"),
    # values of the right type that no Xen has: a negative mask was once read for ever
    (_set(["domains", 1, "vcpus", 0, 1], -1),
     "host.domains[1].vcpus[0][1] (hard) must be a bitmask of the host's 8 CPUs (1..255), not -1"),
    # (an empty soft affinity is Xen's to take: 0..255 here)
    (_set(["domains", 1, "vcpus", 0, 2], 256), "vcpus[0][2] (soft) must be a bitmask of the host's 8 CPUs (0..255)"),
    (_set(["domains", 1, "vcpus", 0, 3], 99), "host.domains[1].vcpus[0][3] (processor) must be a CPU (0..7), not 99"),
    (_set(["domains", 1, "node_affinity"], -1), "node_affinity must be a bitmask of the host's 2 nodes (1..3), not -1"),
    (_set(["domains", 1, "node_claims"], {"7": 5}), "node_claims['7'] must be pages (0 or more) claimed on a node"),
])
def test_state_of_the_wrong_shape_is_a_clear_error(tmp_path, change, says):
    path = str(tmp_path / "host.json")
    sim = _init(path)
    sim.create("g", 1, 1 << 20, load="idle")
    _damage(path, change)
    before = open(path).read()
    for call in (sim.domains, lambda: sim.run(0.01)):
        with pytest.raises(StateError) as err:
            call()
        assert path in err.value.message and says in err.value.message
    assert open(path).read() == before  # a refused file is left as it was


def test_state_that_is_not_a_file_or_not_text(tmp_path):
    path = tmp_path / "dir.json"
    path.mkdir()
    with pytest.raises(StateError) as err:
        SimHypervisor(str(path)).domains()
    assert "is a directory" in err.value.message and str(path) in err.value.message
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(StateError) as err:
        SimHypervisor(str(binary)).domains()
    assert "not JSON" in err.value.message
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(StateError) as err:
        SimHypervisor(str(deep)).domains()
    assert str(deep) in err.value.message


def test_state_written_before_the_performance_model_still_loads(tmp_path):
    path = str(tmp_path / "host.json")
    sim = _init(path)
    domid = sim.create("g", 1, 1 << 20, load="busy")
    sim.run(0.1)

    def strip(data):
        data.pop("node_run_ticks")
        data.pop("node_wait_ticks")
        for d in data["domains"]:
            for key in ("work_ticks", "remote_ticks", "wait_ticks"):
                d.pop(key)
            d["vcpus"] = [v[:15] for v in d["vcpus"]]
        return data
    _damage(path, strip)
    assert [v.cpu_time for v in sim.vcpus(domid)] == [0.0]
    sim.run(0.1)
    assert sim.vcpus(domid)[0].cpu_time == pytest.approx(0.1)


def test_a_host_file_is_written_as_it_is_reached_and_kept_as_it_was_made(tmp_path):
    """Through a symlink the same host (one file, one lock); its permissions kept; a
    read-only file refused, as a plain write would be; a folder it may not write to
    is a clear error, not a Python one."""
    path = str(tmp_path / "host.json")
    _init(path)
    os.chmod(path, 0o640)
    link = str(tmp_path / "link.json")
    os.symlink(path, link)
    SimHypervisor(link).create("g", 1, 1 << 20, load="idle")
    assert os.path.islink(link) and [d.name for d in SimHypervisor(path).domains()][-1] == "g"
    assert os.stat(path).st_mode & 0o777 == 0o640
    os.chmod(path, 0o444)
    before = open(path).read()
    with pytest.raises(StateError) as err:
        SimHypervisor(path).create("h", 1, 1 << 20, load="idle")
    assert "read-only" in err.value.message and open(path).read() == before
    os.chmod(path, 0o644)
    if os.geteuid() != 0:  # root writes anywhere: the folder case is for everyone else
        os.chmod(str(tmp_path), 0o555)
        try:
            with pytest.raises(StateError) as err:
                SimHypervisor(path).create("h", 1, 1 << 20, load="idle")
            assert "cannot write simulated host" in err.value.message
        finally:
            os.chmod(str(tmp_path), 0o755)


def test_a_new_host_starts_with_no_state_database(tmp_path):
    from xapi_numa.state.ledger import Ledger
    path = str(tmp_path / "host.json")
    _init(path)
    ledger = Ledger(path + ".ledger.db")
    ledger.reserve("old-vm", {1: 1 << 30}, 300, lambda: {0: 4 << 30, 1: 4 << 30})
    ledger.close()
    SimHypervisor.init(path, Topology.uniform(2, 4, 4 << 30), force=True)
    assert Ledger(path + ".ledger.db").reservations() == []


def test_a_change_the_next_read_would_refuse_is_never_written(tmp_path):
    """A change the model should never make (its example was an empty soft mask, which Xen
    takes and the file now holds): the file must not be left damaged by it: the write is
    refused and the file stays as it was."""
    path = str(tmp_path / "host.json")
    sim = _init(path)
    domid = sim.create("g", 1, 1 << 20, load="idle")
    before = open(path).read()
    with pytest.raises(StateError) as err:
        with sim.store.transaction() as host:
            host.domain(domid).vcpus[0].processor = 99  # (no such CPU)
    assert "refusing to write" in err.value.message and open(path).read() == before
    assert sim.domains()  # still readable


def test_the_file_is_checked_again_only_when_its_text_changed(tmp_path, monkeypatch):
    """The check took a third of `make demo`: a run of calls re-read the same text. Text another
    process changed (here, damaged) is checked again by the same store."""
    from xapi_numa.backends.sim import store as store_module
    path = str(tmp_path / "h.json")
    hv = SimHypervisor.init(path, Topology.uniform(2, 2, 1 << 30), "credit2", seed=1)
    checks = []
    real = store_module.check_shape
    monkeypatch.setattr(store_module, "check_shape", lambda data: (checks.append(1), real(data)))
    for _ in range(5):
        hv.domains()  # reads of the text the init wrote (by a store of its own)
    assert len(checks) == 1
    hv.create("g", 1, 64 << 20)  # a write is checked once
    hv.domains()
    assert len(checks) == 2
    data = json.load(open(path))
    data["tick"] = "soon"  # another process's (hand's) change
    with open(path, "w") as f:
        json.dump(data, f)
    with pytest.raises(StateError, match="host.tick must be an integer"):
        hv.domains()
