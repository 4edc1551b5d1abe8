"""Memory sizes: parsing what users type ("4G", "512MiB", "1.5G") and printing bytes.

Sizes are read exactly, in integers: a fraction is kept as numerator and
power of ten, never as a float, so ``1.5G`` is exact and ``0.1G`` (not a whole
number of bytes) is refused rather than rounded.  Digits are ASCII only (see
:mod:`xapi_numa.core.numbers`) and sizes are bounded before any arithmetic.
Each size field has one range (:class:`SizeRange`), stated the same way in every
refusal of that field.
"""

import re

import attrs

from xapi_numa.core.numbers import is_decimal, parse_decimal, shown
from xapi_numa.errors import InvalidArgument

PAGE_SIZE = 4096
PAGE_SHIFT = 12

# number, optional fraction, then a binary unit with optional "i"/"B", or a bare "B".
# Explicit ASCII classes: \d and \s would also match other scripts' digits and spaces.
_SIZE_RE = re.compile(r"[ \t]*([0-9]+)(?:\.([0-9]+))?[ \t]*(?:([kmgtp])(i?b?)|(b))?[ \t]*", re.IGNORECASE)
_FACTOR = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
MAX_SIZE = 1 << 60  # 1 EiB: far beyond any host, small enough for every C field we fill
# With factors up to 2**50, a fraction with more than 50 significant decimals can
# never come to whole bytes (10**d must divide fraction * 2**50), so stop there.
_MAX_FRACTION_DIGITS = 50
# the most decimal places exact_size says a size with (more are exact but unreadable)
_EXACT_DIGITS = 3
_UNITS = (("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10))


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


def exact_size(nbytes: int) -> str:
    """A size as one types it to give exactly ``nbytes`` (a refusal's one allowed value): :func:`format_size`
    where that is exact, else in the largest unit it is a decimal of at most three places in ("7372.5M"), else
    the largest unit it is whole in ("1048580K" for 1 GiB and 4 KiB, not "1.0G")."""
    said = format_size(nbytes)
    if "." not in said:
        return said
    for unit, shift in _UNITS:  # the largest unit it is whole in or a short decimal of ("7372.5M")
        for digits in range(_EXACT_DIGITS + 1):
            scaled = nbytes * 10 ** digits
            if nbytes >= 1 << shift and scaled & ((1 << shift) - 1) == 0:
                whole, fraction = divmod(scaled >> shift, 10 ** digits)
                return f"{whole}.{fraction:0{digits}d}{unit}" if digits else f"{whole}{unit}"
    return f"{nbytes}B"


SIZE_FORMS = "a number of bytes or a number with K, M, G, T or P (binary units), e.g. 4G, 512M, 1.5G"


@attrs.frozen
class SizeRange:
    """The sizes one field takes.  Every refusal of that field, and its help, states
    them as :attr:`allowed` says them: one limit per field, said one way, and exactly
    (:func:`exact_size`), so that the bound stated is one the field takes when typed back."""

    low: int = 0
    high: int = MAX_SIZE
    why: str = ""  # what the bounds are, e.g. "one VM"

    @property
    def allowed(self) -> str:
        return "{} .. {}{}, as {}".format(exact_size(self.low), exact_size(self.high),
                                          " ({})".format(self.why) if self.why else "", SIZE_FORMS)

    def check(self, value: int, field: str, shown_as: str) -> int:
        """``value`` (typed as ``shown_as``) if it is in range, else InvalidArgument."""
        if value < self.low:
            raise InvalidArgument(field, "{} is less than {}".format(shown_as, exact_size(self.low)), self.allowed)
        if value > self.high:
            raise InvalidArgument(field, "{} is too large: more than {}".format(shown_as, exact_size(self.high)),
                                  self.allowed)
        return value


ANY_SIZE = SizeRange()
MAX_VM_MEMORY = 1 << 50  # 1P: a VM's memory (static-max) at most
VM_MEMORY = SizeRange(1, MAX_VM_MEMORY, "one VM")


def parse_size(text: str, field: str = "size", sizes: SizeRange = ANY_SIZE) -> int:
    """Parse a size in bytes; suffixes are binary (K=1024), as in xe and xl.  ``sizes``:
    the field's range, named in every refusal (a syntax error included)."""
    allowed = sizes.allowed
    match = _SIZE_RE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise InvalidArgument(field, "{} is not a size".format(shown(text)), allowed)
    whole, fraction, unit = match.group(1, 2, 3)
    factor = _FACTOR[(unit or "").lower()]
    fraction = (fraction or "").rstrip("0")
    if len(fraction) > _MAX_FRACTION_DIGITS:
        raise InvalidArgument(field, "{} is not a whole number of bytes".format(shown(text)), allowed)
    # bound the whole part first: never multiply a 400-digit number
    number = parse_decimal(whole, field, allowed, maximum=MAX_SIZE, what="size")
    scale = 10 ** len(fraction)
    numerator = (number * scale + (int(fraction) if is_decimal(fraction) else 0)) * factor
    if numerator % scale:
        raise InvalidArgument(field, "{} is not a whole number of bytes".format(shown(text)), allowed)
    return sizes.check(numerator // scale, field, shown(text))


def bytes_to_pages(nbytes: int) -> int:
    """Pages needed to hold nbytes (rounded up)."""
    return (nbytes + PAGE_SIZE - 1) >> PAGE_SHIFT
