import pytest
from hypothesis import given
from hypothesis import strategies as st

from xapi_numa.errors import InvalidArgument
from xapi_numa.core.policy import Policy


def test_defaults():
    p = Policy.parse()
    assert (p.mode, p.nodes, p.nearest, p.on_exhaust) == ("best_effort", (), False, "fallback")
    assert Policy.parse("", "", "") == p


@pytest.mark.parametrize("nodes, parsed, nearest", [
    ("1,3,0", (1, 3, 0), False),
    ("0-2,5", (0, 1, 2, 5), False),
    ("nearest", (), True),
    ("2,nearest", (2,), True),
    (" 1 , 0 ", (1, 0), False),
])
def test_node_lists(nodes, parsed, nearest):
    p = Policy.parse("preferred", nodes, "fail")
    assert (p.nodes, p.nearest) == (parsed, nearest)


@pytest.mark.parametrize("args, field, fragment", [
    (("sometimes", None, None), "mode", "allowed: any, best_effort, preferred, strict"),
    (("strict", None, "panic"), "on_exhaust", "allowed: fallback, fail"),
    (("strict", "1,1", None), "nodes", "listed twice"),
    (("strict", "nearest,1", None), "nodes", "must come last"),
    (("strict", "a", None), "nodes", "bad entry 'a'"),
    (("strict", "3-1", None), "nodes", "bad range"),
    (("strict", "0-", None), "nodes", "bad entry '0-' in '0-' (a range needs both ends, A-B)"),
    (("strict", "x", None), "nodes", "(node ids are ASCII digits)"),
    (("strict", "1,,2", None), "nodes", "empty entry"),
    (("strict", "99", None), "nodes", "node 99"),
    (("any", "1", None), "nodes", "mode 'any' takes no node list"),
    (("any", None, "fail"), "on_exhaust", "mode 'any' places nothing, so no node runs out"),
])
def test_errors_name_field_and_allowed_values(args, field, fragment):
    with pytest.raises(InvalidArgument) as err:
        Policy.parse(*args)
    assert err.value.field == field
    assert fragment in err.value.message
    assert err.value.xenapi_failure()[:2] == ["NUMA_INVALID_ARGUMENT", field]


@given(st.sampled_from(["best_effort", "preferred", "strict"]),
       st.lists(st.integers(0, 63), unique=True, max_size=8), st.booleans(),
       st.sampled_from(["fallback", "fail"]))
def test_canonical_round_trip(mode, nodes, nearest, on_exhaust):
    p = Policy(mode, tuple(nodes), nearest, on_exhaust)
    oc = p.to_other_config()
    assert set(oc) == {"numa_mode", "numa_nodes", "numa_on_exhaust"}
    assert Policy.from_other_config(oc) == p
    assert Policy.parse(**p.to_dict()) == p


@pytest.mark.parametrize("nodes", ["²", "١", "１", "१", "0-²", "1,١"])
def test_node_lists_take_only_ascii_digits(nodes):
    with pytest.raises(InvalidArgument) as err:
        Policy.parse("strict", nodes)
    assert err.value.field == "nodes" and "allowed" in err.value.message


def test_huge_node_number_is_refused():
    with pytest.raises(InvalidArgument) as err:
        Policy.parse("strict", "9" * 400)
    assert err.value.field == "nodes" and "0..63" in err.value.message


@pytest.mark.parametrize("other_config, key", [
    ({"numa_mode": "bogus"}, "numa_mode"),
    ({"numa_nodes": "x"}, "numa_nodes"),
    ({"numa_on_exhaust": "later"}, "numa_on_exhaust"),
    ({"numa_mode": "any", "numa_nodes": "1"}, "numa_nodes"),
])
def test_a_bad_stored_policy_is_named_by_its_other_config_key(other_config, key):
    """What the admin must fix is the VM's other_config key (set with xe vm-param-set),
    so that is the field the error names, with the allowed values."""
    with pytest.raises(InvalidArgument) as err:
        Policy.from_other_config(other_config)
    assert err.value.field == "other_config:" + key
    assert err.value.xenapi_failure()[:2] == ["NUMA_INVALID_ARGUMENT", "other_config:" + key]
    assert "allowed" in err.value.message


def test_a_strict_vm_keeps_its_memory_on_its_nodes_when_moved_by_hand():
    """core/policy.strict_forbids_move: listed nodes; where the engine chose (no list, or
    nearest after it), the nodes its hard affinity reaches; any node for other modes."""
    from xapi_numa.core.policy import strict_forbids_move
    node0, node1, node2 = frozenset({0, 1}), frozenset({2, 3}), frozenset({4, 5})
    on_1 = node1
    assert strict_forbids_move(Policy.parse("strict", "1"), 1, node1, on_1) is None
    assert "numa_nodes" in strict_forbids_move(Policy.parse("strict", "1"), 0, node0, node0 | node1)
    assert strict_forbids_move(Policy.parse("strict"), 1, node1, on_1) is None
    assert "placed on" in strict_forbids_move(Policy.parse("strict"), 0, node0, on_1)
    # placed on a nearest node after the list: the hard affinity reaches it
    assert strict_forbids_move(Policy.parse("strict", "1,nearest"), 2, node2, node1 | node2) is None
    assert strict_forbids_move(Policy.parse("strict", "1,nearest"), 0, node0, node1 | node2) is not None
    for mode in ("best_effort", "preferred", "any"):
        nodes = "" if mode == "any" else None
        assert strict_forbids_move(Policy.parse(mode, nodes), 0, node0, on_1) is None
