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


def test_the_hypercalls_counted_for_a_topology_read_are_those_libxenuma_makes():
    """libxenuma asks Xen for each table's size first and then for the table: xc_numainfo
    and xc_cputopoinfo twice each (two sysctls), where the host counted one of each, so the
    figure printed beside a decision had 3 of its 11 hypercalls missing."""
    import re

    from memhost import MemHost

    from xapi_numa.core.topology import Topology

    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "libxenuma", "src", "libxenuma.c")) as f:
        source = f.read()

    def calls(function: str, xc: str) -> int:
        body = re.search(r"\nint {}\(.*?\n}}\n".format(function), source, re.S).group(0)
        return len(re.findall(r"\b{}\(".format(xc), body))

    numainfo, cputopo = calls("xn_numainfo", "xc_numainfo"), calls("xn_cputopo", "xc_cputopoinfo")
    physinfo = calls("xn_physinfo", "xc_physinfo") + calls("xn_physinfo", "xc_sched_id")  # the online CPU count
    assert numainfo >= 1 and cputopo >= 1 and physinfo >= 1
    hv = MemHost(Topology.uniform(2, 2, 1 << 30), [1 << 29] * 2)
    for read, made in ((hv.topology, numainfo + cputopo + physinfo), (hv.node_memory, numainfo)):
        before = hv.hypercalls
        read()
        assert hv.hypercalls - before == made, read.__name__


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
