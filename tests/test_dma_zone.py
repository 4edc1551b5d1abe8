"""Xen's DMA zone: free memory a VM placed on its node does not get.

Xen 4.17 (``alloc_domheap_pages``) takes memory below its DMA width only once no
node has any other: a build with node affinity to node 0 spills to node 1 before
it touches node 0's low memory.  Placement used to count that memory as room on
node 0 (the README listed it as known).  The rule for the width is checked
against ``end_boot_allocator`` / ``arch_get_dma_bitsize`` / ``parse_params``;
the adapter over a stand-in for the libxenuma binding that answers as Xen does.
"""
import errno

import pytest
from hypothesis import given, strategies as st

from xapi_numa.core import dma_zone
from xapi_numa.core.host import NodeMemory

GiB = 1 << 30
MiB = 1 << 20


@pytest.mark.parametrize("sizes, width", [
    ([2 * GiB, 2 * GiB], 29),          # the QEMU test host: Xen prints "DMA width 29 bits"
    ([256 * GiB, 256 * GiB], 32),      # any real host: capped at 4 GiB
    ([16 * GiB, 16 * GiB], 32),        # a quarter is exactly 4 GiB
    ([15 * GiB, 16 * GiB], 32),        # rounded up to a power of two
    ([8 * GiB, 8 * GiB], 31),
    ([0, 4 * GiB, 4 * GiB], 30),       # the first node with memory
    ([64 * GiB], None),                # one node: no DMA zone
])
def test_the_default_width_follows_arch_get_dma_bitsize(sizes, width):
    assert dma_zone.dma_width("dom0_mem=4096M,max:4096M watchdog", sizes) == width


@pytest.mark.parametrize("line, width", [
    ("dma_bits=30", 30),
    ("dma_bits=0x1e", 30),
    ("dma_bits=036", 30),               # octal, as simple_strtoll with base 0
    ("dma_bits=30abc", 30),             # Xen assigns the leading number, then warns
    ("dma_bits=28 dma_bits=30", 30),    # the last one wins
    ("no-dma_bits=30", 30),             # parse_params drops a no- prefix for every kind
    ("dma_bits=0", 32),                 # 0 is the default
    ("dma_bits=x", 32),
    ("dma-bits=30", 32),                # 4.17 compares names exactly
    ("dma_bits", 32),
    ("console=vga -- dma_bits=30", 32),  # after --: dom0's, not Xen's
    ("dma_bits=52", None),              # no zone above it: nothing kept back
    ("dma_bits=-1", None),              # simple_strtoll's -1 into an unsigned int: no zone
    ("dma_bits=-0", 32),
    ("dma_bits=30 dma_bits=8589934592", 30),  # above 32 bits: refused (EOVERFLOW), 30 stands
])
def test_dma_bits_on_the_command_line(line, width):
    assert dma_zone.dma_width(line, [256 * GiB, 256 * GiB]) == width


def test_dma_bits_given_applies_on_one_node_too():
    assert dma_zone.dma_width("dma_bits=30", [64 * GiB]) == 30


@given(st.lists(st.integers(0, 1 << 44), min_size=2, max_size=8), st.text(max_size=40))
def test_the_width_is_a_bit_count_xen_could_have(sizes, line):
    width = dma_zone.dma_width(line, sizes)
    assert width is None or 1 <= width < dma_zone.NO_ZONE_ABOVE


def test_a_nodes_room_leaves_out_the_dma_zone_its_claimable_memory_does_not():
    node = NodeMemory(0, 8 * GiB, 3 * GiB, claimed=1 * GiB, dma_free=512 * MiB)
    assert node.claimable == 3 * GiB - 1 * GiB  # Xen gives it, last
    assert node.room == 3 * GiB - 1 * GiB - 512 * MiB  # a node-affine build gets it from this node
    assert NodeMemory(0, 8 * GiB, 256 * MiB, dma_free=512 * MiB).room == 0


xen = pytest.importorskip("xapi_numa.backends.xen")

from test_review10_offline_cpus import TwoNodeHost  # noqa: E402


class DmaHost(TwoNodeHost):
    """2 nodes of 2 GiB, each with 1 GiB free; node 0 has 300 MiB of it below the DMA width."""

    def __init__(self, commandline="dom0_mem=1024M,max:1024M"):
        super().__init__()
        self.commandline = commandline
        self.lines_read = 0
        self.widths = []

    def xn_numainfo(self, h, n, size, free, dist):
        super().xn_numainfo(h, n, size, free, dist)
        for i in range(2):
            size[i], free[i] = 2 * GiB, 1 * GiB
        return 0

    def xn_xen_commandline(self, h, buf, length):
        self.lines_read += 1
        if self.commandline is None:
            return -errno.EPERM
        data = self.commandline.encode()
        buf[0:len(data) + 1] = data + b"\0"
        return 0

    def xn_node_free_below(self, h, node, width, out):
        self.widths.append(width)
        out[0] = 300 * MiB if node == 0 else 0
        return 0


@pytest.fixture
def dma_host(monkeypatch):
    stand_in = DmaHost()
    monkeypatch.setattr(xen, "lib", stand_in)
    return stand_in


