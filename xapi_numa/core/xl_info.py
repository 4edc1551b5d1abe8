"""The text of ``xl info -n``, read into its rows.  Pure.

What this module owns: the two sections a host's topology is made of
(``cpu_topology``: cpu, core, socket, node; ``numa_info``: node, memsize, memfree,
distances), read strictly -- a malformed row in either is refused, not skipped, and
numbers are ASCII digits, bounded -- for :meth:`~xapi_numa.core.topology.Topology.from_xl_info`.
"""
import re
from typing import List, Tuple

from xapi_numa.core.numbers import parse_decimal, shown
from xapi_numa.errors import InvalidArgument

# ``xl info -n`` rows.  Explicit ASCII classes: \d would read other scripts' digits.
_XL_SECTION = re.compile(r"[a-z_]+[ \t]+:.*|device topology.*")
_XL_CPU_ROW = re.compile(r"([0-9]+):[ \t]+([0-9]+)[ \t]+([0-9]+)[ \t]+([0-9]+)")
_XL_NODE_ROW = re.compile(r"([0-9]+):[ \t]+([0-9]+)[ \t]+([0-9]+)[ \t]+([0-9,]+)")
_XL_HEADERS = ("cpu:", "node:")
XL_FIELD = "xl info -n"
# Larger than any id, count or MiB figure a host reports; bounds hostile text.
_XL_MAX = (1 << 48) - 1


def _xl_number(text: str) -> int:
    return parse_decimal(text, XL_FIELD, "the output of xl info -n", maximum=_XL_MAX)


def xl_info_rows(text: str) -> Tuple[List[Tuple[int, ...]], List[Tuple[int, int, int, List[int]]]]:
    """The cpu_topology and numa_info rows; a malformed row in either section is refused, not skipped."""
    if not isinstance(text, str):
        raise InvalidArgument(XL_FIELD, "expected text, got {}".format(type(text).__name__))
    cpu_rows: List[Tuple[int, ...]] = []
    node_rows: List[Tuple[int, int, int, List[int]]] = []
    section = None
    for line in text.splitlines():
        stripped = line.strip(" \t")
        if stripped.startswith("cpu_topology"):
            section = "cpu"
        elif stripped.startswith("numa_info"):
            section = "numa"
        elif _XL_SECTION.fullmatch(stripped):
            section = None
        elif section is None or not stripped or stripped.startswith(_XL_HEADERS):
            continue
        elif section == "cpu":
            cpu_rows.append(tuple(_xl_number(x) for x in _xl_row(_XL_CPU_ROW, stripped).groups()))
        else:
            m = _xl_row(_XL_NODE_ROW, stripped)
            dists = [_xl_number(d) for d in m.group(4).split(",")]
            node_rows.append((_xl_number(m.group(1)), _xl_number(m.group(2)), _xl_number(m.group(3)), dists))
    return cpu_rows, node_rows


def _xl_row(pattern, line: str):
    m = pattern.fullmatch(line)
    if m is None:
        raise InvalidArgument(XL_FIELD, "unexpected line {}".format(shown(line)))
    return m
