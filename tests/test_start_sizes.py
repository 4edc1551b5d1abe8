"""The start-size history and the split-risk term of the single-node rule ``scored``."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xapi_numa.core import placement
from xapi_numa.core.placement import NO_OVERHEAD, NodeLoads, Planner, Request
from xapi_numa.core.policy import Policy
from xapi_numa.core.single_node import choose_node
from xapi_numa.core.start_sizes import BUCKET_BITS, NO_STARTS, StartSizes, bucket
from xapi_numa.core.topology import Topology
from xapi_numa.errors import InvalidArgument

MIB, G = 1 << 20, 1 << 30


def two_nodes(cpus_per_node=4, mem=64 * G):
    return Topology.from_arrays([c // cpus_per_node for c in range(2 * cpus_per_node)], [[10, 21], [21, 10]],
                                [mem] * 2)


def test_a_size_is_counted_in_whole_mib_rounded_up_to_its_bucket():
    assert bucket(1) == MIB and bucket(MIB) == MIB and bucket(MIB + 1) == 2 * MIB
    assert bucket(31 * MIB) == 31 * MIB  # under 2^BUCKET_BITS MiB: exact
    assert bucket(33 * MIB) == 34 * MIB and bucket(1000 * MIB) == 1024 * MIB
    # sizes of k x 2^j MiB with k < 2^BUCKET_BITS are exact: the quality benchmark's (1-96 GiB) among them
    assert all(bucket(k << j << 20) == k << j << 20 for k in range(1, 32) for j in range(12))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 1 << 50))
def test_a_bucket_is_at_most_one_step_above_its_sizes_and_its_own_bucket(memory):
    b = bucket(memory)
    assert memory <= b < memory + max(MIB, memory >> (BUCKET_BITS - 1)) + MIB and bucket(b) == b


def test_years_of_starts_stay_a_few_hundred_rows():
    """Every size from 256 MiB to 4 TiB, by 0.5 %: one row per bucket."""
    sizes, size = [], 256 * MIB
    while size <= 4 << 40:
        sizes.append(size)
        size = max(size + MIB, size * 201 // 200)
    starts = StartSizes.of(sizes)
    assert starts.total == len(sizes) > 1000 and len(starts.rows) <= 16 * 14 + 1


def test_the_history_counts_the_starts_above_a_hole():
    starts = StartSizes(((4 * G, 2), (G, 3), (16 * G, 1), (4 * G, 1), (8 * G, 0)))
    assert starts.rows == ((G, 3), (4 * G, 3), (16 * G, 1)) and starts.total == 7
    assert [starts.above(h) for h in (0, G - 1, G, 4 * G - 1, 4 * G, 16 * G)] == [7, 7, 4, 4, 1, 0]
    assert starts.with_start(4 * G).rows == ((G, 3), (4 * G, 4), (16 * G, 1))
    assert NO_STARTS.total == 0 and NO_STARTS.above(0) == 0
    assert StartSizes.of([G, G]) == StartSizes(((G, 2),))


@pytest.mark.parametrize("rows", [((0, 1),), ((G, -1),), ((1 << 51, 1),), (("1G", 1),), ((G, 1.5),)])
def test_bad_history_rows_are_refused_naming_the_field(rows):
    with pytest.raises(InvalidArgument) as err:
        StartSizes(rows)
    assert "start sizes" in str(err.value) and "allowed" in str(err.value)


def test_the_split_risk_keeps_the_hole_the_hosts_starts_need():
    """Two nodes with 40G and 38G free, a 4G VM: levelling takes node 0 (leaving 36/38G); a host
    whose starts were mostly 37-38G VMs keeps node 0's 40G hole whole: node 1."""
    avail, sizes = [40 * G, 38 * G], [64 * G] * 2
    plain = choose_node("scored", [0, 1], avail, [0, 0], [4, 4], 1, 4 * G, sizes)
    big = choose_node("scored", [0, 1], avail, [0, 0], [4, 4], 1, 4 * G, sizes,
                      StartSizes.of([38 * G + MIB] * 3), 4 * G)
    assert (plain, big) == (0, 1)
    # the VM's own size counts as one start: alone it fits either way (4G below every hole)
    assert choose_node("scored", [0, 1], avail, [0, 0], [4, 4], 1, 4 * G, sizes, NO_STARTS, 4 * G) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 64), min_size=2, max_size=6), st.integers(1, 30))
def test_with_no_history_the_vms_own_size_never_counts_as_a_risk(free, need):
    """Another node that fits the VM is left whichever takes it, so its own size (or its
    build's) is never bigger than the biggest hole after it: no history, no risk term."""
    avail = [f * G for f in free]
    fits = [i for i, a in enumerate(avail) if a >= need * G]
    if len(fits) < 2:
        return
    args = ("scored", fits, avail, [0] * len(avail), [4] * len(avail), 1, need * G, [64 * G] * len(avail))
    assert choose_node(*args, NO_STARTS, need * G) == choose_node(*args)


def test_a_vm_fits_a_node_by_its_cores_and_memory_size():
    planner = Planner(two_nodes(cpus_per_node=4, mem=64 * G), NO_OVERHEAD)
    assert planner.fits_a_node(Request(4, 63 * G)) and not planner.fits_a_node(Request(5, G))
    assert not planner.fits_a_node(Request(1, 64 * G))  # a whole node's size: never on one node of a running host
    unknown = Planner(Topology.from_arrays([0, 0, 1, 1], [[10, 21], [21, 10]], [0, 0]), NO_OVERHEAD)
    assert unknown.fits_a_node(Request(2, 512 * G))


def test_the_planner_weighs_the_loads_history_and_the_vm_itself(monkeypatch):
    planner = Planner(two_nodes(), NO_OVERHEAD)
    free = [40 * G, 38 * G]
    assert planner.place(NodeLoads.of(free), Request(1, 4 * G)).nodes == (0,)
    assert planner.place(NodeLoads.of(free, starts=StartSizes.of([39 * G] * 2)), Request(1, 4 * G)).nodes == (1,)
    # the VM itself counts as one start when it fits a node (its memory as ``this``), else not
    seen = []

    def spy(*args):
        seen.append(args[8:])
        return choose_node(*args)

    monkeypatch.setattr(placement, "choose_node", spy)
    starts = StartSizes.of([30 * G, G])
    planner.place(NodeLoads.of([36 * G, 28 * G], starts=starts), Request(1, 8 * G))
    planner.place(NodeLoads.of([36 * G, 28 * G], starts=starts), Request(1, 8 * G, Policy(mode="strict")))
    assert seen == [(starts, 8 * G), (starts, 8 * G)]
    Planner(two_nodes(), NO_OVERHEAD).place(NodeLoads.of([36 * G, 28 * G], starts=starts), Request(9, 8 * G))
    assert seen[2:] == [(starts, 0)]  # 9 vCPUs, 4 cores a node: on one node, its vCPUs sharing
    # the DMA-zone fallback keeps the history (attrs.evolve)
    loads = NodeLoads([G, G], [0, 0], [0, 0], [G, G], starts=StartSizes.of([G]))
    assert loads.with_dma().starts == loads.starts
    with pytest.raises(TypeError):
        NodeLoads.of(free, starts=[G])
