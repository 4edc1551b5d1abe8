"""Every plugin call the pool makes waits PLACE_TIMEOUT, not the 1800 s of a VM.start_on.

3d22b48 bounded a host's ``place`` and ``release`` by PLACE_TIMEOUT; the other calls made
through :func:`xapi_numa.ops.pool.plugin_result` still waited LONG_CALL_TIMEOUT (30 minutes):
``settle`` after the pool's ``vm-start`` (the VM runs; a hung member held the command 30
minutes, then reported the master as wedged) and ``vnuma_plan`` (``xapi-numa --pool URL
vnuma VM``).  Neither waits for a build on the host.  They now wait PLACE_TIMEOUT, and a
host that does not answer in time while the master does is NUMA_HOST_TIMEOUT.
"""
import pytest

from hung_calls import pool_with_a_hang, within
from xapi_numa.backends import xapi
from xapi_numa.ops import pool as pool_ops
from xapi_numa.ops.vnuma_pool import pool_plan

G = 1 << 30


@pytest.fixture
def hangs_on(pool, monkeypatch):
    """The pool with short deadlines (a plugin call's 1 s; VM.start_on's 25 s), a session, and a way to make the plugin hang in one function (on every host)."""
    with pool_with_a_hang(pool, monkeypatch) as (server, session, hang):
        yield server, session, lambda hung_fn: hang(lambda host, fn, args: fn == hung_fn)


def test_vm_start_reports_a_settle_that_hangs_in_time(hangs_on):
    server, session, hang = hangs_on
    ref, uuid = server.add_vm("web", 2, G)
    hang("settle")
    started = within(lambda: pool_ops.vm_start(session, uuid))
    assert session.xenapi.VM.get_power_state(ref) == "Running"
    assert started["settled"] is None
    error = started["settle_error"]["error"]
    assert error[0] == pool_ops.HOST_TIMEOUT and "did not answer settle within 1 s" in error[1], error
    assert started["host"] in error[1]


def test_a_vnuma_plan_on_a_hung_host_is_named_host_timeout(hangs_on):
    server, session, hang = hangs_on
    ref, uuid = server.add_vm("web", 2, G)
    host = list(server.hosts)[1]
    session.xenapi.VM.start_on(ref, host, False, False)
    hang("vnuma_plan")
    with pytest.raises(xapi.XapiError) as err:
        within(lambda: pool_plan(session, uuid, store=True))
    assert err.value.code == pool_ops.HOST_TIMEOUT
    assert "did not answer vnuma_plan within 1 s" in err.value.message
    assert server.hosts[host]["name_label"] in err.value.message


def test_every_plugin_call_but_a_query_waits_place_timeout(hangs_on, monkeypatch):
    """:func:`xapi.call_plugin`'s own default is PLACE_TIMEOUT too: no plugin function waits
    for a VM's build, so nothing through it waits VM.start_on's 30 minutes."""
    server, session, hang = hangs_on
    hang("host_topology")
    host = list(server.hosts)[0]
    # a guard under VM.start_on's deadline (25 s here), far above PLACE_TIMEOUT's (1 s): a call
    # that waited the former would fail it (under the 60 s default guard it passed either way)
    with pytest.raises(xapi.XapiTimeout):
        within(lambda: xapi.call_plugin(session, host, "host_topology", {}), seconds=10.0)


def test_call_plugin_takes_no_query_flag_only_a_deadline():
    """Its ``query=`` (QUERY_TIMEOUT when true) had no caller left: the pool passes every
    call's deadline (``pool.host_query``, ``pool.plugin_result``).  Gone, a caller cannot
    believe it picks a deadline that nothing tests."""
    import inspect
    assert list(inspect.signature(xapi.call_plugin).parameters) == ["session", "host", "fn", "args", "timeout"]
