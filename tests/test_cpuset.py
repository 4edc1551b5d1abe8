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


# --- only ASCII digits; ranges bounded by the host (issue 12 item 19) ---------------------------
@pytest.mark.parametrize("text", ["²", "1,²", "0-²", "١", "１", "१", "node:١", "0-١", "^１", "1\u0660"])
def test_only_ascii_digits_are_numbers(text):
    with pytest.raises(InvalidArgument) as err:
        p(text)
    assert err.value.field == "cpus"
    assert "allowed" in err.value.message


@pytest.mark.parametrize("text", ["²", "١", "１,0", "0-१"])
def test_node_lists_take_only_ascii_digits(text):
    with pytest.raises(InvalidArgument) as err:
        parse_nodes(text, frozenset(range(4)))
    assert err.value.field == "nodes"


def test_huge_range_is_refused_without_building_it():
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(InvalidArgument) as err:
            parse_cpus("0-10000000", ALL, NODES, "--soft")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.field == "--soft"
    assert "10000000" in err.value.message and "0-7" in err.value.message
    assert peak < 1 << 20, f"refusing a huge range used {peak} bytes"


def test_huge_node_range_is_refused_without_building_it():
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(InvalidArgument) as err:
            parse_cpus("nodes:0-100000000", ALL, NODES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "node" in err.value.message and peak < 1 << 20


def test_400_digit_cpu_is_refused_with_the_hosts_range():
    with pytest.raises(InvalidArgument) as err:
        p("9" * 400)
    assert err.value.field == "cpus" and "0-7" in err.value.message
    assert len(err.value.message) < 300  # the number is not echoed in full


@given(st.lists(st.integers(0, 511), max_size=64), st.sampled_from([None, frozenset(range(0, 512, 3))]))
def test_bitmap_reader_reads_xens_bit_maps_and_gives_the_same_set_each_time(ids, within):
    from xapi_numa.core.cpuset import BitmapReader
    raw = bytearray(64)
    for i in ids:
        raw[i // 8] |= 1 << (i % 8)
    reader = BitmapReader(limit=3)
    want = frozenset(ids) & within if within is not None else frozenset(ids)
    first = reader.read(bytes(raw), within)
    assert first == want and reader.read(bytes(raw), within) is first
    for k in range(5):  # past its limit it starts again, still right
        reader.read(bytes([k]), within)
    assert reader.read(bytes(raw), within) == want


def test_ids_handed_between_processes_are_bounded_and_ascii():
    """A background mover's --guest-cpus (the claimer's text, which a hand could type):
    ``0-4000000000`` built a set of four billion ids; other scripts' digits were read as ids."""
    import argparse

    import pytest

    from xapi_numa.cli import moves
    from xapi_numa.core.cpuset import parse_ids
    from xapi_numa.errors import InvalidArgument

    assert parse_ids("0-3,8", 65535) == {0, 1, 2, 3, 8} and parse_ids("", 65535) == frozenset()
    for text in ("0-4000000000", "65536", "\u0661", "1-\u0662", " 3", "+3", "3-"):
        with pytest.raises(ValueError):
            parse_ids(text, 65535)
        with pytest.raises(InvalidArgument) as err:
            moves._xapi_view(argparse.Namespace(guest_cpus=text, lock_fd=3), None, 0)
        assert err.value.field == "--guest-cpus" and "0..65535" in err.value.message
