"""xapi-numad's stop when the state database cannot be written: a full disk, or another
process holding its write lock (SQLite's busy timeout is 60 s, systemd's stop 90 s)."""
import subprocess
import sys
import time

from xapi_numa import daemon
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.actions import PinTemporarily
from xapi_numa.core.topology import Topology
from xapi_numa.errors import StateError
from xapi_numa.ops.executor import Executor
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.pins import PinJournal

LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(120)
"""


def pinned_host(tmp_path, vms=4):
    """Temporary pins of ours on every vCPU of ``vms`` VMs, journalled."""
    topo = Topology.uniform(2, 4, 4 << 30)
    sim = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit", 1, dom0_vcpus=1, dom0_memory=128 << 20)
    db = Database(str(tmp_path / "l.db"))
    pins = []
    for i in range(vms):
        home = topo.cpus_of_nodes([i % 2])
        domid = sim.create("vm{}".format(i), 2, 128 << 20, soft=home, load="idle")
        uuid = next(d.uuid for d in sim.domains() if d.domid == domid)
        pins += [PinTemporarily(domid, uuid, v, home, topo.all_cpus, "displaced") for v in range(2)]
    Executor(sim, db).apply(pins)
    assert len(PinJournal(db).entries()) == 2 * vms
    return sim, db, topo


def all_unpinned(sim, topo):
    return all(v.hard == topo.all_cpus for d in sim.domains() if d.domid for v in sim.vcpus(d.domid))


def test_a_full_disk_at_stop_still_restores_every_pin(tmp_path, monkeypatch):
    """The journal's first failed drop ended the stop's restores: one vCPU was put back,
    every other stayed hard-pinned to one node, with the daemon gone."""
    sim, db, topo = pinned_host(tmp_path)

    def full(self, uuid, vcpu):
        raise StateError("state database {}: cannot write: database or disk is full".format(self.db.path))

    monkeypatch.setattr(PinJournal, "drop", full)
    assert daemon.restore_at_stop(Runtime(sim, db, Settings())) is True
    assert all_unpinned(sim, topo)
    monkeypatch.undo()
    # the entries left behind no longer match the affinity: the next start forgets them, touching nothing
    Runtime(sim, db, Settings()).restore_all_pins("start")
    assert PinJournal(db).entries() == [] and all_unpinned(sim, topo)


def test_a_stop_with_the_database_locked_restores_every_pin_in_time(tmp_path):
    """Another process holding the write lock cost the stop 60 s (SQLite's busy timeout)
    per journal write: systemd's 90 s ran out with the pins in place."""
    sim, db, topo = pinned_host(tmp_path)
    rt = Runtime(sim, db, Settings())
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, db.path], stdout=subprocess.PIPE,
                              universal_newlines=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        started = time.monotonic()
        restored = daemon.restore_at_stop(rt, daemon.STOP_DB_WAIT_S)
        took = time.monotonic() - started
    finally:
        locker.kill()
        locker.wait()
    assert all_unpinned(sim, topo) and restored is True
    assert took < 2 * daemon.STOP_DB_WAIT_S + 5


def test_a_stop_asked_mid_cycle_writes_nothing_more(tmp_path):
    """SIGTERM during a cycle: the rest of it (its writes, the rebalancer, every upkeep step,
    each up to 60 s on a locked database) was still run before the stop: 3 minutes measured."""
    sim, db, topo = pinned_host(tmp_path)
    stop = {"now": False}
    rt = Runtime(sim, db, Settings(), stopping=lambda: stop["now"])
    rt.cycle()
    writes = []
    real = db.write

    def counted():
        writes.append(1)
        return real()

    db.write = counted
    stop["now"] = True
    rt.cycle()
    assert writes == []


def test_a_stop_asked_mid_cycle_still_unpauses_a_guest_a_dead_mover_left_paused(tmp_path):
    """The one upkeep step a stop does not skip: nothing else would unpause the guest
    before the daemon's next start (an RPM upgrade's stop, say)."""
    from xapi_numa.ops import move_memory as migrate
    from xapi_numa.state.moves import MoveJournal

    topo = Topology.uniform(2, 4, 4 << 30)
    sim = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit", 1, dom0_vcpus=1, dom0_memory=128 << 20)
    db = Database(str(tmp_path / "l.db"))
    sim.create("vm", 2, 256 << 20, soft=topo.cpus_of_nodes([0]), load="idle", dtype="pvh")
    plan = migrate.prepare(sim, "vm", 1)
    assert sim.move_pages(plan.domain.domid, plan.batches[1], 1, fault="die-after-release").stage == "died"
    MoveJournal(db).begin(plan.domain, 1, {"vm": "vm"}).release()  # its row says running; its lock is free
    assert next(d for d in sim.domains() if d.name == "vm").paused
    stop = {"now": True}
    report = Runtime(sim, db, Settings(), stopping=lambda: stop["now"]).cycle()
    assert report.get("stopping") and not next(d for d in sim.domains() if d.name == "vm").paused
