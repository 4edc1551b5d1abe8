"""CPU and node lists in Xen's syntax, as ``xl`` reads them (the differences below).

A list is comma-separated tokens applied left to right (so order matters:
``0-3,^2`` is ``0,1,3`` while ``^2,0-3`` is ``0-3``).  A token is a CPU
``N``, a range ``A-B``, ``all``, or ``node:N`` / ``nodes:A-B`` / ``nodes:all``
(every CPU of those nodes); a leading ``^`` removes instead of adding
(``^all`` is refused, as by xl).  Empty tokens are skipped, like xl's
``strtok``.  ``none`` (what xl prints for an empty map) reads as the empty set.

Stricter than xl, on purpose (a typo is refused, never read as something else):
numbers are plain ASCII digits (xl's ``strtoul`` also takes ``+1`` and spaces
before a number: ``node: 1``, ``^ 1``).  More lenient: spaces around a whole
token are ignored (xl refuses ``1 ``), and ``none``, which xl prints but
refuses, is read.

Node lists (``parse_nodes``) use the same grammar over node ids, without the
``node:`` prefix.  Everything here is pure: the caller passes the universe.
"""
import re
from typing import AbstractSet, Dict, FrozenSet, Iterable, Mapping, Optional, Tuple

from xapi_numa.core.numbers import is_decimal, shown, shown_digits, trim
from xapi_numa.errors import InvalidArgument

def within(cpus: FrozenSet[int], bound: Optional[AbstractSet[int]]) -> FrozenSet[int]:
    """``cpus`` inside ``bound`` where that leaves any, else ``cpus`` (``bound`` None:
    no bound): a mask narrowed never to nothing, as Xen takes no empty affinity."""
    return frozenset(cpus & bound) or cpus if bound is not None else cpus


CPU_SYNTAX = "comma-separated CPUs or ranges (0-27,56-83), node:N, nodes:A-B, all; ^ excludes"
NODE_SYNTAX = "comma-separated node ids or ranges (0-1,3), all; ^ excludes"


def _host_range(known: AbstractSet[int], what: str) -> str:
    return "{}s {} on this host".format(what, format_ids(known) or "none")


def _read_id(digits: str, known: AbstractSet[int], field: str, token: str, text: str, what: str) -> int:
    """One id of a token, bounded by the host's largest id before it is converted."""
    if not is_decimal(digits):
        raise InvalidArgument(field, "bad token {} in {}: expected a {} number or range A-B (ASCII digits)".format(
            shown(token), shown(text), what))
    largest = max(known) if known else -1
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(max(largest, 0))) or int(significant) > largest:
        raise InvalidArgument(field, "{} {} in {} does not exist on this host".format(
            what, shown_digits(significant), shown(text)), _host_range(known, what))
    return int(significant)


def _parse_range(token: str, known: AbstractSet[int], field: str, text: str, what: str) -> Tuple[int, int]:
    """Parse ``N`` or ``A-B`` with A <= B (xl's parse_range), both within the host's ids.

    Bounding each end by the host's largest id first means ``0-10000000`` is
    refused at once, never expanded into ten million ids.
    """
    first, sep, second = token.partition("-")
    if not is_decimal(first) or (sep and not is_decimal(second)):
        raise InvalidArgument(field, "bad token {} in {}: expected a {} number or range A-B (ASCII digits)".format(
            shown(token), shown(text), what))
    low = _read_id(first, known, field, token, text, what)
    high = _read_id(second, known, field, token, text, what) if sep else low
    if high < low:
        raise InvalidArgument(field, "bad range {} in {}: {} < {}".format(shown(token), shown(text), high, low))
    return low, high


def check_known(ids: Iterable[int], known: AbstractSet[int], field: str, text: str, what: str) -> None:
    """Refuse ids the host does not have, quoting ``text``, the list as the user typed it."""
    missing = sorted(set(ids) - set(known))
    if missing:
        raise InvalidArgument(
            field,
            "{} {} in {} does not exist on this host".format(what, format_ids(missing), shown(text)),
            _host_range(known, what),
        )


def parse_cpus(
    text: str,
    all_cpus: AbstractSet[int],
    node_cpus: Mapping[int, AbstractSet[int]],
    field: str = "cpus",
) -> FrozenSet[int]:
    """Read a CPU list in xl syntax against a host's CPUs and nodes."""
    if not isinstance(text, str):
        raise InvalidArgument(field, f"expected a CPU list, got {type(text).__name__}", CPU_SYNTAX)
    result: set = set()
    tokens = [trim(t) for t in text.split(",")]
    if trim(text) == "none":
        return frozenset()
    if not any(tokens):
        raise InvalidArgument(field, "empty CPU list", CPU_SYNTAX)
    for token in tokens:
        if not token:
            continue
        negate = token.startswith("^")
        body = token[1:] if negate else token
        is_nodes = False
        for prefix in ("nodes:", "node:"):
            if body.startswith(prefix):
                body, is_nodes = body[len(prefix):], True
                break
        if body == "all":
            if negate:
                raise InvalidArgument(field, "can't combine '^' and 'all' in {}".format(shown(text)), CPU_SYNTAX)
            result |= set(all_cpus)
            continue
        known = node_cpus.keys() if is_nodes else all_cpus
        try:
            low, high = _parse_range(body, known, field, text, "node" if is_nodes else "CPU")
        except InvalidArgument as err:
            raise InvalidArgument(field, err.detail, err.allowed or CPU_SYNTAX) from None
        ids = range(low, high + 1)  # bounded by the host's largest id
        if is_nodes:
            check_known(ids, node_cpus.keys(), field, text, "node")
            cpus = set().union(*(node_cpus[n] for n in ids))
        else:
            check_known(ids, all_cpus, field, text, "CPU")
            cpus = set(ids)
        if negate:
            result -= cpus
        else:
            result |= cpus
    return frozenset(result)


