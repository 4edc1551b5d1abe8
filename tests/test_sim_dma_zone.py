"""The simulated host has Xen's DMA zone, as a real multi-node Xen 4.17 host does.

Xen keeps the memory below its DMA width (``dma_bits=``, else a quarter of node 0
rounded up to a power of two, at most 32 bits) for the last of every ordinary
allocation (``alloc_domheap_pages``: every zone above the width on every node first).
The simulator used to have no zone: its allocator gave a node-0-affine build node 0's
low memory like any other, and it reported no free memory below the width, so
placement on a simulated host saw room Xen would not give.
"""
import json

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.heap import build_overhead
from xapi_numa.backends.sim.model import Host
from xapi_numa.cli.main import main
from xapi_numa.core.topology import Topology
from xapi_numa.core.xenalloc import SUPERPAGE, distribute

GiB, MiB = 1 << 30, 1 << 20
PAGES_PER_MIB = MiB >> 12
# 2 nodes of 2 GiB: Xen's default width is 29 bits (a quarter of node 0 is 512 MiB)
DEFAULT_ZONE = 512 * MiB


@pytest.fixture
def sim(tmp_path):
    return SimHypervisor.init(str(tmp_path / "host.json"), Topology.uniform(2, 4, 2 * GiB))


def node0_cpus(hv):
    return frozenset(hv.topology().nodes[0].cpus)


def test_the_allocator_takes_every_nodes_memory_above_the_width_before_any_zone():
    free, zone = [1000, 1000], [300, 0]
    got, _ = distribute(800, free, [0], -1, 1, zone=zone)
    assert got == {0: 700, 1: 100}  # spills to node 1 before node 0's zone
    assert zone == [300, 0] and free == [300, 900]
    got, _ = distribute(1000, free, [0], -1, 1, zone=zone)
    assert got == {1: 900, 0: 100} and zone == [200, 0]  # the zone only once node 1 is out too


def test_an_explicit_node_spills_too_and_an_exact_one_gets_its_zone():
    got, _ = distribute(800, [1000, 1000], [0, 1], -1, 1, node=0, zone=[300, 0])
    assert got == {0: 700, 1: 100}
    got, _ = distribute(800, [1000, 1000], [0, 1], -1, 1, node=0, exact=True, zone=[300, 0])
    assert got == {0: 800}  # MEMF_exact_node: the second pass is on that node only


def test_superpages_come_from_a_zone_before_pages_come_from_above_it():
    """libxc asks 2 MiB extents while Xen has them (either pass), then 4 KiB pages."""
    free, zone = [SUPERPAGE + 100, 0], [SUPERPAGE, 0]
    got, _ = distribute(SUPERPAGE + 100, free, [0], -1, SUPERPAGE, zone=zone)
    assert got == {0: SUPERPAGE + 100} and zone == [0, 0]


def test_a_node0_affine_build_larger_than_node0s_room_spills_to_node1_before_the_zone(sim):
    before = sim.node_memory()
    assert before[0].dma_free == DEFAULT_ZONE and before[1].dma_free == 0
    domid = sim.create("big", 2, before[0].free - DEFAULT_ZONE + 64 * MiB, hard=node0_cpus(sim))
    # its build's overhead (a PV guest's: Xen's per-vCPU memory) went round node 0 before its RAM,
    # above the zone too: the RAM spills that much more
    assert sim.node_pages(domid)[1] == 64 * PAGES_PER_MIB + build_overhead("pv", 2, 0, pool=False)
    after = sim.node_memory()
    assert after[0].free == DEFAULT_ZONE and after[0].dma_free == DEFAULT_ZONE  # the zone is still free


