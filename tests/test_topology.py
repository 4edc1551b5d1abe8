import pytest

from xapi_numa.errors import InvalidArgument
from xapi_numa.core.topology import Topology


def test_from_xl_info(fixture_text):
    topo = Topology.from_xl_info(fixture_text("xl-info-n-2node.txt"))
    assert [sorted(n.cpus) for n in topo.nodes] == [[0, 1], [2, 3]]
    assert topo.distances == ((10, 20), (20, 10))
    assert topo.nodes[0].memory_size == 2048 << 20
    assert topo.nodes[1].memory_free == 1637 << 20
    assert [c.socket for c in topo.cpus] == [0, 1, 2, 3]
    assert topo.node_of(3) == 1
    assert topo.parse_cpus("node:1") == {2, 3}
    assert topo.format_cpus({0, 1, 2, 3}) == "all"


def test_from_xl_info_without_numa_section():
    with pytest.raises(InvalidArgument) as err:
        Topology.from_xl_info("nr_cpus : 4\n")
    assert "numa_info" in err.value.message


def test_from_arrays_lookups():
    topo = Topology.from_arrays([0, 0, 1, 1, 2, 2], [[10, 16, 22], [16, 10, 16], [22, 16, 10]],
                                [1 << 30] * 3)
    assert topo.cpus_of_nodes([0, 2]) == {0, 1, 4, 5}
    assert topo.nodes_of_cpus([1, 5]) == {0, 2}
    assert topo.distance(0, 2) == 22
    assert topo.memory_total() == 3 << 30


@pytest.mark.parametrize("matrix, fragment", [
    ([[10, 20]], "square"),
    ([[10, 20], [20]], "square"),
    ([[11, 20], [20, 10]], "must be 10"),
    ([[10, 0xFF], [20, 10]], "unreachable"),
    ([[10, 5], [20, 10]], "11..254"),
    ([[10, "x"], [20, 10]], "not an integer"),
])
def test_distance_validation(matrix, fragment):
    with pytest.raises(InvalidArgument) as err:
        Topology.from_arrays([0, 1], matrix, [1 << 30, 1 << 30])
    assert err.value.field == "distances"
    assert fragment in err.value.message


def test_cpu_on_missing_node():
    with pytest.raises(InvalidArgument) as err:
        Topology.from_arrays([0, 3], [[10, 20], [20, 10]], [1, 1])
    assert "node 3" in err.value.message


def test_asymmetric_matrix_is_accepted():
    topo = Topology.from_arrays([0, 1], [[10, 21], [31, 10]], [1, 1])
    assert topo.distance(1, 0) == 31


# --- parsing entry points: ASCII digits, bounded by the host (issue 12 item 19) ------------------
HOST = Topology.uniform(2, 4, 1 << 30)


def test_parse_cpus_refuses_ids_beyond_the_host_naming_its_range():
    with pytest.raises(InvalidArgument) as err:
        HOST.parse_cpus("0-10000000", "--soft")
    assert err.value.field == "--soft" and "0-7" in err.value.message


def test_parse_nodes_refuses_ids_beyond_the_host_naming_its_range():
    with pytest.raises(InvalidArgument) as err:
        HOST.parse_nodes("0-99999999999", "--nodes")
    assert err.value.field == "--nodes" and "0-1" in err.value.message


def test_xl_info_with_non_ascii_digits_is_refused(fixture_text):
    text = fixture_text("xl-info-n-2node.txt")
    # an Arabic-Indic digit where a CPU's node is: int() would read it as 1
    bad = text.replace("  0:       0        0        0", "  0:       0        0        \u0661", 1)
    assert bad != text
    with pytest.raises(InvalidArgument):
        Topology.from_xl_info(bad)


def test_xl_info_with_empty_distance_is_refused(fixture_text):
    text = fixture_text("xl-info-n-2node.txt")
    bad = text.replace("10,20", "10,,20", 1)
    assert bad != text
    with pytest.raises(InvalidArgument):
        Topology.from_xl_info(bad)


