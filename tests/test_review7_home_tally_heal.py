"""Review 7 (low): a damaged vCPU-home tally is never written again while the homes stay
as they are, so every VM start from then on warns and reads every domain's vCPUs from the
hypervisor (what the tally is for: a host of a thousand domains), until a home changes or
xapi-numad restarts.

f4833a5 makes ``HomeTally.count`` return None with a warning on a DamagedRow, saying (its
docstring) "the daemon's next change of the counts writes them all again".  But
``HomeTally.publish`` (state/home_tally.py), which xapi-numad calls every cycle
(ops/runtime.py "publish-homes"), rewrites the rows, ``summed`` and ``totals`` only when the
homes differ from what this process wrote last; otherwise it only updates ``at``.  A
damaged ``home_tally.vcpus`` or ``home_tally_time.totals`` therefore stays for good on a
steady host: the damage is never seen by the writer, only warned about by every start.
"""
import logging
import os
import sqlite3

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.live_domains import LiveDomains
from xapi_numa.core.topology import Topology
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.home_tally import HomeTally

G = 1 << 30
UUID = "aaaaaaaa-0000-4000-8000-000000000001"
OTHER = "bbbbbbbb-0000-4000-8000-000000000002"  # a start that lists other domains than summed: reads the rows


@pytest.mark.parametrize("table,column,value,listed", [("home_tally", "vcpus", "garbage", OTHER),
                                                        ("home_tally_time", "totals", "not json", UUID)])
def test_the_daemons_next_cycle_mends_a_damaged_tally(tmp_path, monkeypatch, caplog, table, column, value, listed):
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    monkeypatch.setenv("XAPI_NUMA_RUN_DIR", str(tmp_path))
    path = str(tmp_path / "h.json")
    topo = Topology.uniform(2, 4, 4 * G)
    sim = SimHypervisor.init(path, topo, "credit", 1, dom0_vcpus=1, dom0_memory=128 << 20)
    domid = sim.create("A", 2, 256 << 20, soft=topo.parse_cpus("node:0"), uuid=UUID)
    db = Database(path + ".ledger.db")
    daemon = Runtime(sim, db, Settings())
    daemon.cycle()  # publishes the homes
    live = LiveDomains.of({domid: listed})
    assert HomeTally(Database(path + ".ledger.db")).count(live, 2) is not None
    raw = sqlite3.connect(path + ".ledger.db")
    raw.execute("UPDATE {} SET {} = ?".format(table, column), (value,))
    raw.commit()
    raw.close()
    daemon.cycle()  # the same homes: published again
    with caplog.at_level(logging.WARNING):
        counted = HomeTally(Database(path + ".ledger.db")).count(live, 2)
    assert counted is not None, " ".join(r.getMessage() for r in caplog.records)
