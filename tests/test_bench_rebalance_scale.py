"""The rebalancer-look benchmark's host is one where swaps matter (no timing here)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import bench_rebalance_scale as bench  # noqa: E402


def test_every_node_is_populated_and_the_choice_needs_its_swaps():
    vms, topo = bench.host()
    assert sorted({vm.home for vm in vms}) == [0, 1, 2, 3]
    assert all(sum(1 for vm in vms if vm.home == n) == bench.PER_NODE for n in range(4))
    _, none = bench.look(vms, topo, 0)
    _, ranked = bench.look(vms, topo, 256)
    assert none and all(c.kind == "balance" for c in none)
    assert any(c.kind == "swap" for c in ranked)
    assert bench._named(ranked) != bench._named(none)  # the check in run() can fail


def test_the_large_host_is_populated_alike_and_its_choice_needs_its_swaps():
    vms, topo = bench.host(bench.LARGE_VMS, nodes=16, pcpus=40)
    assert len(vms) == bench.LARGE_VMS and len(topo.nodes) == 16
    assert all(sum(1 for vm in vms if vm.home == n) == bench.LARGE_VMS // 16 for n in range(16))
    _, none = bench.look(vms, topo, 0)
    _, ranked = bench.look(vms, topo, 256)
    assert none and all(c.kind == "balance" for c in none)
    assert any(c.kind == "swap" for c in ranked) and bench._named(ranked) != bench._named(none)
