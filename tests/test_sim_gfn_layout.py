"""A simulated guest's gfns lie on its nodes as its build laid them (core/xenalloc.py,
build_layout), so a page move of a gfn range frees what Xen's would.

The simulator derived a guest's layout as 2 MiB runs dealt round its nodes from node 0,
while an HVM/PVH build asks each whole GiB as one extent, dealt from the node after node 0
(a new domain's last_alloc_node): a 2 GiB PVH guest over two nodes has its first GiB on
node 1 and its second on node 0.  Moving 64 Ki pages of its first GiB to node 0 freed
32 Ki pages of node 1 in the simulator and 64 Ki on Xen.
"""
from xapi_numa.backends.sim import guestmem
from xapi_numa.backends.sim.model import Host
from xapi_numa.core.topology import Topology
from xapi_numa.core.xenalloc import GIGAPAGE, SUPERPAGE, build_layout

G = GIGAPAGE  # pages


def _guest(dtype: str, pages: int):
    host = Host(Topology.uniform(2, 2, 8 << 30), scheduler="credit2", seed=2, commandline="dma_bits=20")
    return host, host.create_domain("g", 1, pages, dtype=dtype, node_affinity=0b11, paused=True)


def test_a_move_within_the_first_gib_frees_its_node():
    host, d = _guest("pvh", 2 * G)
    assert d.node_pages == [G, G]
    gfns = list(range(0x10000, 0x20000))  # above the special pages, inside the first GiB
    result = guestmem.move(host, d, gfns, 0, 16, False, None)
    assert result.moved == len(gfns)
    assert d.node_pages == [G + len(gfns), G - len(gfns)], d.node_pages  # all were on node 1


def test_the_layout_follows_the_build():
    # PVH 3 GiB: GiBs to nodes 1, 0, 1
    assert build_layout([G, 2 * G], "pvh") == [(0, G, 1), (G, G, 0), (2 * G, G, 1)]
    # HVM 1 GiB: its first 2 MiB page by page round nodes 1, 0, then 511 extents from node 1
    runs = build_layout([256 + 255 * SUPERPAGE, 256 + 256 * SUPERPAGE], "hvm")
    assert runs[:3] == [(0, 1, 1), (1, 1, 0), (2, 1, 1)]
    assert runs[512:515] == [(512, SUPERPAGE, 1), (512 + SUPERPAGE, SUPERPAGE, 0), (512 + 2 * SUPERPAGE, SUPERPAGE, 1)]
    assert sum(c for _, c, n in runs if n == 0) == 256 + 255 * SUPERPAGE
    # PV: 2 MiB extents from node 1
    assert build_layout([SUPERPAGE, SUPERPAGE + 7], "pv") == [(0, SUPERPAGE, 1), (SUPERPAGE, SUPERPAGE, 0),
                                                            (2 * SUPERPAGE, 7, 1)]
