"""A vCPU reading the rebalancer cannot trust was turned into a sample by a clamp into 0..1.

``observe_demand`` took ``min(1, max(0, share))``: a NaN share (a NaN CPU time) read as idle,
and the NaN kept as the base made the vCPU idle every period after; an inf read as busy; a CPU
time gone back (the vCPU's counter started again) read as one idle period; a look at the same
time as the last (a zero interval) as busy or idle by the vCPU's state.  Such a reading is no
sample now: its unit's demand stays, the vCPU is re-based (a non-finite reading keeps the last
base), and xapi-numad says which vCPUs once while they stay."""
import attrs
import pytest

from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology
from xapi_numa.ops.rebalancing import Rebalancer
from xapi_numa.state.db import Database

NAN, INF = float("nan"), float("inf")
TOPO = Topology.uniform(2, 4, 8 << 30)


def look(t, cpu_time, domid=1, state="blocked"):
    """One busy 1-vCPU VM whose vCPU has run ``cpu_time`` seconds at ``t``."""
    dom = DomainInfo(domid, "busy", "u1", 1, 1 << 30, 1 << 30, False, "pvh")
    return HostSnapshot(TOPO, t, (dom,), {domid: (VcpuInfo(domid, 0, 0, state, TOPO.all_cpus, TOPO.all_cpus,
                                                           cpu_time),)})


def demand_after(tmp_path, looks):
    """The VM's smoothed demand after each look, and the rebalancer."""
    rb = Rebalancer(Database(str(tmp_path / "db")))
    out = []
    for snap in looks:
        rb.observe_demand(snap)
        out.append(rb.demand.get("u1"))
    return out, rb


BUSY = [look(t, t) for t in (2.0, 4.0, 6.0)]  # (its first look: blocked, taken as idle)


@pytest.mark.parametrize("broken", [NAN, INF, -1.0], ids=["nan", "inf", "negative"])
def test_a_cpu_time_no_finite_number_is_no_sample_and_keeps_the_last_base(tmp_path, broken):
    found, rb = demand_after(tmp_path, BUSY + [look(8.0, broken), look(10.0, 10.0)])
    assert found[2:] == [0.75, 0.75, 0.875], found  # (nan: 0.375 then 0.1875, the NaN kept as the base)
    assert rb.history[("u1", None)][-3:] == [0.75, 0.75, 0.875]
    assert rb.readings.skipped == {}  # the look after is sound


def test_the_broken_look_itself_says_why(tmp_path):
    _, rb = demand_after(tmp_path, BUSY + [look(8.0, NAN)])
    assert rb.readings.skipped == {("u1", 0): "busy (u1) vCPU 0: its CPU time read nan"}


def test_a_cpu_time_gone_back_is_no_sample_and_rebases(tmp_path):
    """The vCPU's counter started again at 8 s: 0.5 s run by then, 2 s more by 10 s."""
    found, rb = demand_after(tmp_path, BUSY + [look(8.0, 0.5), look(10.0, 2.5)])
    assert found[2:] == [0.75, 0.75, 0.875], found  # (before: 0.375, an idle period made up)


def test_a_look_at_the_same_time_or_earlier_is_no_sample(tmp_path):
    """Read again at 4 s (a zero interval), then at 3 s (time gone back), then at 5 s, 2 s run since 3 s."""
    found, rb = demand_after(tmp_path, BUSY[:2] + [look(4.0, 4.0), look(3.0, 4.0), look(5.0, 6.0)])
    assert found == [0.0, 0.5, 0.5, 0.5, 0.75], found  # (before: 0.25, then 0.125: its state read as idle)


def test_a_new_domain_of_the_vm_starts_afresh(tmp_path):
    """Started again as domain 2: its counter from 0, read at its first look as its state says."""
    found, rb = demand_after(tmp_path, BUSY + [look(8.0, 1.5, domid=2, state="running"), look(10.0, 3.5, domid=2)])
    assert found[2:] == [0.75, 0.875, 0.9375] and not rb.readings.skipped, found


def test_the_daemon_says_the_vcpus_whose_readings_it_skips_once_while_they_stay(tmp_path, monkeypatch, caplog):
    from xapi_numa.backends.sim.backend import SimHypervisor
    from xapi_numa.ops.runtime import Runtime
    sim = SimHypervisor.init(str(tmp_path / "h.json"), TOPO, "credit2", 1)
    sim.create("A", 1, 1 << 30, load="busy", dtype="pvh")
    real, broken = type(sim).vcpus, []

    def reading(self, domid):  # (a broken CPU time while ``broken`` says so)
        return [attrs.evolve(v, cpu_time=NAN) if broken else v for v in real(self, domid)]
    monkeypatch.setattr(type(sim), "vcpus", reading)
    rt = Runtime(sim, Database(str(tmp_path / "db")))
    for bad in (False, True, True, False, True):
        broken[:] = [1] if bad else []
        sim.run(2.0)
        rt.rebalance(rt.snapshot())
    said = [r.fields["vcpus"] for r in caplog.records if r.getMessage() == "demand readings skipped"]
    assert len(said) == 2 and all(len(s) == 1 and s[0].startswith("A (") and "CPU time read nan" in s[0]
                                  for s in said), said