def parse_nodes(text: str, all_nodes: AbstractSet[int], field: str = "nodes") -> FrozenSet[int]:
    """Read a node set (``0-1,3``, ``all``, ``^2``) against a host's node ids."""
    identity = {n: {n} for n in all_nodes}
    if not isinstance(text, str):
        raise InvalidArgument(field, f"expected a node list, got {type(text).__name__}", NODE_SYNTAX)
    if any(p in text for p in ("node:", "nodes:")):
        raise InvalidArgument(field, "{}: give node ids directly, without 'node:'".format(shown(text)), NODE_SYNTAX)
    try:
        return parse_cpus(text, all_nodes, identity, field)
    except InvalidArgument as err:
        allowed = err.allowed.replace("CPU", "node") if err.allowed and "host" in err.allowed else NODE_SYNTAX
        raise InvalidArgument(field, err.detail.replace("CPU", "node"), allowed) from None


_ID_RANGE = re.compile(r"[0-9]+(-[0-9]+)?")


def parse_ids(stored: str, maximum: Optional[int] = None) -> FrozenSet[int]:
    """:func:`format_ids`' text back to ids; a user's text goes through :func:`parse_cpus`
    or :func:`parse_nodes`.  ``maximum``: the highest id taken (ValueError above it, before
    any range is expanded), for text a hand could have typed: a journal's row in the state
    database, text handed over between processes."""
    out = set()
    for part in stored.split(","):
        if part:
            first, _, last = part.partition("-")
            if maximum is not None and not _ID_RANGE.fullmatch(part):  # (int() takes other scripts' digits)
                raise ValueError("{!r} is not an id or a range of ids".format(part))
            # (the digits counted before int(): a million of them would take it seconds)
            if maximum is not None and (max(len(first.lstrip("0")), len(last.lstrip("0"))) > len(str(maximum))
                                        or max(int(first), int(last or first)) > maximum):
                raise ValueError("{} is above {}".format(part, maximum))
            low, high = int(first), int(last or first)
            out.update(range(low, high + 1))
    return frozenset(out)


def format_ids(ids: Iterable[int]) -> str:
    """Canonical range form: ``0-27,56-83``; empty gives ``""``."""
    ordered = sorted(set(ids))
    parts = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def format_cpus(cpus: AbstractSet[int], all_cpus: AbstractSet[int] = frozenset()) -> str:
    """Print a CPU set as xl does: ``all``, ``none`` or ranges."""
    if not cpus:
        return "none"
    if all_cpus and set(cpus) == set(all_cpus):
        return "all"
    return format_ids(cpus)


def mask_of(ids: Iterable[int]) -> int:
    """Bit mask with bit i set for each id (the simulator's fast form)."""
    mask = 0
    for i in ids:
        mask |= 1 << i
    return mask


def ids_of(mask: int) -> FrozenSet[int]:
    """Inverse of :func:`mask_of`."""
    if mask < 0:  # would never shift down to 0
        raise InvalidArgument("mask", "{} is negative".format(mask), "a bitmask of CPU or node ids, 0 or more")
    out = []
    i = 0
    while mask:
        if mask & 1:
            out.append(i)
        mask >>= 1
        i += 1
    return frozenset(out)


class BitmapReader:
    """Xen's CPU and node bit maps (byte i, bit j: id 8i + j) as sets, each distinct map
    decoded once.  A start counts every vCPU's home, so it reads two maps per vCPU of
    every domain (20 000 on a host of 1000 VMs), and they are nearly all the same few
    (every CPU, one node's): decoded anew each time they cost a start over 100 ms."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._known: Dict[Tuple[bytes, Optional[FrozenSet[int]]], FrozenSet[int]] = {}

    def read(self, raw: bytes, within: Optional[FrozenSet[int]] = None) -> FrozenSet[int]:
        """The ids set in ``raw`` (those in ``within`` only, when given).  The same map
        gives the same set object each time, so its hash is worked out once too."""
        key = (raw, within)
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= self.limit:  # a host with that many distinct maps: start again
                self._known.clear()
            bits = bin(int.from_bytes(raw, "little"))[:1:-1]  # lowest id first
            known = frozenset(i for i, bit in enumerate(bits) if bit == "1")
            known = self._known[key] = known & within if within is not None else known
        return known
