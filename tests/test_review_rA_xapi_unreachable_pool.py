"""Review: NUMA_XAPI_UNREACHABLE (f81d18e) is a host's fault of the moment, as the
XENAPI_PLUGIN_FAILURE it replaced was: the pool must pass that host over (and release a
place there), not fail the whole query or start as if the VM were at fault.
The XENAPI_PLUGIN_FAILURE case passes (the behaviour before f81d18e); the new code fails."""
import pytest

from xapi_numa.backends.xapi_errors import XapiError
from xapi_numa.ops import pool as pool_ops
from xapi_numa.ops import pool_queries

G = 1 << 30


@pytest.fixture(params=["XENAPI_PLUGIN_FAILURE", "NUMA_XAPI_UNREACHABLE"])
def sick_member(pool, monkeypatch, request):
    server, session = pool
    sick = [h for h in server.hosts if h != server.master][0]
    real = pool_ops.xapi.call_plugin
    calls = []

    def call_plugin(session, host, fn, args, timeout=None):
        calls.append((host, fn, dict(args)))
        if host == sick and fn != "release":
            raise XapiError([request.param, "no answer from xapi to the plugin's call during {}: XapiTimeout: "
                                            "xapi gave no answer within 60 s".format(fn)])
        return real(session, host, fn, args, timeout=timeout)

    monkeypatch.setattr(pool_ops.xapi, "call_plugin", call_plugin)
    return server, session, sick, calls


def test_a_pool_query_marks_the_host_whose_local_xapi_did_not_answer(sick_member):
    server, session, sick, _ = sick_member
    answers = pool_queries.per_host(session, "host_topology")
    assert answers[server.hosts[sick]["uuid"]]["error"][0] in ("XENAPI_PLUGIN_FAILURE", "NUMA_XAPI_UNREACHABLE")


def test_candidates_pass_that_host_over(sick_member):
    server, session, sick, _ = sick_member
    _, uuid = server.add_vm("vm", 2, G)
    ranked = pool_ops.candidates(session, uuid)
    assert sick not in [host for _, host, _ in ranked] and len(ranked) == 2


@pytest.mark.parametrize("code", ["XENAPI_PLUGIN_FAILURE", "NUMA_XAPI_UNREACHABLE"])
def test_a_start_whose_place_got_no_answer_from_xapi_releases_it_and_goes_on(pool, monkeypatch, code):
    server, session = pool
    _, uuid = server.add_vm("vm", 2, G)
    first = pool_ops.candidates(session, uuid)[0][1]
    real = pool_ops.xapi.call_plugin
    calls = []

    def call_plugin(session, host, fn, args, timeout=None):
        calls.append((host, fn))
        if host == first and fn == "place" and args.get("dry_run") != "true":
            raise XapiError([code, "no answer from xapi to the plugin's call during place: XapiTimeout: x"])
        return real(session, host, fn, args, timeout=timeout)

    monkeypatch.setattr(pool_ops.xapi, "call_plugin", call_plugin)
    started = pool_ops.vm_start(session, uuid)
    assert (first, "release") in calls
    assert started["host_uuid"] != server.hosts[first]["uuid"]
