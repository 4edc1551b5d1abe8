"""The simulator allocates a build's overhead as Xen does for the toolstacks, held apart from the guest's pages.

It built the guest's RAM alone: no shadow/HAP pool and none of Xen's per-vCPU memory, so after a start
the simulated host had that much more free memory than Xen leaves, and the RAM's striping started
where a new domain's does, not after the node that gave the overhead's last page, where the planner
(``xenalloc.take_overhead``, then ``xenalloc.build``) predicts it.  On Xen those pages are allocated
``MEMF_no_owner`` (hap_set_allocation, shadow_set_allocation): in neither the domain's tot_pages nor
its page list (debug key 'u'), freed with the domain.  xenopsd's build_pre sets the pool (for PV too)
before any affinity, round every node with CPUs; libxl sets it (HVM/PVH only) after its placement."""
import json

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.model import Host
from xapi_numa.core import xenalloc
from xapi_numa.core.overhead import BuildOverhead
from xapi_numa.core.topology import Topology

GiB, MiB, PAGE = 1 << 30, 1 << 20, 12
TOPO = Topology.uniform(2, 4, 8 * GiB)


def _host(tmp_path, topo=TOPO):
    return SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit2", seed=3, dom0_vcpus=1, dom0_memory=256 * MiB)


def _free(hv):
    return [m.free >> PAGE for m in hv.node_memory()]


def test_a_xenopsd_shell_holds_its_overhead_round_every_node_apart_from_its_pages(tmp_path):
    hv = _host(tmp_path)
    before = _free(hv)
    domid = hv.create_shell("g", 4, 3 * GiB, dtype="hvm")
    pages = BuildOverhead().bytes_for(4, 3 * GiB) >> PAGE  # the planner's model of it
    expected, last = xenalloc.take_overhead(pages, list(before), [0, 1])
    assert [b - a for b, a in zip(before, _free(hv))] == [expected[0], expected[1]] and expected[0] and expected[1]
    # not the domain's pages: its memory and its pages per node say nothing of it
    assert hv.domain(domid).memory == 0 and not any(hv.node_pages(domid).values())
    after_overhead = _free(hv)
    ram, _ = xenalloc.build(3 * GiB >> PAGE, "hvm", list(after_overhead), [0, 1], last)
    assert hv.build(domid) == ram  # the RAM's striping starts after the overhead's last node
    assert sum(hv.node_pages(domid).values()) == 3 * GiB >> PAGE
    assert sum(before) - sum(_free(hv)) == (3 * GiB >> PAGE) + pages
    hv.destroy(domid)
    assert _free(hv) == before  # freed with the domain


def test_xenopsd_gives_a_pv_guest_its_pool_too(tmp_path):
    """xenopsd's build_pre calls shadow_allocation_set whatever the type, and Xen makes a shadow
    pool of a PV domain's allocation (shadow_domctl) though it is not in shadow mode."""
    hv = _host(tmp_path)
    before = sum(_free(hv))
    hv.create_shell("p", 2, GiB, dtype="pv")
    assert before - sum(_free(hv)) == BuildOverhead().bytes_for(2, GiB) >> PAGE


def test_xl_takes_the_pool_round_the_nodes_it_placed_the_guest_on_and_none_for_pv(tmp_path):
    hv = _host(tmp_path)
    before = _free(hv)
    domid = hv.create("h", 2, 2 * GiB, dtype="pvh", load="idle")  # libxl places it on one node
    on = [n for n, p in hv.node_pages(domid).items() if p]
    assert len(on) == 1
    taken = [b - a for b, a in zip(before, _free(hv))]
    # libxl's own pool (libxl__get_required_paging_memory, HAP: 256 pages per vCPU, one per MiB), Xen's 38 per vCPU
    assert taken[on[0]] == (2 * GiB >> PAGE) + 256 * 2 + 2048 + 38 * 2
    assert taken[1 - on[0]] == 0  # none of it round the other node
    before = sum(_free(hv))
    hv.create("p", 3, GiB, dtype="pv", load="idle")
    assert before - sum(_free(hv)) == (GiB >> PAGE) + BuildOverhead().pages_without_pool(3)


def test_the_state_file_keeps_the_overhead_and_an_older_one_loads_without_it(tmp_path):
    hv = _host(tmp_path)
    before = _free(hv)
    domid = hv.create_shell("g", 2, GiB, dtype="pvh")
    held = _free(hv)
    assert SimHypervisor(hv.path).node_memory() == hv.node_memory() and held != before
    SimHypervisor(hv.path).destroy(domid)  # (a new reader: the overhead came back from the file)
    assert _free(hv) == before
    domid = hv.create_shell("g", 2, GiB, dtype="pvh")
    with open(hv.path) as f:
        data = json.load(f)
    for d in data["domains"]:  # as a file written before the overhead was allocated
        data["free"] = [f + p for f, p in zip(data["free"], d.pop("overhead_pages"))]
        del d["overhead_dma"]
    with open(hv.path, "w") as f:
        json.dump(data, f)
    assert _free(hv) == before  # loads, with no overhead
    hv.destroy(domid)
    assert _free(hv) == before


def test_an_overhead_from_a_dma_zone_goes_back_to_it():
    host = Host(Topology.uniform(2, 2, 64 * MiB), commandline="dma_bits=24")  # node 0's first 16 MiB
    zone = host.zone_free[0]
    host.create_domain("fill", 1, host.free[0] - zone, hard=0b11, node_affinity=0b1, paused=True)
    host.create_domain("fill1", 1, host.free[1], hard=0b1100, node_affinity=0b10, paused=True)
    d = host.create_domain("g", 1, 1, paused=True, populate=False, overhead=300)
    assert d.overhead_pages == [300, 0] and d.overhead_dma == [300, 0] and host.zone_free[0] == zone - 300
    host.check_invariants()
    host.destroy(d.domid)
    assert host.zone_free[0] == zone
    host.check_invariants()
