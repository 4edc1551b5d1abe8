"""Xen's DMA zone on real Xen: free memory that a VM placed on node 0 does not get.

The test host has two 2 GiB nodes, so Xen's DMA width is 29 bits (a quarter of
node 0, rounded up to a power of two) and node 0's memory below 512 MiB is held
back: a build with node affinity to node 0 spills to node 1 before it takes it.
Judged by pages per node, never by time.
"""
import re

import pytest

from xapi_numa.core import dma_zone
from xenlib import xl

MiB = 1 << 20


def test_our_dma_width_is_the_one_xen_printed_at_boot(hv, xen_cmdline):
    said = re.search(r"Domain heap initialised DMA width (\d+) bits", xl("dmesg"))
    assert said, "Xen's boot message with its DMA width is not in the console ring"
    sizes = [m.size for m in hv.node_memory()]
    assert dma_zone.dma_width(xen_cmdline, sizes) == int(said.group(1)) == 29


def test_node_memory_reports_the_dma_zone_only_on_node_0(hv):
    memory = hv.node_memory()
    assert 0 < memory[0].dma_free <= min(memory[0].free, 512 * MiB)
    assert memory[1].dma_free == 0  # node 1 starts at 2 GiB, above the width
    assert memory[0].room == memory[0].free - memory[0].dma_free - memory[0].claimed


def test_a_build_on_node_0_spills_to_node_1_before_it_takes_the_dma_zone(hv, guests):
    """A guest of node 0's room plus 64 MiB, hard-pinned to node 0 (libxl gives it node
    affinity {0}): the 64 MiB goes to node 1 although node 0 has it free, below 512 MiB.
    Counted as room, as placement did, that memory said the guest fits node 0."""
    before = hv.node_memory()
    if before[0].dma_free < 96 * MiB:
        pytest.fail(f"node 0 has only {before[0].dma_free >> 20} MiB free in its DMA zone: "
                    "the test host is not the one this test was written for")
    extra = 64
    size = (before[0].room >> 20) + extra
    assert before[1].room >= (extra + 64) * MiB, "node 1 has no room for the spill"
    domid = guests("dma-spill", memory=size, vcpus=1, cpus="node:0")
    pages = hv.node_pages(domid)
    on_node_1 = pages.get(1, 0) << 12
    # the build's own page tables and p2m come on top of memory=: at least the 64 MiB spills
    assert on_node_1 >= (extra - 8) * MiB, f"only {on_node_1 >> 20} MiB on node 1: the DMA zone was used"
    after = hv.node_memory()
    assert after[0].dma_free >= before[0].dma_free - 8 * MiB, "node 0's DMA zone was taken"