def test_parse_distances():
    from xapi_numa.core.topology import parse_distances

    assert parse_distances("10,21;21,10", 2) == [[10, 21], [21, 10]]
    for text in ("10,2١;21,10", "10,21", "10,,21;21,10", "10,21;21,10;", "9" * 400 + ",21;21,10"):
        with pytest.raises(InvalidArgument) as err:
            parse_distances(text, 2, "--distances")
        assert err.value.field == "--distances"


def test_cpus_near_memory_only_nodes_are_the_nearest_nodes_with_cpus():
    from xapi_numa.core.topology import CpuInfo, Node
    g = 1 << 30
    topo = Topology.of_cpus([Node(0, range(0, 4), 8 * g), Node(1, range(4, 8), 8 * g), Node(2, [], 8 * g),
                     Node(3, [], 8 * g)],
                    [[10, 20, 15, 20], [20, 10, 25, 20], [15, 25, 10, 20], [20, 20, 20, 10]],
                    [CpuInfo(c, c, c // 4, c // 4) for c in range(8)])
    assert topo.cpus_near([1]) == topo.cpus_of_nodes([1])
    assert topo.cpus_near([1, 2]) == topo.cpus_of_nodes([1])       # a node of the set has CPUs
    assert topo.cpus_near([2]) == topo.cpus_of_nodes([0])          # 15 < 25
    assert topo.cpus_near([3]) == topo.cpus_of_nodes([0, 1])       # a tie: both
    assert topo.cpus_near([]) == frozenset()


def test_settling_and_the_fix_up_never_write_an_empty_mask_for_memory_only_nodes():
    """Settling a VM placed on a memory-only node wrote an empty soft affinity (an empty hard
    one for strict, which Xen refuses), and the fix-up one for a VM whose memory is there."""
    from xapi_numa.core import affinity_fixup, settling
    from xapi_numa.core.host import DomainInfo, VcpuInfo
    from xapi_numa.core.policy import Policy
    from xapi_numa.core.snapshot import HostSnapshot
    from xapi_numa.core.topology import CpuInfo, Node
    g = 1 << 30
    topo = Topology.of_cpus([Node(0, range(0, 4), 8 * g, 8 * g), Node(1, range(4, 8), 8 * g, 8 * g), Node(2, [], 8 * g, 8 * g)],
                    [[10, 20, 15], [20, 10, 25], [15, 25, 10]], [CpuInfo(c, c, c // 4, c // 4) for c in range(8)])
    dom = DomainInfo(5, "A", "uuid-a", 2, g, g, False, "pvh")
    near = topo.cpus_of_nodes([0])
    for mode in ("preferred", "best_effort", "strict"):
        vcpus = [VcpuInfo(5, v, v, "running", near, near, 1.0) for v in (0, 1)]
        s = settling.plan(dom, vcpus, topo, Policy.parse(mode, "2"), frozenset({2}), {2: g >> 12}, None)
        assert all((a.soft is None or a.soft == near) and a.hard for a in s.actions), (mode, s.actions)
        assert any(a.soft == near or a.hard == near for a in s.actions)
    pages = {5: {0: 0, 1: 0, 2: g >> 12}}
    elsewhere = [VcpuInfo(5, v, v, "running", topo.all_cpus, topo.cpus_of_nodes([1]), 1.0) for v in (0, 1)]
    moves = affinity_fixup.plan(HostSnapshot(topo, 1.0, (dom,), {5: tuple(elsewhere)}, pages=pages))
    assert [a.soft for a in moves] == [near, near]
    there = [VcpuInfo(5, v, v, "running", topo.all_cpus, near, 1.0) for v in (0, 1)]
    assert affinity_fixup.plan(HostSnapshot(topo, 1.0, (dom,), {5: tuple(there)}, pages=pages)) == []


def test_placement_and_the_boot_pin_agree_on_the_cpus_near_memory_only_nodes():
    """Placement took the nearest CPUs of the policy's first node, the boot pin and settling
    of the lowest one: for ``preferred 3,2`` (both memory-only) they named different nodes."""
    from xapi_numa.core.placement import NodeLoads, Planner, Request
    from xapi_numa.core.policy import Policy
    g = 1 << 30
    dist = [[10, 20, 12, 20], [20, 10, 20, 12], [12, 20, 10, 20], [20, 12, 20, 10]]
    topo = Topology.from_arrays([0, 0, 1, 1], dist, [g, g, 4 * g, 4 * g], [g, g, 4 * g, 4 * g])
    placed = Planner(topo).place(NodeLoads([g // 2, g // 2, 4 * g, 4 * g], [0] * 4, [0] * 4),
                                 Request(2, 6 * g, Policy.parse("preferred", "3,2")))
    assert placed.soft == topo.cpus_near(placed.nodes) == topo.cpus_near(frozenset(placed.nodes))


def test_a_cpu_on_a_node_that_is_no_integer_is_refused_naming_it():
    """A node id of another type (1.0, True) ended in StopIteration, not a refusal."""
    for bad in (1.0, True, None, 5, -2):  # (-1 is OFFLINE: a CPU not online)
        with pytest.raises(InvalidArgument) as err:
            Topology.from_arrays([0, bad], [[10, 20], [20, 10]], [1, 1])
        assert err.value.field == "cpus" and "CPU 1 is on node" in err.value.message


# --- the nodes' CPUs against the per-CPU table (checked without regrouping: every start builds one) ---
from hypothesis import given, strategies as st  # noqa: E402

from xapi_numa.core.topology import Node, _nodes_match_cpus, cpus_by_node  # noqa: E402
from xapi_numa.backends.xen_topology import absent_marked  # noqa: E402
from xapi_numa.core.placement import NodeLoads, Planner, Request  # noqa: E402
from xapi_numa.core.policy import Policy  # noqa: E402
from xapi_numa.core.topology import OFFLINE  # noqa: E402

G = 1 << 30


def _regrouped(nodes, cpu_node):
    """The definition: grouping the table by node gives exactly each node's CPUs."""
    on = cpus_by_node(cpu_node)
    return on is not None and not set(on) - {n.id for n in nodes} and all(
        n.cpus == on.get(n.id, frozenset()) for n in nodes)


@given(st.integers(1, 4).flatmap(lambda k: st.tuples(
    st.lists(st.integers(-1, k), max_size=7),
    st.lists(st.frozensets(st.integers(-1, 7)), min_size=k, max_size=k),
    st.booleans())))
def test_nodes_match_cpus_is_the_regrouping(case):
    cpu_node, cpus, consistent = case
    if consistent:  # half the cases: nodes built from the table, so that matches are common
        on = cpus_by_node(cpu_node) or {}
        cpus = [on.get(i, frozenset()) for i in range(len(cpus))]
    nodes = [Node(i, c) for i, c in enumerate(cpus)]
    assert _nodes_match_cpus(nodes, cpu_node) == _regrouped(nodes, cpu_node)


def test_a_float_node_in_the_cpu_table_is_refused():
    assert not _nodes_match_cpus([Node(0, {0}), Node(1, {1})], [0, 1.0])


def test_absent_cpus_are_marked_offline():
    assert absent_marked([0, 1, 1, 0], 2) == [0, 1, 1, 0]
    assert absent_marked([0, 1, 0xFFFFFFFF, 0xFFFFFFFF], 2) == [0, 1, OFFLINE, OFFLINE]
    assert absent_marked([0, 0xFFFFFFFF, 1], 2) == [0, OFFLINE, 1]  # (a gap was refused: ENOTSUP)
    assert absent_marked([], 2) == []


# --- CPUs that are not online among those that are (smt=0, xen-hptool cpu-offline, hotplug slots) ---
def _parked() -> Topology:
    """2 nodes of 2 cores x 2 threads, booted with smt=0: each core's second thread parked."""
    o = OFFLINE
    return Topology.from_arrays([0, o, 0, o, 1, o, 1, o], [[10, 20], [20, 10]], [4 * G, 4 * G],
                                cpu_to_core=[0, 0, 1, 1, 0, 0, 1, 1], cpu_to_socket=[0, 0, 0, 0, 1, 1, 1, 1])


def test_a_cpu_not_online_is_on_no_node_and_in_no_set():
    topo = _parked()
    assert topo.all_cpus == {0, 2, 4, 6}
    assert topo.node_cpus == {0: {0, 2}, 1: {4, 6}}
    assert topo.cores_per_node() == [2, 2]  # (its online cores: a parked thread is no core more)
    assert topo.parse_cpus("all") == {0, 2, 4, 6} and topo.parse_cpus("node:1") == {4, 6}
    assert topo.format_cpus({0, 2, 4, 6}) == "all" and topo.nodes_of_cpus({2, 4}) == {0, 1}
    with pytest.raises(InvalidArgument) as err:
        topo.node_of(1)
    assert err.value.field == "cpu" and "0,2,4,6" in err.value.message
    with pytest.raises(InvalidArgument):
        topo.parse_cpus("1")
    assert topo.cpus_near({1}) == {4, 6}


def test_a_placement_on_a_host_with_parked_cpus_never_names_one():
    topo = _parked()
    placed = Planner(topo).place(NodeLoads([4 * G, 3 * G], [0, 0], [0, 0]),
                                 Request(2, 6 * G, Policy.parse("best_effort")))
    assert placed.soft <= topo.all_cpus and placed.soft == {0, 2, 4, 6}


def test_nodes_listing_a_cpu_not_online_are_refused():
    with pytest.raises(InvalidArgument) as err:
        Topology([Node(0, {0, 1})], [[10]], [0, OFFLINE], [0, 0], [0, 0])
    assert err.value.field == "cpus"


@given(st.lists(st.integers(-1, 2), max_size=9))
def test_the_online_cpus_are_the_nodes_cpus(cpu_node):
    topo = Topology.from_arrays(cpu_node, [[10, 20, 20], [20, 10, 20], [20, 20, 10]], [G, G, G])
    assert topo.all_cpus == {c for c, n in enumerate(cpu_node) if n != OFFLINE}
    assert frozenset().union(*topo.node_cpus.values()) == topo.all_cpus
    assert sum(map(len, topo.node_cpus.values())) == len(topo.all_cpus)
    assert all(topo.node_of(c) == n for c, n in enumerate(cpu_node) if n != OFFLINE)


def test_nodes_grouped_by_from_arrays_are_checked_again_once_changed():
    """from_arrays's nodes match its table by construction and are not checked again; an
    evolve with other CPU sets, another table, or a grouping that is not theirs, is."""
    import attrs
    t = Topology.from_arrays([0, 0, 1, 1], [[10, 20], [20, 10]], [1 << 30] * 2)
    assert t.with_free({0: 5}).nodes[0].memory_free == 5  # (the same sets: nothing to check)
    swapped = [attrs.evolve(t.nodes[0], cpus=t.nodes[1].cpus), attrs.evolve(t.nodes[1], cpus=t.nodes[0].cpus)]
    with pytest.raises(InvalidArgument):
        attrs.evolve(t, nodes=swapped)
    with pytest.raises(InvalidArgument):
        attrs.evolve(t, cpu_node=(1, 1, 0, 0))
    with pytest.raises(InvalidArgument):
        Topology(swapped, t.distances, t.cpu_node, t.cpu_core, t.cpu_socket, grouped=t._grouped)
