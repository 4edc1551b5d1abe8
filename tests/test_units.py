import pytest

from xapi_numa.errors import InvalidArgument
from xapi_numa.core.units import exact_size, format_size, parse_size

MIB = 1 << 20
GIB = 1 << 30


@pytest.mark.parametrize("text, value", [
    ("4G", 4 << 30), ("512M", 512 << 20), ("512MiB", 512 << 20), ("1.5G", 3 << 29),
    ("4096", 4096), ("2t", 2 << 40), ("64k", 64 << 10),
])
def test_parse(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "G", "4X", "-1G", "1.3B", "iB"])
def test_parse_errors(text):
    with pytest.raises(InvalidArgument) as err:
        parse_size(text, "--memory")
    assert err.value.field == "--memory" and "allowed" in err.value.message


def test_format():
    assert format_size(8 << 30) == "8G"
    assert format_size(1536 << 20) == "1536M"
    assert format_size(0) == "0B"
    assert format_size(3774872 << 10) == "3.6G"


# --- only ASCII digits, exact integers, bounded (issue 12 item 19) -------------------------------
@pytest.mark.parametrize("text", ["²", "4²G", "١G", "１G", "१२G", "4\u0663M", "1.٥G"])
def test_non_ascii_digits_are_refused(text):
    with pytest.raises(InvalidArgument) as err:
        parse_size(text, "--memory")
    assert err.value.field == "--memory" and "allowed" in err.value.message


def test_400_digit_size_is_too_large_not_overflow():
    with pytest.raises(InvalidArgument) as err:
        parse_size("9" * 400, "--memory")
    assert err.value.field == "--memory" and "too large" in err.value.message
    with pytest.raises(InvalidArgument) as err:
        parse_size("9" * 400 + "G", "--memory")
    assert "too large" in err.value.message


def test_fractions_are_exact_integers():
    # 0.1 GiB is 107374182.4 bytes: integer arithmetic says so; no float rounding hides it
    with pytest.raises(InvalidArgument) as err:
        parse_size("0.1G", "--memory")
    assert "whole number of bytes" in err.value.message
    assert parse_size("0.25K") == 256
    assert parse_size("1.50000000000000000000000000000000G") == 3 << 29
    with pytest.raises(InvalidArgument):
        parse_size("0.5B")


def test_integers_beyond_float_precision_are_exact():
    # 2**53 + 1: float() would turn it into 2**53
    assert parse_size("9007199254740993") == (1 << 53) + 1
    assert parse_size("9007199254740993B") == (1 << 53) + 1
    # 8 PiB + 1 byte written as a fraction of a PiB: a float rounds it to 8 PiB
    assert parse_size("8.00000000000000088817841970012523233890533447265625P") == (1 << 53) + 1


@pytest.mark.parametrize("text", ["4i", "4Bi", "4GBi", "4 G B", "4\u2003G", "4G\n", "1e3"])
def test_suffix_grammar_is_strict(text):
    with pytest.raises(InvalidArgument):
        parse_size(text, "--memory")


@pytest.mark.parametrize("text, value", [("4GiB", 4 << 30), ("4GB", 4 << 30), ("4Gi", 4 << 30),
                                          ("512B", 512), (" 8G ", 8 << 30), ("007M", 7 << 20)])
def test_suffix_forms(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("nbytes, said", [
    (7372 * MIB + MIB // 2, "7372.5M"),          # a tenth would round it to 7.2G
    (3686 * MIB + MIB // 4, "3686.25M"),
    (GIB + 4096, "1048580K"),                    # no short decimal of M or G is exact
    (7549380 * 1024, "7549380K"),
    (4 * GIB, "4G"),
    (12345, "12345B"),
])
def test_exact_size_is_short_and_parses_back(nbytes, said):
    assert exact_size(nbytes) == said
    assert parse_size(said) == nbytes
