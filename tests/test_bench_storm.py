"""The boot storm's xenopsd arm: build_pre's NUMA step as xenopsd takes it (no storm run here)."""
import multiprocessing
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import bench_storm  # noqa: E402

from xapi_numa.backends.sim.backend import SimHypervisor  # noqa: E402
from xapi_numa.core.topology import Topology  # noqa: E402
from xapi_numa.errors import NoCapacity  # noqa: E402

M = 1 << 20


@pytest.fixture
def sim(tmp_path):
    # dma_bits=24: a DMA zone (16 MiB) smaller than the guest, so that node 0 can be left without room for it
    # (Xen's default here, a quarter of node 0, would keep 256 MiB of it free whatever else is built)
    return SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 1 << 30), "credit2", 1,
                              dom0_vcpus=1, dom0_memory=64 * M, dma_bits=24)


def test_single_node_plans_claim_on_their_node_and_usage_spreads_the_next_start(sim):
    search, mutex = bench_storm.xenopsd_search(sim.topology()), multiprocessing.Lock()
    first = sim.create_shell("a", 2, bench_storm.VM_MEMORY)
    second = sim.create_shell("b", 2, bench_storm.VM_MEMORY)
    a = bench_storm.xenopsd_decide(sim, search, first, mutex)
    b = bench_storm.xenopsd_decide(sim, search, second, mutex)
    assert {a, b} == {0, 1}  # equal distances: the node picked least so far
    assert [m.claimed for m in sim.node_memory()] == [bench_storm.PAGES << 12] * 2
    assert all(v.soft == sim.topology().cpus_of_nodes([a]) for v in sim.vcpus(first))


def test_no_single_node_left_means_a_host_wide_claim_and_its_refusal_fails_the_start(sim):
    search, mutex = bench_storm.xenopsd_search(sim.topology()), multiprocessing.Lock()
    # leave each node a little less than the guest: no single node fits, the two together do
    for node in (0, 1):
        free = sim.node_memory()[node].free
        sim.create(f"fill{node}", 1, free - bench_storm.VM_MEMORY + 8 * M, soft=sim.topology().cpus_of_nodes([node]))
    shell = sim.create_shell("c", 2, bench_storm.VM_MEMORY)
    assert bench_storm.xenopsd_decide(sim, search, shell, mutex) is None
    assert [d.claimed for d in sim.domains() if d.domid == shell] == [bench_storm.PAGES << 12]
    assert all(m.claimed == 0 for m in sim.node_memory())  # host-wide: on no node
    other = sim.create_shell("d", 2, bench_storm.VM_MEMORY)
    with pytest.raises(NoCapacity):
        bench_storm.xenopsd_decide(sim, search, other, mutex)
