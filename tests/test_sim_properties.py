"""Properties of the simulated host under random admin actions and time."""
from hypothesis import given, settings
from hypothesis import strategies as st

from xapi_numa.errors import NumaError
from xapi_numa.backends.sim.model import Host
from xapi_numa.backends.sim.state_format import host_from_dict, host_to_dict
from xapi_numa.core.topology import Topology

actions = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(1, 6), st.integers(0, 15), st.integers(0, 15),
                  st.sampled_from(["busy", "idle", "bursty:100ms:50%", "steady:30%:mem=0.9",
                                   "bursty:300ms:40%:at=100ms", "diurnal:1s:0%:100%:at=200ms"])),
        st.tuples(st.just("pause"), st.integers(0, 6)),
        st.tuples(st.just("unpause"), st.integers(0, 6)),
        st.tuples(st.just("destroy"), st.integers(1, 6)),
        st.tuples(st.just("pin"), st.integers(0, 6), st.integers(0, 5), st.integers(0, 15),
                  st.integers(0, 15)),
        st.tuples(st.just("run"), st.integers(1, 30)),
    ),
    min_size=1, max_size=25,
)


@settings(max_examples=60)
@given(st.sampled_from(["credit", "credit2"]), st.integers(0, 2 ** 16), actions)
def test_invariants_hold_at_every_tick(scheduler, seed, script):
    """Never two vCPUs on one pCPU, never outside hard affinity, pages conserved."""
    topo = Topology.from_arrays([0, 0, 1, 1], [[10, 20], [20, 10]], [64 << 20, 64 << 20],
                                cpu_to_socket=[0, 0, 1, 1])
    h = Host(topo, scheduler, seed)
    h.create_domain("Domain-0", 1, 256, load="idle")
    created = 0
    gone = 0  # CPU ticks of destroyed domains (the nodes' counters keep them)
    for action in script:
        try:
            if action[0] == "create":
                _, vcpus, hard, soft, load = action
                h.create_domain(f"g{created}", vcpus, 1024, hard or None, soft or None, load)
                created += 1
            elif action[0] in ("pause", "unpause", "destroy"):
                before = sum(d.cpu_ticks for d in h.domains.values())
                getattr(h, action[0])(action[1])
                gone += before - sum(d.cpu_ticks for d in h.domains.values())
            elif action[0] == "pin":
                _, domid, vcpu, hard, soft = action
                h.set_vcpu_affinity(domid, vcpu, hard or None, soft or None)
            else:
                for _ in range(action[1]):
                    h.step()
                    h.check_invariants()
        except NumaError:
            pass
        h.check_invariants()
        check_counters(h, gone)


def check_counters(h, gone=0):
    """The performance model's counters agree with each other (see perf.py)."""
    vcpus = list(h.all_vcpus())
    run = sum(v.cpu_ticks for v in vcpus)
    assert sum(h.node_run_ticks) == run + gone
    assert run <= h.tick * len(h.cpu_node)
    for d in h.domains.values():
        ticks = d.cpu_ticks
        worst = max(cost for cost, _ in d.costs.table) if d.costs.table else 1.0
        assert ticks / worst - 1e-6 <= d.work_ticks <= ticks + 1e-6
        assert -1e-9 <= d.remote_ticks <= ticks + 1e-6


@settings(max_examples=30)
@given(st.sampled_from(["credit", "credit2"]), st.integers(0, 1000))
def test_work_conserving_when_vcpus_fit(scheduler, seed):
    """With no more busy vCPUs than pCPUs, every busy vCPU gets a pCPU."""
    h = Host(Topology.uniform(2, 4, 64 << 20), scheduler, seed)
    d = h.create_domain("g", 6, 1024, load="busy")
    h.run(0.5)
    assert all(v.running for v in d.vcpus)


@settings(max_examples=20)
@given(st.sampled_from(["credit", "credit2"]), st.integers(0, 1000))
def test_deterministic_for_a_seed_and_resumable(scheduler, seed):
    """Same seed, same history; saving and loading mid-run changes nothing."""
    def build():
        h = Host(Topology.uniform(2, 3, 64 << 20), scheduler, seed)
        h.create_domain("a", 4, 1024, soft=0b000111)
        h.create_domain("b", 4, 1024, soft=0b111000, load="bursty:200ms:50%")
        h.create_domain("c", 2, 1024, load="diurnal:2s:10%:90%:mem=0.8")
        return h

    one = build()
    one.run(1.0)
    two = build()
    two.run(0.5)
    two = host_from_dict(host_to_dict(two))
    two.run(0.5)
    assert host_to_dict(one) == host_to_dict(two)
