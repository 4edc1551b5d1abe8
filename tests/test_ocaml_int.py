"""Numbers as xapi reads them from string maps: OCaml's int_of_string (core/ocaml_int)."""
import pytest

from xapi_numa.core.ocaml_int import ocaml_int

MAX = (1 << 62) - 1


@pytest.mark.parametrize("text, value", [
    ("4", 4), ("+7", 7), ("-5", -5), ("1_000", 1000), ("0x10", 16), ("0X1f", 31), ("0o17", 15), ("0b101", 5),
    ("0u12", 12), (str(MAX), MAX), ("-" + str(MAX + 1), -MAX - 1),
    ("0x7fffffffffffffff", -1), ("0x4000000000000000", -MAX - 1), ("-0x4000000000000000", -MAX - 1),
    ("-0x1", -1),
])
def test_what_ocaml_reads(text, value):
    assert ocaml_int(text) == value


@pytest.mark.parametrize("text", ["", " 4", "4 ", "x", "1.5", "0x", "_1", "--1", str(MAX + 1),
                                  "0x8000000000000000", "1" * 200, "\u0664"])
def test_what_ocaml_refuses(text):
    assert ocaml_int(text) is None


@pytest.mark.parametrize("text, value", [
    ("0" * 100 + "8", 8),             # leading zeros: parse_intnat's running value stays 0, no overflow
    ("1" + "_" * 100 + "6", 16),      # '_' is skipped wherever it follows a digit, however many
    ("0x" + "0" * 90 + "1f", 31),
    ("-" + "0" * 90 + str(MAX + 1), -MAX - 1),
])
def test_a_long_text_is_read_as_ocaml_reads_it(text, value):
    """int_of_string has no length limit: only the value's size counts (was None past 80 characters)."""
    assert ocaml_int(text) == value


@pytest.mark.parametrize("text", ["1" + "0" * 5000, "0x1" + "0" * 16, "0b1" + "0" * 63, "0o2" + "0" * 21])
def test_a_value_too_big_is_refused_whatever_its_length(text):
    assert ocaml_int(text) is None
