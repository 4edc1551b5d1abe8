"""Decimal numbers as users type them: ASCII digits ``[0-9]+`` only.

Every parser of a number a user or a caller types (CPU and node lists, sizes,
policies, distances, vCPU masks) reads it here.  Python's ``int()`` accepts the
digits of every script (``١``, fullwidth ``１``, Devanagari ``१``) and
``str.isdigit()`` also says yes to superscripts such as ``²``, which ``int()``
then rejects with a ValueError: neither can be trusted with user input.  The
value is also bounded before it is converted, so a 400-digit number is a clear
"too large", never an OverflowError or a 10-million-element range.
"""

import re
from typing import Callable, Optional, TypeVar

from xapi_numa.errors import InvalidArgument

T = TypeVar("T")
_DIGITS = re.compile(r"[0-9]+")
# Longer than any id or size we read; keeps int() of hostile input cheap and
# under Python 3.11's 4300-digit conversion limit.
MAX_DIGITS = 40
SHOWN = 24  # characters of a bad value quoted back in an error


ASCII_SPACE = " \t\n\r\f\v"


def trim(text: str) -> str:
    """``text`` without ASCII spaces around it.  ``str.strip()`` also takes Unicode
    spaces (no-break, em), which would let ``'\u20034'`` pass as ``4`` while the
    digits themselves must be ASCII."""
    return text.strip(ASCII_SPACE)


def is_decimal(text: object) -> bool:
    """True for a non-empty string of ASCII digits and nothing else."""
    return isinstance(text, str) and _DIGITS.fullmatch(text) is not None


def shown(text: object, limit: int = SHOWN) -> str:
    """A bad value, quoted and cut short (to ``limit`` characters), for an error message."""
    quoted = repr(text)
    return quoted if len(quoted) <= limit else quoted[:limit - 4] + "...'"


PATH_SHOWN = 4096  # a path (PATH_MAX) is the admin's own: said whole, so that they find the file


def shown_path(path: object) -> str:
    """A path quoted for an error message, whole (:func:`shown` would cut it short)."""
    return shown(path, PATH_SHOWN)


def shown_digits(digits: str) -> str:
    """A (valid but too long) run of digits, unquoted and cut short."""
    return digits if len(digits) <= SHOWN else digits[:SHOWN - 3] + "..."


def parse_decimal(text: object, field: str, allowed: str, maximum: Optional[int] = None,
                  what: str = "number") -> int:
    """Read ``[0-9]+`` (surrounding spaces are the caller's business) as an int <= ``maximum``.

    Raises InvalidArgument naming ``field`` and ``allowed`` for anything else,
    and "too large" without converting numbers longer than ``maximum`` allows.
    """
    if not is_decimal(text):
        raise InvalidArgument(field, "{} is not a {} (ASCII digits 0-9 only)".format(shown(text), what), allowed)
    digits = text.lstrip("0") or "0"  # type: ignore[union-attr]
    limit = MAX_DIGITS if maximum is None else min(MAX_DIGITS, len(str(maximum)))
    if len(digits) > limit or (maximum is not None and int(digits) > maximum):
        raise InvalidArgument(field, "{} {} is too large".format(what, shown_digits(digits)), allowed)
    return int(digits)


def whole_number(text: str) -> int:
    """For command-line flags: ``[0-9]+`` only (``int()`` takes other scripts' digits
    too); a ValueError, which argparse reports naming the flag."""
    text = trim(text)
    if not is_decimal(text) or len(text) > MAX_DIGITS:
        raise ValueError(text)
    return int(text)


def decimal_number(text: str) -> float:
    """For command-line flags: ``[0-9]+`` with an optional ``.[0-9]+`` (ASCII only)."""
    whole, dot, fraction = trim(text).partition(".")
    if not is_decimal(whole) or (dot and not is_decimal(fraction)) or len(whole) > MAX_DIGITS:
        raise ValueError(text)
    return float(trim(text))


def _signed(read: Callable[[str], T]) -> Callable[[str], T]:
    """``read`` that also takes a leading minus sign: the type of a flag whose command
    checks its range, so that a negative value gets that one message (the range allowed),
    not the type's "0 or more" first."""
    def signed(text: str) -> T:
        text = trim(text)
        if text.startswith("-"):
            if text[1:2] in ("", *ASCII_SPACE):  # "- 5" is no number: the sign belongs to the digits
                raise ValueError(text)
            return -read(text[1:])  # type: ignore[operator]
        return read(text)
    return signed


signed_whole_number = _signed(whole_number)
signed_decimal_number = _signed(decimal_number)


def plain(value: float) -> str:
    """A number read by :func:`whole_number` or :func:`decimal_number`, written back for
    an error message: digits as typed up to 16 of them (``{:g}`` would show 123456789
    as 1.23457e+08), else the float's shortest exact text."""
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return shown_digits(repr(float(value)))


whole_number.__name__ = "whole number (0 or more, ASCII digits)"
decimal_number.__name__ = "number (0 or more, ASCII digits, e.g. 1.5)"
signed_whole_number.__name__ = "whole number (ASCII digits)"
signed_decimal_number.__name__ = "number (ASCII digits, e.g. 1.5)"
