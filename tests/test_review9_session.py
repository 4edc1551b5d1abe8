"""Review 9: defects found in the changes a1b2ead..HEAD (each test failed before its fix)."""
import logging

import pytest

from xapi_numa.core.live_domains import LiveDomains
from xapi_numa.errors import StateError
from xapi_numa.state.home_tally import HomeTally
from tests.test_state_damaged_rows import MADE, NOT_UTF8, OTHER, _db, host, outstanding  # noqa: F401 (fixture)

__all__ = ["host"]


def test_a_tally_node_that_is_no_utf8_refuses_no_start(host, caplog):
    """Table.sums read its query with Python's sqlite3 default: a home_tally node holding text
    that is no UTF-8 raised sqlite3.OperationalError out of count() ("internal error" on every
    start) where a damaged tally is to be left unused with a warning naming the row."""
    host.spoil("home_tally", "node", NOT_UTF8)
    with caplog.at_level(logging.WARNING):
        assert HomeTally(_db(host, MADE)).count(LiveDomains.of({host.domid: OTHER}), 2) is None
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "tally is not used" in said and "table home_tally," in said and "column node" in said, said


def test_a_reservation_node_that_is_no_utf8_is_named(host):
    """The ledger's sums of leases expired: the same, for reservation_node's node."""
    host.spoil("reservation_node", "node", NOT_UTF8, "WHERE vm = 'vm-expired'")
    with pytest.raises(StateError) as err:
        outstanding(host)
    assert "table reservation_node," in err.value.message and "column node" in err.value.message, err.value.message


def test_a_lease_that_expires_at_infinity_is_refused_in_the_sums(host):
    """The expiry check looked for rows past infinity ("expires > inf"): a lease whose expiry
    is infinity itself (sqlite3: UPDATE reservation SET expires = 9e999) never expires either,
    and was counted for ever in the nodes' reserved sums (topology, top, the host report),
    while `reservations`, place and starts refuse it (expected a finite number)."""
    host.spoil("reservation", "expires", float("inf"), "WHERE vm = 'vm-live'")
    with pytest.raises(StateError) as err:
        outstanding(host)
    assert "table reservation," in err.value.message and "column expires" in err.value.message, err.value.message


def test_the_repeated_argument_check_reads_any_call_xmlrpc_reads():
    """The check looked for the args at methodCall/params/param[2]/value/struct, where xmlrpc's
    own reader takes a value wherever it stands (it has no use for <param>): a call that it
    read whole made the check raise IndexError, answered as the plugin crashing (a traceback
    logged as an error) instead of the call's own answer, or the repeated argument's."""
    from xapi_numa.plugin.boundary import respond
    from xapi_numa.plugin.protocol import parse_call
    bare = ("<methodCall><methodName>host_topology</methodName><params><value><string>s</string></value>"
            "<value><struct><member><name>a</name><value>1</value></member>{}</struct></value></params></methodCall>")
    assert parse_call(bare.format(""))[2] == {"a": "1"}
    twice = respond(["numa", bare.format("<member><name>a</name><value>2</value></member>")])
    assert "IndexError" not in twice and "NUMA_INVALID_ARGUMENT" in twice, twice
