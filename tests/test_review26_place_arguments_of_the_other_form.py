"""The plugin's place has two forms: ``vm`` (a VM about to start, its size, type and policy read
from xapi) and a what-if (``vcpus``, ``memory``, with ``mode``, ``nodes``, ``on_exhaust``,
``type``).  An argument of the one form given with the other was refused as "unknown
argument", though the function documents it: ``vm=... type=pv`` answered "type: unknown
argument (allowed: dry_run, start_owner, vm)", and a caller who meant the VM to be placed as
PV, or strictly on node 1, was told the argument does not exist.  The refusal now says which
form takes it.  (Both still change nothing: they are refused before xapi or the host is read.)"""
import pytest

from xapi_numa.errors import InvalidArgument
from xapi_numa.plugin.functions import FUNCTIONS

VM = "01234567-89ab-cdef-0123-456789abcdef"


class NoHost:
    """A context that fails the test if the function reads anything before refusing."""

    def __getattr__(self, name: str):
        raise AssertionError("read {} before refusing".format(name))


@pytest.mark.parametrize("args, field", [
    ({"vm": VM, "type": "pv"}, "type"),
    ({"vm": VM, "mode": "strict", "nodes": "1"}, "mode"),
    ({"vm": VM, "nodes": "1"}, "nodes"),
    ({"vm": VM, "on_exhaust": "fail", "dry_run": "true"}, "on_exhaust"),
    ({"vm": VM, "vcpus": "2"}, "vcpus"),
    ({"vm": VM, "memory": "1G", "vcpus": "2"}, "memory"),
    ({"vcpus": "2", "memory": "1G", "start_owner": "x"}, "start_owner"),
])
def test_an_argument_of_the_other_form_is_refused_saying_which_form_takes_it(args, field):
    with pytest.raises(InvalidArgument) as refused:
        FUNCTIONS["place"](NoHost(), args)
    err = refused.value
    assert err.field == field, err.message
    assert "unknown argument" not in err.message, err.message
    form = "with vm" if "vm" in args else "without vm"
    assert "not taken {}".format(form) in err.detail, err.message
    assert "vcpus" in err.allowed and "vm" in err.allowed, err.message


@pytest.mark.parametrize("args", [{"vm": VM, "colour": "red"}, {"vcpus": "2", "memory": "1G", "colour": "red"}])
def test_an_argument_of_neither_form_is_still_unknown(args):
    with pytest.raises(InvalidArgument) as refused:
        FUNCTIONS["place"](NoHost(), args)
    assert refused.value.field == "colour" and refused.value.detail == "unknown argument"
