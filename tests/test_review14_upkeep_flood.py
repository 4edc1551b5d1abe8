"""xapi-numad's upkeep steps: a step failing every other cycle was logged every cycle.

Each step's failure was said once "until it works again", and "works again" once: a
step that fails and works by turns (reconciling against a state database another
process keeps busy, say) logged both every second, for as long as it lasted."""
import logging

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.errors import StateError
from xapi_numa.ops.runtime import LOG, Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.ledger import Ledger


def test_a_step_failing_every_other_cycle_is_not_logged_every_cycle(tmp_path, monkeypatch, caplog):
    topo = Topology.uniform(2, 4, 4 << 30)
    sim = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit", 1, dom0_vcpus=1, dom0_memory=128 << 20)
    sim.create("vm", 2, 128 << 20, soft=topo.cpus_of_nodes([0]), load="idle")
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings())
    calls = []
    real = Ledger.expire

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) % 2:
            raise StateError("state database l.db: cannot write: database is locked")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Ledger, "expire", flaky)
    caplog.set_level(logging.INFO, logger=LOG.name)
    for _ in range(20):
        rt.cycle()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("upkeep step")]
    assert said == ["upkeep step failed", "upkeep step works again"]
    # still failing for over a minute after "works again": said again then (not silent for good)
    monkeypatch.setattr(Ledger, "expire", lambda self, *a, **k: (_ for _ in ()).throw(StateError("locked")))
    rt.cycle()
    clock = rt.upkeep_log.clock
    monkeypatch.setattr(rt.upkeep_log, "clock", lambda: clock() + 61)
    rt.cycle()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("upkeep step")]
    assert said == ["upkeep step failed", "upkeep step works again", "upkeep step failed"]
