import pytest
from hypothesis import given
from hypothesis import strategies as st

from xapi_numa.core.cpuset import format_cpus, format_ids, ids_of, mask_of, parse_cpus, parse_nodes
from xapi_numa.errors import InvalidArgument

ALL = frozenset(range(8))
NODES = {0: frozenset(range(4)), 1: frozenset(range(4, 8))}


def p(text):
    return parse_cpus(text, ALL, NODES)


@pytest.mark.parametrize("text, expected", [
    ("0-3,5", {0, 1, 2, 3, 5}),
    ("3", {3}),
    ("all", set(ALL)),
    ("nodes:all", set(ALL)),
    ("all,nodes:all", set(ALL)),
    ("all,^nodes:0,all", set(ALL)),     # xl's own test vector
    ("^0", set()),                        # "cpumap: none"
    ("all,^3", ALL - {3}),
    ("node:1", set(range(4, 8))),
    ("nodes:0-1", set(ALL)),
    ("nodes:1,^6", {4, 5, 7}),
    ("0-3,^2", {0, 1, 3}),
    ("^2,0-3", {0, 1, 2, 3}),             # order matters, as in xl
    ("1,,2", {1, 2}),                     # empty tokens are skipped (strtok)
    ("none", set()),
])
def test_xl_syntax(text, expected):
    assert p(text) == frozenset(expected)


@pytest.mark.parametrize("text, fragment", [
    ("foo", "'foo'"),
    ("3-1", "3-1"),
    ("^all", "'^' and 'all'"),
    ("9", "CPU 9"),
    ("node:2", "node 2"),
    ("1-", "'1-'"),
    ("", "empty"),
    ("0x3", "'0x3'"),
])
def test_errors_name_the_token(text, fragment):
    with pytest.raises(InvalidArgument) as err:
        p(text)
    assert fragment in err.value.message
    assert err.value.field == "cpus"
    assert "allowed" in err.value.message


def test_parse_nodes():
    assert parse_nodes("0,2-3", frozenset(range(4))) == {0, 2, 3}
    assert parse_nodes("all,^1", frozenset(range(4))) == {0, 2, 3}
    with pytest.raises(InvalidArgument) as err:
        parse_nodes("node:1", frozenset(range(4)))
    assert "without 'node:'" in err.value.message
    with pytest.raises(InvalidArgument) as err:
        parse_nodes("7", frozenset(range(4)))
    assert "node 7" in err.value.message and err.value.field == "nodes"


def test_format():
    assert format_ids({0, 1, 2, 3, 56, 57, 83}) == "0-3,56-57,83"
    assert format_cpus(set(), ALL) == "none"
    assert format_cpus(ALL, ALL) == "all"
    assert format_cpus({1, 3}, ALL) == "1,3"


cpu_sets = st.frozensets(st.integers(min_value=0, max_value=255))


@given(cpu_sets)
def test_round_trip(cpus):
    universe = frozenset(range(256))
    text = format_cpus(cpus, universe)
    assert parse_cpus(text, universe, {}) == cpus


@given(cpu_sets)
def test_canonical_form_is_stable(cpus):
    universe = frozenset(range(256))
    once = format_cpus(cpus, universe)
    assert format_cpus(parse_cpus(once, universe, {}), universe) == once


@given(cpu_sets)
def test_mask_round_trip(cpus):
    assert ids_of(mask_of(cpus)) == cpus
