"""The pool operations when members fail, share names, or fail part-way (review of the plugin)."""
import json
import types

import pytest

from test_pool_e2e import G, cli, finish
from xapi_loopback import Failure, LoopbackXapi
from xapi_numa.ops import pool as pool_ops
from xapi_numa.state.ledger import Ledger


def unreachable(server, monkeypatch, when):
    """host.call_plugin answers as xapi does for a member it cannot forward to, where ``when``."""
    real = LoopbackXapi.host_call_plugin

    def call_plugin(self, session_id, host, plugin, fn, args):
        if when(host, fn, args):
            raise Failure("CANNOT_CONTACT_HOST", host)
        return real(self, session_id, host, plugin, fn, args)
    monkeypatch.setattr(server, "host_call_plugin", types.MethodType(call_plugin, server))


def test_a_member_the_master_cannot_contact_is_marked_not_the_end_of_the_pool_query(pool, tmp_path, monkeypatch):
    """CANNOT_CONTACT_HOST from one member failed `topology --pool` as a whole: the
    other hosts' answers were lost."""
    server, session = pool
    hosts = list(server.hosts)
    unreachable(server, monkeypatch, lambda host, fn, args: host == hosts[1])
    answers = pool_ops.per_host(session, "host_topology")
    failed = [pool_ops.failed_host(a) for a in answers.values()]
    assert sorted(failed, key=str) == sorted([None, None, "CANNOT_CONTACT_HOST " + hosts[1]], key=str)
    code, out, err = finish(cli(server, tmp_path, "topology"))
    assert code == 0, err
    assert "did not answer (CANNOT_CONTACT_HOST" in out and out.count("(credit2)") == 2
    code, out, err = finish(cli(server, tmp_path, "vcpus", "--json"))
    assert code == 0 and "did not answer: CANNOT_CONTACT_HOST" in err and json.loads(out)


def test_an_expired_session_still_fails_the_pool_query(pool, monkeypatch):
    server, session = pool
    real = LoopbackXapi.host_call_plugin

    def call_plugin(self, session_id, host, plugin, fn, args):
        raise Failure("SESSION_INVALID", session_id)
    monkeypatch.setattr(server, "host_call_plugin", types.MethodType(call_plugin, server))
    from xapi_numa.backends.xapi import XapiError
    with pytest.raises(XapiError) as raised:
        pool_ops.per_host(session, "host_topology")
    assert raised.value.code == "SESSION_INVALID"
    assert real
