"""Review 3: _nodes_match_cpus (core/topology.py) was to be exactly the old check
(regrouping cpu_node with cpus_by_node and comparing each node's CPUs).  A node whose
CPU set holds a float (Node's converter is frozenset: 0.0 == 0 goes in as is) made the
old check compare equal sets; the new one indexes the per-CPU table with it and raises
TypeError, which is no NumaError: a caller that reports InvalidArgument gets a crash."""
import pytest

from xapi_numa.core.topology import Node, Topology, _nodes_match_cpus, cpus_by_node
from xapi_numa.errors import InvalidArgument


def _old(nodes, cpu_node):
    on = cpus_by_node(cpu_node)
    ids = [n.id for n in nodes]
    return not (on is None or set(on) - set(ids) or any(n.cpus != on.get(n.id, frozenset()) for n in nodes))


@pytest.mark.parametrize("nodes, cpu_node", [
    ([Node(0, [0.0])], [0]),                      # old: accepted (the sets are equal)
    ([Node(0, []), Node(1, [0.0])], [1]),         # old: accepted
    ([Node(0, []), Node(1, [0.0])], [3]),         # old: refused with InvalidArgument
])
def test_the_fast_check_answers_as_the_old_one(nodes, cpu_node):
    assert _nodes_match_cpus(nodes, cpu_node) == _old(nodes, cpu_node)


def test_a_float_cpu_in_a_node_is_refused_as_an_invalid_argument_not_a_type_error():
    with pytest.raises(InvalidArgument):
        Topology([Node(0, []), Node(1, [0.0])], [[10, 20], [20, 10]], [3], [0], [0])
