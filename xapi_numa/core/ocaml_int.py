"""Numbers as xapi reads them from string maps (``platform``, ``VCPUs_params``): OCaml's
``int_of_string``.

It takes an optional sign, a ``0x``/``0o``/``0b``/``0u`` prefix and ``_`` between
digits, into a 63-bit int: a decimal beyond its range fails, while hex, octal and
binary up to 2^63 - 1 wrap into the negatives.  xapi falls back to a default
wherever this fails (``Xapi_xenops.int``), so what it builds from such a key
follows what this module answers.  Pure: no I/O.
"""
import re
from typing import Optional

OCAML_INT = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F][0-9a-fA-F_]*|0[oO][0-7][0-7_]*|0[bB][01][01_]*"
                       r"|(?:0[uU])?[0-9][0-9_]*)")
_BASES = {"x": 16, "o": 8, "b": 2, "u": 10}
_MAX = (1 << 62) - 1  # OCaml's max_int on 64-bit hosts
_DIGITS = 64  # more significant digits than any value below 2^64 has, in any base: overflows


def ocaml_int(text: str) -> Optional[int]:
    """``int_of_string text``, or None where OCaml raises ``Failure``."""
    if not OCAML_INT.fullmatch(text):
        return None
    negative = text.startswith("-")
    body = text.lstrip("+-")
    prefix = body[1].lower() if len(body) > 1 and body[0] == "0" and body[1].isalpha() else ""
    # no length limit in OCaml: '_'s and leading zeros cost nothing, only the value counts
    digits = (body[2:] if prefix else body).replace("_", "").lstrip("0") or "0"
    if len(digits) > _DIGITS:
        return None
    value = int(digits, _BASES.get(prefix, 10))
    if not prefix:  # plain decimal is signed: min_int .. max_int
        return None if value > _MAX + negative else (-value if negative else value)
    if value > 2 * _MAX + 1:  # 0x, 0o, 0b, 0u: any 63-bit pattern, the sign applied after
        return None
    bits = (-value if negative else value) % (1 << 63)
    return bits - (1 << 63) if bits > _MAX else bits
