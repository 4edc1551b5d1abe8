"""The plugin's what-if ``place`` (vcpus, memory, type) and ``xapi-numa place --type`` counted the
planner's own build-overhead model (294 pages per vCPU, 2 per MiB, 2 MiB), the same whatever the
type, while a VM's own ``place`` counts the overhead xenopsd sizes for its type (xapi's model:
whole MiB, no internal extra MiB for PV, Xen's 38 pages per vCPU in whole MiB).  A what-if of a
VM's size and type answered other bytes than that VM's dry run (PV: 152 KiB more on the chosen
node; HVM and PVH: 360 KiB less, for 2 vCPUs and 1 GiB).  Both now predict the VM's own overhead,
at xapi's default HVM_shadow_multiplier (1.0): a what-if has no VM whose multiplier to read."""
import pytest
from test_plugin import ok, run
from test_review11_docs_place_fields import cli_json

from xapi_numa.core.overhead import xapi_model
from xapi_numa.core.placement import Request
from xapi_numa.core.topology import Topology
from xapi_numa.ops.place_request import sized_request

SIZES = [(2, 1 << 30), (3, (3 << 30) + (5 << 20))]


@pytest.mark.parametrize("dtype", ["pv", "pvh", "hvm"])
@pytest.mark.parametrize("vcpus, memory", SIZES)
def test_a_what_if_counts_the_overhead_of_a_vms_own_place_of_its_size_and_type(ctx, dtype, vcpus, memory):
    server, session, host, sid = ctx
    _, uuid = server.add_vm("v", vcpus, memory, domain_type=dtype)
    own = ok(run(server, host, sid, "place", {"vm": uuid, "dry_run": "true"}))
    what_if = ok(run(server, host, sid, "place", {"vcpus": str(vcpus), "memory": str(memory), "type": dtype}))
    fields = ("nodes", "memory", "headroom", "domain_type")
    assert {k: what_if[k] for k in fields} == {k: own[k] for k in fields}, (own, what_if)
    cli = cli_json(server, host, "place", "--vcpus", str(vcpus), "--memory", str(memory), "--type", dtype,
                   "--dry-run")
    assert {k: cli[k] for k in fields} == {k: own[k] for k in fields}, (own, cli)


def test_the_overhead_is_xapis_at_multiplier_one_and_a_given_one_stays():
    topo = Topology.uniform(2, 4, 4 << 30, [[10, 21], [21, 10]])
    for dtype in ("pv", "pvh", "hvm"):
        got = sized_request(Request(2, 1 << 30, dtype=dtype), topo, None).overhead
        assert got == xapi_model(1 << 30, 2, 1.0, dtype)
    assert sized_request(Request(2, 1 << 30, dtype="pv"), topo, None).overhead != \
        sized_request(Request(2, 1 << 30, dtype="hvm"), topo, None).overhead  # PV: no internal extra MiB
    assert sized_request(Request(2, 1 << 30, overhead=5 << 20), topo, None).overhead == 5 << 20
