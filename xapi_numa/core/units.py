"""Memory sizes: parsing what users type ("4G", "512MiB") and printing bytes."""

import re

from xapi_numa.errors import InvalidArgument

PAGE_SIZE = 4096
PAGE_SHIFT = 12

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_FACTOR = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}

SIZE_SYNTAX = "a number of bytes or a number with K, M, G or T (binary units), e.g. 4G, 512M"


def parse_size(text: str, field: str = "size") -> int:
    """Parse a size in bytes; suffixes are binary (K=1024), as in xe and xl."""
    match = _SIZE_RE.match(str(text))
    if not match:
        raise InvalidArgument(field, f"{text!r} is not a size", SIZE_SYNTAX)
    number, unit, tail = match.groups()
    if tail and tail.lower() == "ib" and not unit:
        raise InvalidArgument(field, f"{text!r} is not a size", SIZE_SYNTAX)
    value = float(number) * _FACTOR[unit.lower()]
    if value != int(value):
        raise InvalidArgument(field, f"{text!r} is not a whole number of bytes", SIZE_SYNTAX)
    return int(value)


def format_size(nbytes: int) -> str:
    """Human form with binary units: exact when whole ("4G", "1536M"), else one decimal."""
    for unit, shift in _UNITS:
        if nbytes >= 1 << shift:
            if nbytes & ((1 << shift) - 1) == 0:
                return f"{nbytes >> shift}{unit}"
            if shift > 20 and nbytes & ((1 << 20) - 1) == 0 and nbytes < 10 << shift:
                return f"{nbytes >> 20}M"
            tenths = (nbytes * 10 + (1 << (shift - 1))) >> shift  # rounded, integers only
            return f"{tenths // 10}.{tenths % 10}{unit}"
    return f"{nbytes}B"


_UNITS = (("T", 40), ("G", 30), ("M", 20), ("K", 10))


def bytes_to_pages(nbytes: int) -> int:
    """Pages needed to hold nbytes (rounded up)."""
    return (nbytes + PAGE_SIZE - 1) >> PAGE_SHIFT
