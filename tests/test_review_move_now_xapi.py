"""Review: the daemon's in-process mover (``move_now``, a simulated host's moves) never
asked xapi between batches.  The background mover (``xapi-numa move-memory``, started by
``start_for`` on Xen) asks before each batch whether xapi has started a live migration or
a suspend of the VM since the move began (``still_movable``) and stops there; move_now ran
every batch whatever xapi was doing, so simulator runs never took that path."""
import json

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.actions import MoveMemory
from xapi_numa.core.topology import Topology
from xapi_numa.errors import MoveStopped
from xapi_numa.ops import move_memory
from xapi_numa.ops.executor import REFUSED
from xapi_numa.ops.runtime import Runtime
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import STOPPED, MoveJournal
from test_review16_migration_during_move import Session

MiB = 1 << 20


@pytest.fixture
def host(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "host.json"), Topology.uniform(2, 2, 1 << 30), "credit2", 3,
                            dom0_vcpus=2, dom0_memory=64 * MiB)
    domid = hv.create("g", 2, 64 * MiB, hard=frozenset({0, 1}), dtype="pvh", load="busy")
    uuid = next(d.uuid for d in hv.domains() if d.domid == domid)
    return hv, Ledger(str(tmp_path / "l.db")).db, MoveMemory(domid, uuid, 1, reason="test")


def test_a_move_made_in_process_stops_when_xapi_migrates_the_vm(host):
    hv, db, action = host
    session = Session(busy_from=1)
    with pytest.raises(MoveStopped) as stopped:
        move_memory.move_now(hv, db, action, xapi_use=lambda fn: fn(session))
    report = json.loads(stopped.value.params[2])
    assert report["state"] == STOPPED and report["batches"] == 0
    assert "stopped before batch 1 of" in report["error"] and "xapi is running migrate_send on it" in report["error"]
    assert session.calls == 1 and hv.node_pages(action.domid)[1] == 0
    assert MoveJournal(db).status(action.uuid).state == STOPPED and hv.batch_records() == []
    assert not hv.domain(action.domid).paused


def test_the_daemons_executor_on_a_simulated_host_asks_xapi(host):
    """The daemon hands its xapi link's ``use`` to the runtime (xapi-numad: its reader's)."""
    hv, db, action = host
    session = Session(busy_from=1, operation="suspend")
    outcome, = Runtime(hv, db, xapi_use=lambda fn: fn(session)).executor.apply([action])
    assert outcome.status == REFUSED and "xapi is running suspend on it" in outcome.detail
    assert hv.node_pages(action.domid)[1] == 0


def test_without_xapi_the_batches_go_on(host):
    hv, db, action = host
    outcome, = Runtime(hv, db).executor.apply([action])
    assert outcome.status != REFUSED and hv.node_pages(action.domid)[1] > 0



def test_xapi_numad_gives_its_readers_link_to_the_in_process_mover(request, tmp_path, monkeypatch, host):
    """As the daemon builds its runtime (daemon.build_runtime): xapi through its reader."""
    from xapi_numa import daemon

    hv, _, action = host
    session = Session(busy_from=1, operation="pool_migrate")
    session.get_all_records = lambda: {}
    monkeypatch.setenv("XAPI_NUMA_INVENTORY", str(tmp_path / "no-inventory"))  # no host uuid: no guest mask
    monkeypatch.setattr(daemon, "local_login", lambda: session)
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", "http://127.0.0.1:9")  # a xapi named: one is read
    spec = "sim:" + hv.path
    rt, reader = daemon.build_runtime(daemon.parse_args(["--backend", spec, "--ledger", str(tmp_path / "d.db")]),
                                      spec, hv)
    request.addfinalizer(reader.close)
    outcome, = rt.executor.apply([action])
    assert outcome.status == REFUSED and "xapi is running pool_migrate on it" in outcome.detail