def test_the_xen_adapter_reports_the_dma_zone_and_leaves_it_out_of_the_room(dma_host):
    hv = xen.XenHypervisor()
    memory = hv.node_memory()
    assert [m.free for m in memory] == [1 * GiB, 1 * GiB]
    assert [m.dma_free for m in memory] == [300 * MiB, 0]
    assert [m.room for m in memory] == [1 * GiB - 300 * MiB, 1 * GiB]
    assert [m.claimable for m in memory] == [1 * GiB, 1 * GiB]
    assert set(dma_host.widths) == {29}  # 2 GiB nodes: a quarter is 512 MiB
    hv.node_memory()
    assert dma_host.lines_read == 1  # the width is set at boot: read once


def test_dma_bits_from_xens_command_line_reaches_the_read(monkeypatch):
    stand_in = DmaHost("console=com1 dma_bits=30")
    monkeypatch.setattr(xen, "lib", stand_in)
    xen.XenHypervisor().node_memory()
    assert set(stand_in.widths) == {30}


def test_no_dma_zone_no_read(monkeypatch):
    stand_in = DmaHost("dma_bits=60")
    monkeypatch.setattr(xen, "lib", stand_in)
    assert [m.dma_free for m in xen.XenHypervisor().node_memory()] == [0, 0]
    assert stand_in.widths == []


def test_a_refused_command_line_read_falls_back_to_xens_default(monkeypatch):
    stand_in = DmaHost(None)
    monkeypatch.setattr(xen, "lib", stand_in)
    assert [m.dma_free for m in xen.XenHypervisor().node_memory()] == [300 * MiB, 0]
    assert set(stand_in.widths) == {29}


def test_the_room_a_start_is_placed_by_leaves_out_node_0s_dma_zone(dma_host):
    from xapi_numa.ops import observe

    hv = xen.XenHypervisor()
    assert observe.claimable(hv, dma=False) == {0: 1 * GiB - 300 * MiB, 1: 1 * GiB}
    assert observe.claimable(hv) == {0: 1 * GiB, 1: 1 * GiB}  # what the ledger may promise


def test_the_topology_table_says_where_free_memory_is_dma():
    from xapi_numa.cli.render import render_topology

    node = {"cpus": "0-1", "memory_total": 2 * GiB, "memory_free": 1 * GiB, "memory_claimed": 0,
            "memory_reserved": 0}
    report = {"nodes": [dict(node, id=0, memory_dma_free=300 * MiB, memory_claimable=724 * MiB),
                        dict(node, id=1, memory_dma_free=0, memory_claimable=1 * GiB)],
              "distances": [[10, 20], [20, 10]], "scheduler": "credit2", "features": {}}
    text = render_topology(report)
    assert "DMA zone" in text and "node 0 300" in text and "node 1" not in text.split("DMA zone")[1]


# --- placement: the room first, the DMA zones only where nothing else fits ---------------------
from xapi_numa.core.placement import NodeLoads, Planner, Request  # noqa: E402
from xapi_numa.core.policy import Policy  # noqa: E402
from xapi_numa.core.topology import Topology  # noqa: E402
from xapi_numa.errors import NoCapacity  # noqa: E402

PLANNER = Planner(Topology.uniform(2, 8, 16 * GiB))


def test_a_vm_that_fits_node_0_only_with_its_dma_zone_goes_to_node_1():
    """Node 0: 1 GiB of room and 3 GiB of DMA zone, few vCPUs; node 1: 3 GiB, busy.  Counted
    as room, the DMA zone made node 0 the choice, and Xen put the VM's memory on node 1."""
    loads = NodeLoads([1 * GiB, 3 * GiB], [0, 0], [0, 14], dma=[3 * GiB, 0])
    request = Request(2, 2 * GiB)
    assert PLANNER.place(loads.with_dma(), request).nodes == (0,)  # what counting it as room chose
    assert dma_zone.place(PLANNER, loads, request).nodes == (1,)


def test_a_vm_the_host_holds_only_with_the_dma_zone_is_still_placed():
    """Xen builds it (the zone once every node is out of the rest), so it is not refused
    (review 15m: NUMA_NO_CAPACITY for a start Xen would build)."""
    loads = NodeLoads([1 * GiB, 1 * GiB], [0, 0], [0, 0], dma=[3 * GiB, 0])
    placed = dma_zone.place(PLANNER, loads, Request(2, 3 * GiB))
    assert sum(placed.bytes_per_node.values()) > 3 * GiB
    with pytest.raises(NoCapacity):
        PLANNER.place(loads, Request(2, 3 * GiB))


@pytest.mark.parametrize("policy, free", [(Policy("strict", (0,)), 1 * GiB),
                                          (Policy("preferred", (0,), on_exhaust="fail"), 8 * GiB)])
def test_but_not_for_a_vm_whose_memory_must_stay_on_its_nodes(policy, free):
    """Xen spills a build off its nodes before it gives it their DMA zone: a strict VM
    the host holds only so, or one that must not leave node 0, is refused."""
    loads = NodeLoads([1 * GiB, free], [0, 0], [0, 0], dma=[3 * GiB, 0])
    with pytest.raises(NoCapacity):
        dma_zone.place(PLANNER, loads, Request(2, 3 * GiB, policy))
    assert PLANNER.place(loads.with_dma(), Request(2, 3 * GiB, policy)).nodes == (0,)


def test_loads_without_dma_zones_place_as_before():
    loads = NodeLoads([1 * GiB, 1 * GiB], [0, 0], [0, 0])
    assert loads.with_dma() == loads
    with pytest.raises(NoCapacity):
        dma_zone.place(PLANNER, loads, Request(2, 3 * GiB))
