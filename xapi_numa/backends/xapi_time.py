"""The pool's one clock: the pool master's time, as xapi tells it (``host.get_servertime``).

Hosts of a pool keep their own clocks, and xapi lets them drift apart by up
to 5 minutes before it even raises an alert.  A time one host writes for
another to judge (the owner key's expiry) must come from a clock both read:
the master's.  Its answer is whole seconds, which is all a lease of minutes
needs.
"""
import calendar
import time
import xmlrpc.client

from xapi_numa.backends.xapi import call
from xapi_numa.backends.xapi_errors import XapiError

SERVERTIME_FORMAT = "%Y%m%dT%H:%M:%SZ"  # xapi's dateTime.iso8601, always UTC


def parse_servertime(value) -> float:
    """Seconds since the epoch from xapi's dateTime (an XML-RPC DateTime or its text)."""
    text = value.value if isinstance(value, xmlrpc.client.DateTime) else str(value)
    try:
        return float(calendar.timegm(time.strptime(text, SERVERTIME_FORMAT)))
    except ValueError:
        raise XapiError(["INTERNAL_ERROR", "the pool master's time {!r} is not {}".format(
            text, SERVERTIME_FORMAT)]) from None


def pool_time(session) -> float:
    """The pool master's clock now, in seconds since the epoch."""
    pool = call(session.xenapi.pool.get_all)[0]
    master = call(session.xenapi.pool.get_master, pool)
    return parse_servertime(call(session.xenapi.host.get_servertime, master))
