"""Review 5: the typed row layer bounds CPU lists read back from the state database by the
host's CPU count *now* (Topology.nr_cpus), and calls a row beyond it "damaged".  But those
rows are written by xapi-numad itself, from the host's CPUs *then*: a host that has fewer
CPUs since (the top CPU taken offline with xen-hptool, or the host rebooted with
hyper-threading off in the firmware, the state database kept in /var/lib/xapi-numa) holds
genuine rows past the bound.

Before (a787cb1) such a pin was read: the pin of a VM still running was restored, the pin
of a VM gone was forgotten (its row dropped), and a noted home move of a gone VM was
dropped.  Now the pin row is left out as "damaged" at every read, for ever: a running VM's
temporary hard pin is never undone, every stop says "temporary pins left ... the next start
restores them" (which it never does) and exits 1, and a noted home move fails every
rebalance of the daemon with a DamagedRow telling the admin to delete the row with sqlite3.
"""
import os
import sqlite3

import pytest

from xapi_numa import daemon
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.homing import PinRecord
from xapi_numa.core.topology import Topology
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMoves
from xapi_numa.state.pins import PinJournal

G = 1 << 30
UUID = "aaaaaaaa-0000-4000-8000-000000000001"
BEFORE = Topology.uniform(2, 8, 4 * G)  # 16 CPUs when the rows were written
NOW = Topology.uniform(2, 4, 4 * G)     # 8 CPUs now (hyper-threading off, or CPUs 8-15 offline)


@pytest.fixture
def paths(tmp_path, monkeypatch):
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    monkeypatch.setenv("XAPI_NUMA_RUN_DIR", str(tmp_path))
    return str(tmp_path / "h.json"), str(tmp_path / "state.db")


def _rows(db_path, table):
    raw = sqlite3.connect(db_path)
    try:
        return raw.execute("SELECT * FROM {}".format(table)).fetchall()
    finally:
        raw.close()


def _daemon_after(paths, capsys, written_before):
    """xapi-numad for 2 cycles on the host of 8 CPUs now, over a database ``written_before``
    (when the host had 16); its exit code and log."""
    sim_path, db_path = paths
    db = Database(db_path)
    written_before(db)
    db.close()
    SimHypervisor.init(sim_path, NOW, "credit", 1, dom0_vcpus=1, dom0_memory=128 << 20)
    code = daemon.main(["--backend", "sim:" + sim_path, "--cycles", "2", "--period", "0.05", "--no-xapi",
                        "--ledger", db_path])
    return code, capsys.readouterr().err


def test_a_pin_journalled_when_the_host_had_more_cpus_is_still_read(paths):
    """The pin journal's own row, its original hard affinity all of the host's 16 CPUs of
    then, read on the host of 8 CPUs now: it must still be read (its VM's pin undone), not
    left out as damaged."""
    _, db_path = paths
    db = Database(db_path)
    PinJournal(db).record(PinRecord(UUID, 0, 5, frozenset({0}), BEFORE.all_cpus, 1.0))
    journal = PinJournal(db)
    pins = journal.entries()
    assert [(p.uuid, p.vcpu) for p in pins] == [(UUID, 0)] and journal.left_out.count == 0, \
        (pins, journal.left_out.count)


def test_xapi_numad_forgets_the_pin_of_a_gone_vm_written_when_the_host_had_more_cpus(paths, capsys):
    """A daemon killed with a pin in force; the host comes back with 8 CPUs of 16 and the VM
    is gone.  a787cb1: "temporary pins restored", forgotten 1, the row dropped, exit 0.
    HEAD: the row is left out as damaged, stays for ever, every stop exits 1."""
    code, err = _daemon_after(paths, capsys, lambda db: PinJournal(db).record(
        PinRecord(UUID, 0, 5, frozenset({0}), BEFORE.all_cpus, 1.0)))
    assert code == 0 and "damaged row" not in err and "pins left at stop" not in err, err
    assert _rows(paths[1], "temp_pin") == []


def test_a_home_move_noted_when_the_host_had_more_cpus_does_not_fail_every_rebalance(paths, capsys):
    """A home move noted (with the vCPUs' soft affinity before it, all 16 CPUs of then) by a
    daemon killed before it was known whole; the host comes back with 8 CPUs and the VM is
    gone.  a787cb1: the note is dropped.  HEAD: every rebalance fails ("cycle failed",
    DamagedRow), for as long as the row stays."""
    code, err = _daemon_after(paths, capsys, lambda db: HomeMoves(db).intend(UUID, 5, 0, 1, None,
                                                                              {0: BEFORE.all_cpus}))
    assert code == 0 and "cycle failed" not in err and "home_move_intent" not in err, err
    assert _rows(paths[1], "home_move_intent") == []
