"""The simulator's performance model, load profiles and rebalancing scenarios."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xapi_numa.backends.sim import scenarios
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.loads import LOAD_SYNTAX, WINDOW_TICKS, LoadProfile
from xapi_numa.backends.sim.model import Host
from xapi_numa.backends.sim.perf import node_costs
from xapi_numa.core.topology import Topology
from xapi_numa.errors import InvalidArgument

MiB = 1 << 20


def two_node_host(distance=20, scheduler="credit2"):
    """2 nodes x 2 pCPUs; dom0 idle with one page."""
    h = Host(Topology.uniform(2, 2, 1 << 30, [[10, distance], [distance, 10]]), scheduler, seed=3)
    h.create_domain("Domain-0", 1, 1, load="idle")
    return h


def guest(h, name, run_on, memory_on, load, pages=25600, vcpus=1):
    """A guest hard-pinned to node ``run_on`` with all its memory on node ``memory_on``."""
    return h.create_domain(name, vcpus, pages, hard=h.node_mask[run_on], load=load,
                           node_affinity=1 << memory_on)


# --- the model ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mem,memory_on,cost", [
    ("0", 1, 1.0),      # CPU-bound: where memory is does not matter
    ("1", 0, 1.0),      # memory-bound, all local
    ("1", 1, 2.0),      # memory-bound, all at distance 20: twice the time per unit of work
    ("0.5", 1, 1.5),
])
def test_work_is_cpu_time_over_the_documented_cost(mem, memory_on, cost):
    h = two_node_host()
    d = guest(h, "g", run_on=0, memory_on=memory_on, load=f"busy:mem={mem}")
    h.run(1.0)
    v = d.vcpus[0]
    assert v.cpu_ticks == 100  # alone on its node: ran every tick
    assert d.work_ticks == pytest.approx(100 / cost)
    assert d.remote_ticks == pytest.approx(100.0 if memory_on == 1 else 0.0)


def test_cost_is_weighted_by_the_share_of_memory_on_each_node():
    distances = [[10, 16, 22], [16, 10, 16], [22, 16, 10]]
    pages = [500, 300, 200]
    costs = node_costs(distances, pages, 0.8)
    # on node 0: 0.8 * (0.5*0 + 0.3*0.6 + 0.2*1.2); on node 2: 0.8 * (0.5*1.2 + 0.3*0.6 + 0)
    assert costs[0] == pytest.approx((1 + 0.8 * (0.3 * 0.6 + 0.2 * 1.2), 0.5))
    assert costs[2] == pytest.approx((1 + 0.8 * (0.5 * 1.2 + 0.3 * 0.6), 0.8))
    assert node_costs(distances, [0, 0, 0], 1.0) == [(1.0, 0.0)] * 3


def test_farther_memory_means_less_work():
    done = []
    for distance in (11, 16, 22, 32):
        h = two_node_host(distance)
        d = guest(h, "g", run_on=0, memory_on=1, load="busy:mem=0.7")
        h.run(0.5)
        done.append(d.work_ticks)
    assert done == sorted(done, reverse=True) and done[0] == pytest.approx(50 / (1 + 0.7 * 0.1))
    assert done[-1] == pytest.approx(50 / (1 + 0.7 * 2.2))


def test_sharing_a_pcpu_halves_cpu_time_and_work():
    h = two_node_host()
    a = guest(h, "a", 0, 0, "busy:mem=0")
    b = guest(h, "b", 0, 0, "busy:mem=0")
    c = guest(h, "c", 0, 0, "busy:mem=0")
    h.run(3.0)
    # 3 busy vCPUs on node 0's 2 pCPUs: 600 ticks of pCPU shared out
    ticks = [d.vcpus[0].cpu_ticks for d in (a, b, c)]
    assert sum(ticks) == 600 and all(150 <= t <= 250 for t in ticks)
    assert [d.work_ticks for d in (a, b, c)] == pytest.approx(ticks)
    assert h.node_run_ticks[0] == 600 and h.node_wait_ticks[0] == 300


def test_cost_follows_a_page_move(tmp_path):
    """Memory that moves changes the cost from the next tick on."""
    h = two_node_host()
    d = guest(h, "g", run_on=0, memory_on=1, load="busy:mem=1")
    h.run(1.0)
    remote_work = d.work_ticks
    n = d.node_pages[1]
    h.free[1] += n
    h.free[0] -= n
    d.node_pages = [n, 0]
    h.run(1.0)
    assert remote_work == pytest.approx(50.0) and d.work_ticks - remote_work == pytest.approx(100.0)


def test_counters_through_the_port(tmp_path):
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 1 << 30), "credit", 1,
                             dom0_vcpus=1, dom0_memory=16 * MiB)
    domid = sim.create("g", 2, 64 * MiB, soft=frozenset({0, 1}), load="busy:mem=0.4")
    sim.run(2.0)
    vcpus = sim.vcpus(domid)
    assert [v.cpu_time for v in vcpus] == pytest.approx([2.0, 2.0])
    stats = sim.locality_stats(domid)
    assert stats["cpu_time"] == pytest.approx(4.0)
    assert stats["work"] == pytest.approx(sim.work_done(domid))
    assert 0.0 <= stats["remote_share"] <= 1.0 and stats["mem_bound"] == pytest.approx(0.4)
    counters = sim.perf_counters()
    assert sum(counters["node_run"]) == pytest.approx(sum(s["cpu_time"] for s in counters["domains"].values()))
    view = sim.placement_view()
    assert [v.cpu_time for v in view[domid][0]] == [v.cpu_time for v in vcpus]


def test_set_load_changes_demand(tmp_path):
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 1 << 30), "credit2", 1,
                             dom0_vcpus=1, dom0_memory=16 * MiB)
    domid = sim.create("g", 2, 64 * MiB, load="idle")
    sim.run(1.0)
    assert sim.locality_stats(domid)["cpu_time"] == 0
    sim.set_load(domid, "busy")
    sim.run(1.0)
    assert sim.locality_stats(domid)["cpu_time"] == pytest.approx(2.0)
    sim.set_load(domid, "idle")
    assert {v.state for v in sim.vcpus(domid)} == {"blocked"}
    with pytest.raises(InvalidArgument):
        sim.set_load(domid, "sometimes")


def test_set_load_can_put_a_vm_in_phase():
    h = Host(Topology.uniform(1, 8, 1 << 30), "credit", seed=1)
    d = h.create_domain("g", 6, 256, load="bursty:1s:50%")
    h.set_load(d.domid, "bursty:1s:50%:at=0s")
    for _ in range(8):
        h.run(0.125)
        assert len({v.running for v in d.vcpus}) == 1  # all on or all off together


# --- load profiles -----------------------------------------------------------------------------
@pytest.mark.parametrize("text,canonical", [
    ("idle", "idle"),
    ("busy", "busy"),
    ("bursty:2s:30%", "bursty:2000ms:30%"),
    ("bursty:500ms:0.5", "bursty:500ms:50%"),
    ("steady:60%", "steady:60%"),
    ("busy:mem=0.6", "busy:mem=0.6"),
    ("busy:mem=50%", "busy"),  # the default
    ("bursty:2m:25%:at=30s:mem=0.9", "bursty:120000ms:25%:at=30000ms:mem=0.9"),
    ("diurnal:10m:10%:90%", "diurnal:600000ms:10%:90%"),
    ("diurnal:1h:0.2:0.8:at=15m:mem=0", "diurnal:3600000ms:20%:80%:at=900000ms:mem=0"),
])
def test_profiles_parse_and_print_back(text, canonical):
    p = LoadProfile.parse(text)
    assert str(p) == canonical
    assert LoadProfile.parse(str(p)) == p


@pytest.mark.parametrize("text,says", [
    ("sometimes", "unknown load profile"),
    ("bursty:2s", "has 1 argument"),
    ("busy:2s", "has 1 argument"),
    ("bursty:10ms:50%", "shorter than 20ms"),
    ("bursty:2s:130%", "outside 0..1"),
    ("steady:-0.1", "not a number"),
    ("bursty:２s:30%", "not a duration"),        # fullwidth digit
    ("steady:٣0%", "not a number"),              # Arabic-Indic digit
    ("bursty:2s:³0%", "not a number"),           # superscript
    ("steady:" + "9" * 400, "not a number"),      # no OverflowError
    ("bursty:" + "9" * 12 + "h:30%", "longer than a week"),
    ("diurnal:10m:90%:10%", "above high"),
    ("diurnal:100ms:10%:90%", "shorter than 200ms"),
    ("busy:mem=1.5", "outside 0..1"),
    ("busy:mem=lots", "not a number"),
    ("busy:at=3s", "at= applies to bursty and diurnal"),
    ("busy:cache=1", "unknown option"),
    ("busy:mem=0.1:mem=0.2", "given twice"),
    ("bursty:mem=0.2:2s:30%", "options go last"),
    ("steady:nan", "not a number"),
])
def test_bad_profiles_are_refused_naming_field_and_allowed(text, says):
    with pytest.raises(InvalidArgument) as err:
        LoadProfile.parse(text)
    assert err.value.field == "load"
    assert says in err.value.message
    assert err.value.allowed


profile_texts = st.one_of(
    st.sampled_from(["idle", "busy"]),
    st.builds("steady:{}%".format, st.integers(0, 100)),
    st.builds("bursty:{}ms:{}%:at={}ms".format, st.integers(20, 10 ** 6), st.integers(0, 100), st.integers(0, 10 ** 7)),
    st.builds(lambda p, lo, hi: f"diurnal:{p}s:{min(lo, hi)}%:{max(lo, hi)}%", st.integers(1, 86400),
              st.integers(0, 100), st.integers(0, 100)),
).flatmap(lambda t: st.builds(lambda m: t + (f":mem={m / 1000}" if m >= 0 else ""), st.integers(-1, 1000)))


@given(profile_texts)
def test_any_valid_profile_prints_back_to_itself(text):
    p = LoadProfile.parse(text)
    assert LoadProfile.parse(str(p)) == p
    assert 0.0 <= p.demand(12345) <= 1.0 and 0.0 <= p.mem_bound <= 1.0


def test_load_syntax_is_safe_as_a_help_string():
    assert "%" not in LOAD_SYNTAX  # argparse formats help strings with %


def test_steady_runs_its_share_of_every_window():
    p = LoadProfile.parse("steady:30%")
    for phase in range(WINDOW_TICKS):
        assert sum(p.active(t, phase) for t in range(100)) == 30


def test_bursty_at_puts_the_whole_vm_in_phase():
    h = Host(Topology.uniform(1, 8, 1 << 30), "credit", seed=1)
    d = h.create_domain("g", 4, 256, load="bursty:1s:50%:at=200ms")
    assert len({v.phase for v in d.vcpus}) == 1
    h.run(0.25)   # on from 200 ms
    assert all(v.running for v in d.vcpus)
    h.run(0.5)    # off from 700 ms
    assert not any(v.running for v in d.vcpus)
    # without at=, each vCPU has its own phase
    e = h.create_domain("e", 8, 256, load="bursty:1s:50%")
    assert len({v.phase for v in e.vcpus}) > 1


def test_diurnal_waves_between_low_and_high():
    p = LoadProfile.parse("diurnal:10s:10%:90%:at=2s")
    assert p.demand(200) == pytest.approx(0.9)           # peak at 2 s
    assert p.demand(700) == pytest.approx(0.1)           # trough half a period later
    mean = sum(p.active(t, 3) for t in range(1000)) / 1000
    assert mean == pytest.approx(0.5, abs=0.03)


def test_cpu_time_follows_the_profile():
    h = Host(Topology.uniform(2, 4, 1 << 30), "credit2", seed=2)
    a = h.create_domain("a", 2, 256, load="steady:40%")
    b = h.create_domain("b", 2, 256, load="diurnal:4s:0%:100%")
    h.run(8.0)
    assert a.cpu_ticks == pytest.approx(0.4 * 2 * 800, rel=0.02)
    assert b.cpu_ticks == pytest.approx(0.5 * 2 * 800, rel=0.05)


# --- scenarios ---------------------------------------------------------------------------------
def test_scenarios_are_deterministic_for_a_seed(tmp_path):
    def once(path, seed):
        sim = scenarios.build("bursty", str(path), seed=seed)
        m = scenarios.run(sim, 20.0, 2.0)
        return m.total_work, m.remote_share, [s.demand for s in m.samples], [g.work for g in m.guests]

    first = once(tmp_path / "a.json", 7)
    assert once(tmp_path / "b.json", 7) == first
    assert once(tmp_path / "c.json", 8) != first


def test_asymmetric_overloads_node_0(tmp_path):
    sim = scenarios.build("asymmetric", str(tmp_path / "h.json"), seed=1, scheduler="credit")
    m = scenarios.run(sim, 10.0, 2.0)
    assert m.capacity == (4, 4, 4, 4)
    for s in m.samples:
        assert s.home_demand == pytest.approx((8.0, 2.0, 0.0, 0.0), abs=0.05)
        assert sum(s.demand) == pytest.approx(10.0, abs=0.05)
    # node 0's overflow runs elsewhere, far from its memory, and gets less done
    assert m.remote_share > 0.2
    assert m.total_work < sum(g.cpu_time for g in m.guests)
    assert m.total_work == pytest.approx(sum(g.work for g in m.guests))
    assert m.home_remote_share == 0.0  # memory stayed home: only the vCPUs strayed


def test_steady_is_balanced(tmp_path):
    sim = scenarios.build("steady", str(tmp_path / "h.json"), seed=1)
    m = scenarios.run(sim, 10.0, 2.0)
    for s in m.samples:
        assert s.demand == pytest.approx((2.4,) * 4, abs=0.05)
    assert all(v == 1.0 for s in m.samples for v in s.local_share.values())


def test_diurnal_demand_moves_between_node_pairs(tmp_path):
    sim = scenarios.build("diurnal", str(tmp_path / "h.json"), seed=1)
    m = scenarios.run(sim, 300.0, 10.0)
    first, last = m.samples[0].home_demand, m.samples[-1].home_demand
    assert first[0] > 5 and first[2] < 1.5       # nodes 0-1 at their peak, 2-3 low
    assert last[0] < 1.5 and last[2] > 5         # half a period later, the other way round


def test_on_period_is_called_every_period(tmp_path):
    sim = scenarios.build("steady", str(tmp_path / "h.json"), seed=1)
    seen = []
    m = scenarios.run(sim, 6.0, 2.0, on_period=lambda s, t: seen.append((t, s.clock())))
    assert seen == [(2.0, 2.0), (4.0, 4.0), (6.0, 6.0)]
    assert len(m.samples) == 3


def test_remote_share_counts_what_a_period_callback_did(tmp_path):
    """A callback that moves a guest's home away from its memory shows in both shares."""
    sim = scenarios.build("steady", str(tmp_path / "h.json"), seed=1)
    topo = sim.topology()
    victim = sim.find("steady-0a")

    def move_home(s, t):
        if t == 2.0:
            for v in range(2):
                s.set_vcpu_affinity(victim, v, hard=topo.cpus_of_nodes([3]), soft=topo.cpus_of_nodes([3]))

    m = scenarios.run(sim, 4.0, 2.0, on_period=move_home)
    g = {x.name: x for x in m.guests}["steady-0a"]
    assert g.home_remote_share == pytest.approx(0.5)   # half the run homed away from its memory
    assert g.remote_share == pytest.approx(0.5, abs=0.05)
    assert g.work < g.cpu_time


def test_bad_scenario_arguments(tmp_path):
    with pytest.raises(InvalidArgument) as err:
        scenarios.build("chaotic", str(tmp_path / "h.json"))
    assert err.value.field == "scenario" and "asymmetric" in err.value.allowed
    sim = scenarios.build("steady", str(tmp_path / "h.json"))
    for seconds, period in ((0, 1), (10, 0), (10, 20), (10 ** 9, 1)):
        with pytest.raises(InvalidArgument):
            scenarios.run(sim, seconds, period)