def test_the_zone_is_given_once_every_node_is_out_of_the_rest(sim):
    memory = sim.node_memory()
    domid = sim.create("all", 2, memory[0].room + memory[1].room + 16 * MiB, hard=node0_cpus(sim))
    # libxc builds in 2 MiB extents first (meminit_pv): the part of a superpage left above the
    # zone on each node is passed over for whole ones in the zone, and only the build's last
    # pages (less than 2 MiB, populated one by one) find those parts
    superpage = SUPERPAGE << 12
    beyond = 16 * MiB + sum(m.room % superpage for m in memory)
    assert [m.dma_free for m in sim.node_memory()] == [DEFAULT_ZONE - beyond // superpage * superpage, 0]
    sim.destroy(domid)  # its zone pages go back to the zone
    assert [m.dma_free for m in sim.node_memory()] == [DEFAULT_ZONE, 0]


def test_free_below_the_width_as_dma_bits_gives_it(tmp_path):
    path = str(tmp_path / "host.json")
    hv = SimHypervisor.init(path, Topology.uniform(2, 4, 2 * GiB), dma_bits=30)
    assert [m.dma_free for m in hv.node_memory()] == [1 * GiB, 0]
    hv = SimHypervisor.init(path, Topology.uniform(2, 4, 2 * GiB), dma_bits=52, force=True)
    assert [m.dma_free for m in hv.node_memory()] == [0, 0]  # a width above every zone: none kept
    # one node and no dma_bits=: Xen keeps no zone (arch_want_default_dmazone)
    hv = SimHypervisor.init(path, Topology.uniform(1, 4, 2 * GiB), force=True)
    assert [m.dma_free for m in hv.node_memory()] == [0]


def test_a_width_beyond_node_0_reaches_node_1():
    """dma_bits=32 on 2 x 2 GiB: node 1 lies at 2..4 GiB, below the width too."""
    host = Host(Topology.uniform(2, 2, 2 * GiB), commandline="dma_bits=32")
    assert host.zone_size == [2 * GiB >> 12, 2 * GiB >> 12]


def test_dom0_takes_memory_above_the_width_first(sim):
    dom0 = sim.node_pages(0)
    assert sum(dom0.values()) > 0
    assert sim.node_memory()[0].dma_free == DEFAULT_ZONE  # untouched


def test_a_state_file_from_before_the_zone_loads_as_a_default_boot(sim):
    domid = sim.create("g", 1, 256 * MiB)
    with open(sim.path) as f:
        data = json.load(f)
    del data["xen_commandline"]
    for d in data["domains"]:
        del d["dma_pages"]
    with open(sim.path, "w") as f:
        json.dump(data, f)
    old = SimHypervisor(sim.path)
    assert [m.dma_free for m in old.node_memory()] == [DEFAULT_ZONE, 0]
    old.destroy(domid)  # and it goes on working
    assert old.node_memory()[0].dma_free == DEFAULT_ZONE


def test_a_state_file_whose_zone_pages_do_not_fit_the_zone_is_refused(sim):
    from xapi_numa.errors import NumaError

    with open(sim.path) as f:
        data = json.load(f)
    data["domains"][0]["dma_pages"][1] = 1  # node 1 has no zone
    with open(sim.path, "w") as f:
        json.dump(data, f)
    with pytest.raises(NumaError) as err:
        SimHypervisor(sim.path).node_memory()
    assert "DMA width" in str(err.value) and "dma_pages[1]" in str(err.value)


def test_topology_on_the_simulated_host_shows_the_dma_zone(sim, capsys):
    capsys.readouterr()
    assert main(["--backend", "sim:" + sim.path, "topology"]) == 0
    text = capsys.readouterr().out
    assert "DMA zone" in text and "node 0 512M" in text
    assert main(["--backend", "sim:" + sim.path, "topology", "--json"]) == 0
    nodes = json.loads(capsys.readouterr().out)["nodes"]
    assert [n["memory_dma_free"] for n in nodes] == [DEFAULT_ZONE, 0]


def test_placement_on_the_simulated_host_leaves_node_0s_zone_out_of_its_room(sim, capsys):
    """Both nodes have the same free memory, but node 0's holds its zone: a VM that
    needs more than node 0's room goes to node 1 (counted as room, node 0 won the tie
    and Xen would have put the rest of the VM on node 1)."""
    memory = sim.node_memory()
    assert memory[0].free == memory[1].free
    need = memory[0].room + 64 * MiB
    capsys.readouterr()
    assert main(["--backend", "sim:" + sim.path, "place", "--vcpus", "1", "--memory", str(need), "--dry-run",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nodes"] == [1]


def test_sim_init_takes_dma_bits(tmp_path, capsys):
    path = str(tmp_path / "host.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "2G",
                 "--dma-bits", "30"]) == 0
    assert [m.dma_free for m in SimHypervisor(path).node_memory()] == [1 * GiB, 0]


@pytest.mark.parametrize("value", ["5", "53", "-1"])
def test_sim_init_refuses_a_dma_width_xen_would_not_keep_and_writes_nothing(tmp_path, capsys, value):
    path = str(tmp_path / "host.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "2G",
                 "--dma-bits", value]) != 0
    err = capsys.readouterr().err
    assert "--dma-bits" in err and "12..52" in err and "Traceback" not in err
    assert not (tmp_path / "host.json").exists()
