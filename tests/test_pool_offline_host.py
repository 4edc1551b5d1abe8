"""A pool member that is down, as xapi answers for it: a plugin call forwarded there is
HOST_OFFLINE [host], and VM.assert_can_boot_here there is HOST_NOT_LIVE (no parameters).
The pool's queries mark that one host; a start goes to another."""
import xmlrpc.client

from xapi_numa.ops import pool as pool_ops
from xapi_numa.ops import pool_queries

G = 1 << 30


def test_the_loopback_answers_for_a_host_that_is_down(pool):
    server, session = pool
    proxy = xmlrpc.client.ServerProxy(server.url)
    master, member = server.master, [h for h in server.hosts if h != server.master][0]
    server.offline |= {master, member}
    ref, _ = server.add_vm("vm", 2, G)
    answer = getattr(proxy, "host.call_plugin")(session._session, member, "numa", "host_topology", {})
    assert answer["ErrorDescription"] == ["HOST_OFFLINE", member]
    assert getattr(proxy, "VM.assert_can_boot_here")(session._session, ref, member)["ErrorDescription"] == \
        ["HOST_NOT_LIVE"]
    # the master runs its own calls: it is never offline to itself
    assert getattr(proxy, "host.call_plugin")(session._session, master, "numa", "host_topology", {})["Status"] == "Success"


def test_a_member_that_is_down_is_marked_and_passed_over(pool):
    server, session = pool
    down = [h for h in server.hosts if h != server.master][0]
    server.offline.add(down)
    answers = pool_queries.per_host(session, "host_topology")
    assert answers[server.hosts[down]["uuid"]]["error"] == ["HOST_OFFLINE", down]
    assert all("answer" in a for uuid, a in answers.items() if uuid != server.hosts[down]["uuid"])
    ref, uuid = server.add_vm("vm", 2, G)
    left_out = []
    ranked = pool_ops.candidates(session, uuid, left_out=left_out)
    assert down not in [host for _, host, _ in ranked] and len(ranked) == 2
    assert left_out == ["{}: HOST_NOT_LIVE".format(server.hosts[down]["name_label"])]
    started = pool_ops.vm_start(session, uuid)
    assert started["host_uuid"] != server.hosts[down]["uuid"]
