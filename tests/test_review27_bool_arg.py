"""A plugin's true/false argument refused said only the value: ``force: '' (allowed: true, false)``,
not what was wrong with it, where the other argument parsers say it (``is empty``, ``is not an
integer``).  It now says the value is empty, or is not true or false."""
import pytest

from xapi_numa.errors import InvalidArgument
from xapi_numa.plugin.args import bool_arg


@pytest.mark.parametrize("value, said", [("", "'' is empty"), ("  ", "'  ' is empty"),
                                         ("yes", "'yes' is not true or false"), ("1", "'1' is not true or false"),
                                         ("x" * 500, "is not true or false")])
def test_a_refused_boolean_says_what_is_wrong(value, said):
    with pytest.raises(InvalidArgument) as refused:
        bool_arg({"force": value}, "force")
    err = refused.value
    assert err.field == "force" and said in err.detail and err.allowed == "true, false", err.message
    assert len(err.message) < 120, err.message  # a long value is cut short


@pytest.mark.parametrize("value, read", [("true", True), (" FALSE ", False), ("True", True)])
def test_true_and_false_are_read(value, read):
    assert bool_arg({"force": value}, "force") is read
    assert bool_arg({}, "force", default=read) is read
