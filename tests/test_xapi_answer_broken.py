"""xapi killed mid-answer (xe-toolstack-restart while a pool's VM records are on the wire):
the XML-RPC client raises neither OSError nor a XenAPI failure, but http.client's
IncompleteRead or the XML parser's ExpatError.  That is xapi going away, like any other."""
import http.client
import logging
import xml.parsers.expat

import pytest

from xapi_numa.backends import xapi
from xapi_numa.ops.xapi_link import XapiLink

from test_runtime import pinned_over_xapi


def broken_answer(kind):
    if kind == "incomplete":
        return http.client.IncompleteRead(b"<?xml version='1.0'?><methodResponse><params>", 40000)
    parser = xml.parsers.expat.ParserCreate()
    try:
        parser.Parse(b"<methodResponse><params>", True)
    except xml.parsers.expat.ExpatError as err:
        return err
    raise AssertionError("a truncated document parsed")


@pytest.mark.parametrize("kind", ["incomplete", "expat"])
def test_a_broken_answer_is_a_connection_error(kind):
    with pytest.raises(ConnectionError):
        xapi.call(lambda: (_ for _ in ()).throw(broken_answer(kind)))


@pytest.mark.parametrize("kind", ["incomplete", "expat"])
def test_xapi_killed_mid_answer_fails_no_cycle_and_temporary_pins_still_go(tmp_path, caplog, kind):
    """Every cycle failed (the guest mask is read with the records, in the snapshot), so no
    pin was undone, and the broken session was kept."""
    logins = []

    def killed():
        raise broken_answer(kind)
    sim, a, rt, all_hard = pinned_over_xapi(tmp_path, killed, logins)
    with caplog.at_level(logging.WARNING):
        for _ in range(40):
            sim.run(1.0)
            rt.cycle()
    assert rt.pins.entries() == [] and sim.vcpus(a)[0].hard == all_hard
    assert len(logins) > 1  # the session is dropped, and a new one made after a back-off
    assert "unreachable" in caplog.records[0].getMessage()


def test_a_login_that_works_before_calls_that_fail_backs_off_and_logs_once(caplog):
    """Logging in reset the back-off and the log-once: xapi letting a login through and
    failing every call after it was logged in again every second, with two log lines
    ("unreachable", "reachable again") each time, for as long as it lasted."""
    now = [0.0]
    logins = []

    def dead_call(session):
        raise ConnectionResetError(104, "connection reset by peer")

    link = XapiLink(lambda: logins.append(now[0]) or object(), lambda: now[0])
    with caplog.at_level(logging.INFO):
        for second in range(600):
            now[0] = float(second)
            assert link.use(dead_call) is None
        assert len(logins) <= 15  # 1, 2, 4, ... 60 s apart
        assert [r.getMessage() for r in caplog.records] == ["xapi unreachable: running without it"]
        now[0] += 60.0
        assert link.use(lambda s: "ok") == "ok"
        assert link.use(dead_call) is None  # a new outage: said again, and retried after 1 s
    assert [r.getMessage() for r in caplog.records][1:] == ["xapi reachable again", "xapi unreachable: running without it"]
    now[0] += 1.0
    assert link.use(lambda s: "ok") == "ok"
