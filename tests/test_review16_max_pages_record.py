"""Review 16: a mover killed between raising a domain's max_pages and giving it back left
it raised for good.  The batch record now keeps the toolstack's value (libxenuma's
record version 5, tested over the fake libxenctrl in test_native_c.py); what recovery
says of it is the Xen adapter's, tested here without Xen."""
from xapi_numa.core.memory_move import max_pages_note


def test_a_raise_given_back_is_said_with_the_toolstacks_value():
    note = max_pages_note(7, restored=262144, unknown=0)
    assert note is not None and "domain 7" in note and "262144" in note and "set back" in note


def test_an_older_record_says_the_maximum_may_stay_raised():
    note = max_pages_note(7, restored=0, unknown=1)
    assert note is not None and "domain 7" in note and "older version" in note
    assert "stays raised" in note


def test_no_raise_no_note():
    assert max_pages_note(7, restored=0, unknown=0) is None
