"""xapi killed mid-answer (xe-toolstack-restart while a pool's VM records are on the wire):
the XML-RPC client raises neither OSError nor a XenAPI failure, but http.client's
IncompleteRead or the XML parser's ExpatError.  That is xapi going away, like any other."""
import http.client
import logging
import types
import xml.parsers.expat

import pytest

from xapi_numa.backends import xapi
from xapi_numa.core.actions import PinTemporarily
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.ops.xapi_link import XapiLink
from xapi_numa.state.db import Database

from test_daemon import swapped_host

TOPO_N0 = frozenset(range(4))


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
    sim, a, c = swapped_host(str(tmp_path / "h.json"))
    logins = []

    def killed():
        raise broken_answer(kind)
    session = types.SimpleNamespace(xenapi=types.SimpleNamespace(VM=types.SimpleNamespace(get_all_records=killed)))
    link = XapiLink(lambda: logins.append(sim.clock()) or session, sim.clock)
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings(), policy_of=link.policy_of,
                 opted_out=link.rebalance_opted_out, backend_opt_out=link.backend_affinity_off,
                 guest_cpus=link.guest_cpus)
    uuid = next(d.uuid for d in sim.domains() if d.domid == a)
    all_hard = sim.vcpus(a)[0].hard
    rt.executor.apply([PinTemporarily(a, uuid, 0, TOPO_N0, all_hard, "displaced")])
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
