import pytest

from xapi_numa.errors import InvalidArgument
from xapi_numa.core.units import format_size, parse_size


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
