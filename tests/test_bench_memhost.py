"""The in-memory host the placement-latency benchmark decides on (no timing here)."""
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import bench_placement  # noqa: E402

from xapi_numa.core.placement import Request  # noqa: E402
from xapi_numa.ops.reserve import place_and_reserve  # noqa: E402
from xapi_numa.state.ledger import Ledger  # noqa: E402


def test_a_dry_run_on_the_memory_host_counts_its_domains_and_reservations(tmp_path):
    ledger = Ledger(str(tmp_path / "l.db"))
    topo, planner, hv, loads, running = bench_placement.build_host(4, random.Random(4), ledger)
    assert running > 900 and len(hv.domains()) == running + bench_placement.BUILDING
    assert len(ledger.reservations()) == bench_placement.RESERVATIONS
    placement, reservation, seen = place_and_reserve(hv, ledger, Request(2, 4 << 30), "next", 60, True)
    assert reservation is None and len(ledger.reservations()) == bench_placement.RESERVATIONS  # nothing written
    # the dry run reads what the benchmark built: free memory, reservations less what the builds
    # under way have landed and their overhead (allocated before their first page: out of the
    # free memory already), homed vCPUs (theirs too: their domains exist)
    landed = sum(sum(pages.values()) << 12 for pages in hv.building.values())
    assert len(hv.building) == bench_placement.BUILDING and landed > 0
    overhead = sum(sum(ledger.reservation(d.uuid).initial.values()) - d.max_memory
                   for d in hv.domains() if d.domid in hv.building)
    assert seen.free == loads.free and landed < sum(loads.reserved) - sum(seen.reserved) <= landed + overhead
    building_vcpus = sum(d.vcpus for d in hv.domains() if d.domid in hv.building)
    assert sum(loads.vcpus) <= sum(seen.vcpus) <= sum(loads.vcpus) + building_vcpus
    assert hv.hypercalls > running  # every domain's vCPUs were read
    assert bench_placement.against(2.0, 1.0) == (2.0, "slower") and bench_placement.against(1.0, 4.0) == (4.0, "faster")


def _libxenuma_hypercalls(function: str) -> int:
    """Hypercalls libxenuma's ``function`` makes, read from its source: its libxc calls (a table's
    size is asked first: numainfo and cputopo twice), or the patched node-page query it calls
    (through the handle's pointer, or through xn_node_pages_native: the features' probe)."""
    import re

    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "libxenuma", "src", "libxenuma.c")) as f:
        body = re.search(r"\n(?:int|void) {}\(.*?\n}}\n".format(function), f.read(), re.S).group(0)
    body = body[body.index("{"):]  # (not the declaration's own name)
    return len(re.findall(r"\bxc_\w+\(|patched\.node_pages\(|\bxn_node_pages_native\(", body))


def test_the_hypercalls_counted_per_libxenuma_call_are_those_libxenuma_makes():
    """libxenuma asks Xen for each table's size first and then for the table: xc_numainfo
    and xc_cputopoinfo twice each, where the host counted one of each; the features probe the
    node-page query; physinfo asks the scheduler too."""
    from memhost import XN_HYPERCALLS

    assert {call: _libxenuma_hypercalls(call) for call in XN_HYPERCALLS} == XN_HYPERCALLS


def test_each_read_counts_the_libxenuma_calls_the_xen_adapter_makes_for_it(monkeypatch):
    """The real adapter (backends/xen.py) run over the same tables, its libxenuma calls named:
    the host's count for each read is made of the same calls.  The host counted no call for the
    capabilities (the adapter makes two), one for a build's pages (two: the node count first) and
    none for the DMA zone's free memory (one per node, after Xen's command line once)."""
    from memhost import FFI, FakeLibxenuma, MemHost

    from xapi_numa.backends import xen
    from xapi_numa.core.cpuset import BitmapReader
    from xapi_numa.core.topology import Topology

    hv = MemHost(Topology.uniform(4, 2, 1 << 32), [1 << 31] * 4)
    hv.add_domain(7, "0f4c1f8a-3c39-4f57-9d3a-3b0f1c2d4e5f", 1 << 30, [frozenset({0})], [frozenset({0})],
                  building={0: 100, 1: 20})
    named = []

    class Recorded(FakeLibxenuma):
        """libxenuma for the adapter itself, over the host's tables, each call named."""
        XN_DOM_HVM, XN_DOM_PVH, XN_DOM_PAUSED, XN_DOM_SHUTDOWN = 0x2, 0x200, 0x8, 0x4

        def __init__(self) -> None:
            super().__init__(hv)
            self.made = named.append

        def xn_features(self, handle, out) -> None:
            self.made("xn_features")
            out.node_pages, out.claims, out.node_claims = 2, 2, 0

        def xn_node_pages_native(self, handle, domid, nodes, pages) -> int:
            self.made("xn_node_pages_native")
            return nodes

        def xn_xen_commandline(self, handle, buf, size) -> int:
            self.made("xn_xen_commandline")
            return 0

        def xn_node_free_below(self, handle, node, width, out) -> int:
            self.made("xn_node_free_below")
            out[0] = 0
            return 0

    adapter = xen.XenHypervisor.__new__(xen.XenHypervisor)  # (no Xen to open: the library is the fake)
    adapter._h, adapter._maps, adapter._online, adapter._names = None, BitmapReader(), None, {}
    adapter._dma_width, adapter._cpumap_bytes = xen._UNREAD, hv.nbytes
    monkeypatch.setattr(xen, "ffi", FFI)
    monkeypatch.setattr(xen, "lib", Recorded())
    reads = [("capabilities", ()), ("claims_outstanding", ()), ("topology", ()), ("node_memory", ()),
             ("node_memory", ()), ("domain_uuids", ()), ("domain", (7, False)), ("node_pages", (7,))]
    nodes_read = False  # libxenuma reads the online nodes at its first xn_node_free_below (one more hypercall)
    for read, args in reads:
        del named[:]
        before, calls = hv.hypercalls, len(hv.calls)
        getattr(adapter, read)(*args)
        getattr(hv, read)(*args)
        assert hv.calls[calls:] == named and named, read
        first = "xn_node_free_below" in named and not nodes_read
        nodes_read = nodes_read or first
        assert hv.hypercalls - before == sum(map(_libxenuma_hypercalls, named)) + first, read
    assert nodes_read


def test_a_dry_run_reads_each_fact_of_the_hypervisor_once(tmp_path):
    """One decision, one read of each: the capabilities (read three times before, by the
    reconcile's view, the node claims and the claims' overlap), the topology, the free
    memory, the claims, the domain list; one record and one page count per build under way;
    no vCPU with the daemon's tally fresh."""
    from xapi_numa.core.locality import single_homes
    from xapi_numa.state.home_tally import HomeTally

    ledger = Ledger(str(tmp_path / "l.db"))
    topo, planner, hv, loads, running = bench_placement.build_host(4, random.Random(4), ledger)
    HomeTally(ledger.db).publish({d.domid: (d.uuid, single_homes(hv.vcpus(d.domid), topo)) for d in hv.domains()})
    for vm in ("next", ledger.reservations()[-1].vm):  # a new VM; one placed again (its own row left out)
        hv.reads.clear()
        place_and_reserve(hv, ledger, Request(2, 4 << 30), vm, 60, True)
        assert dict(hv.reads) == {"capabilities": 1, "topology": 1, "node_memory": 1, "claims_outstanding": 1,
                                  "domain_uuids": 1, "domain": bench_placement.BUILDING,
                                  "node_pages": bench_placement.BUILDING}, vm
