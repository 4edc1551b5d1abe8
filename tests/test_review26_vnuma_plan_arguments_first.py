"""The plugin's vnuma_plan checked its mode and half only after reading the VM from xapi:
``mode=bogus`` (or ``half`` without ``mode=split``, or ``mode=split`` without ``half``) on a
VM xapi does not know answered NUMA_UNKNOWN_VM, on a template with store=true the template's
refusal, and with xapi away NUMA_XAPI_UNREACHABLE, never the argument that was wrong.  They
are now refused first, as every other argument is, before anything is read."""
import pytest

from xapi_numa.errors import InvalidArgument
from xapi_numa.plugin.functions import FUNCTIONS

VM = "01234567-89ab-cdef-0123-456789abcdef"


class NoHost:
    """A context that fails the test if the function reads anything before refusing."""

    def __getattr__(self, name: str):
        raise AssertionError("read {} before refusing".format(name))


@pytest.mark.parametrize("args, field, said", [
    ({"mode": "bogus"}, "mode", "'bogus' is not a plan mode"),
    ({"mode": ""}, "mode", "'' is not a plan mode"),
    ({"mode": "SPLIT", "half": "0"}, "mode", "'SPLIT' is not a plan mode"),
    ({"half": "1"}, "half", "a follow plan takes none"),
    ({"mode": "follow", "half": "0", "store": "true"}, "half", "a follow plan takes none"),
    ({"mode": "split"}, "half", "a split plan needs the half"),
    ({"mode": " split ", "store": "true"}, "half", "a split plan needs the half"),
])
def test_a_bad_mode_or_half_is_refused_before_anything_is_read(args, field, said):
    with pytest.raises(InvalidArgument) as refused:
        FUNCTIONS["vnuma_plan"](NoHost(), dict(args, vm=VM))
    assert refused.value.field == field and said in refused.value.message, refused.value.message
