"""A pool member whose plugin does not answer (a hung dom0, a wedged xenopsd) while the
master still answers is that host's failure, not the pool's (review 15l).

xapi's host.call_plugin has no deadline of its own: a member whose plugin hangs keeps the
master's forwarded call open.  Before this, the client's deadline for a host's plugin was
LONG_CALL_TIMEOUT (30 minutes) for a query too, and when it passed the XapiTimeout (not a
XapiError) escaped ``per_host`` and ``candidates``: `topology --pool` / `vcpus --pool`
lost every other host's answer, and `vm-start` failed instead of passing the host over
as its docstring promises ("dead or timing out is passed over").
"""
import time

import pytest

from hung_calls import pool_with_a_hang, within
from xapi_numa.backends import xapi
from xapi_numa.ops import pool as pool_ops
from xapi_numa.ops import pool_queries

G = 1 << 30


@pytest.fixture
def hung(pool, monkeypatch):
    """The pool with short deadlines, a session of ours, and a way to hang one host's plugin."""
    with pool_with_a_hang(pool, monkeypatch) as (server, session, hang):
        yield server, session, lambda host_ref: hang(lambda host, fn, args: host == host_ref)


def test_a_hung_member_is_marked_and_the_others_answer(hung):
    server, session, hang = hung
    hosts = list(server.hosts)
    hang(hosts[1])
    began = time.monotonic()
    answers = within(lambda: pool_queries.per_host(session, "host_topology"))
    assert time.monotonic() - began < 20
    failed = {uuid: pool_queries.failed_host(entry) for uuid, entry in answers.items()}
    assert failed[server.hosts[hosts[0]]["uuid"]] is None and failed[server.hosts[hosts[2]]["uuid"]] is None
    why = failed[server.hosts[hosts[1]]["uuid"]]
    assert why.startswith("NUMA_HOST_TIMEOUT") and "did not answer" in why, why


def test_vm_start_passes_over_a_hung_member(hung):
    server, session, hang = hung
    hosts = list(server.hosts)
    hang(hosts[0])  # the first asked
    ref, uuid = server.add_vm("web", 2, G)
    started = within(lambda: pool_ops.vm_start(session, uuid))
    assert started["host_uuid"] != server.hosts[hosts[0]]["uuid"]
    assert session.xenapi.VM.get_power_state(ref) == "Running"


def test_a_wedged_master_still_fails_the_query(hung):
    server, session, _ = hung
    server.wedged.add("*")
    with pytest.raises(xapi.XapiTimeout):
        within(lambda: pool_queries.per_host(session, "host_topology"))


def test_vm_placement_of_a_vm_on_a_hung_member_says_so_in_time(hung):
    """vm-placement of a running VM asks its host's plugin two queries: each waited the
    30 minutes of a real place, then failed as if the master were wedged."""
    server, session, hang = hung
    hosts = list(server.hosts)
    ref, uuid = server.add_vm("web", 2, G)
    session.xenapi.VM.start_on(ref, hosts[2], False, False)
    hang(hosts[2])
    with pytest.raises(xapi.XapiError) as err:
        within(lambda: pool_queries.vm_placement(session, uuid))
    assert err.value.code == "NUMA_HOST_TIMEOUT" and "host2" in err.value.message
