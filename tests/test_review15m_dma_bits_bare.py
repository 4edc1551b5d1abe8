"""``dma_bits`` with no ``=value`` on Xen's command line: Xen's parse_params gives an
option without '=' the empty string as its value, and an integer option takes
simple_strtoll("") = 0 (no complaint: nothing is left over), which is "the default
width".  The adapter skipped such a word, so an earlier ``dma_bits=`` stood."""
from xapi_numa.core import dma_zone

GiB = 1 << 30


def test_a_bare_dma_bits_resets_the_width_to_xens_default():
    assert dma_zone.dma_width("dma_bits=30 dma_bits", [256 * GiB, 256 * GiB]) == 32
    assert dma_zone.dma_width("dma_bits=30 dma_bits", [64 * GiB]) is None  # one node: no zone


def test_a_later_value_still_wins_over_a_bare_one():
    assert dma_zone.dma_width("dma_bits dma_bits=30", [256 * GiB, 256 * GiB]) == 30
