"""A page mover stops when its domid names another VM's domain by the next batch (a
review, rB), and then leaves that domain's affinity alone (review rC).  Batches move pages by domid: a mover working on a simulated host that
``sim init --force`` replaced (its domids start again at 1), or on Xen after the domid
was given again, went on with the new domain's pages."""
import json

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.errors import MoveStopped
from xapi_numa.ops import move_memory
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import STOPPED

MiB = 1 << 20
TOPO = Topology.uniform(2, 2, 1 << 30)


def _host(path: str) -> SimHypervisor:
    return SimHypervisor.init(path, TOPO, "credit2", 3, dom0_vcpus=2, dom0_memory=64 * MiB, force=True)


def test_a_mover_stops_at_a_domid_that_is_another_vms_now(tmp_path):
    path = str(tmp_path / "host.json")
    hv = _host(path)
    domid = hv.create("g", 2, 64 * MiB, hard=frozenset({0, 1}), dtype="pvh", load="busy")
    ledger = Ledger(str(tmp_path / "elsewhere.db"))  # (a --ledger of its own: no lock beside the host)
    plan, lock = move_memory.claim(hv, ledger, str(domid), 1, batch=512)
    assert len(plan.batches) > 2
    replaced = {}

    def replace_the_host(tally):
        if not replaced:  # after the first batch: a new host, whose first guest gets the same domid
            new = _host(path)
            replaced["uuid"] = "11111111-2222-4333-8444-555555555555"  # (the same seed would give the same UUID)
            replaced["domid"] = new.create("other", 2, 64 * MiB, hard=frozenset({0, 1, 2, 3}), dtype="pvh",
                                           load="busy", uuid=replaced["uuid"])
            # an admin's affinity of its own, which is not where its memory is (node 0)
            for vcpu in (0, 1):
                new.set_vcpu_affinity(replaced["domid"], vcpu, soft=frozenset({2, 3}))
            new.set_node_affinity(replaced["domid"], frozenset({1}))

    with pytest.raises(MoveStopped) as stopped:
        move_memory.run(hv, ledger.db, plan, progress=replace_the_host, lock=lock, sleep=lambda s: None)
    assert replaced["domid"] == domid  # (the case: the same domid, another VM)
    assert "stopped before batch 2 of" in stopped.value.message
    assert "domain {} is no longer VM {}'s (it is VM {}'s now)".format(domid, plan.domain.uuid, replaced["uuid"]) \
        in stopped.value.message
    assert STOPPED in str(stopped.value.params)
    assert hv.node_pages(domid).get(1, 0) == 0  # none of the new domain's pages moved
    # nor did its affinity "follow the memory" the stopped move had moved (review rC: it was
    # rewritten to node 0, and the report gave the new VM's affinity as the moved VM's)
    assert hv.node_affinity(domid) == frozenset({1})
    assert all(v.soft == frozenset({2, 3}) for v in hv.vcpus(domid))
    report = json.loads(stopped.value.params[2])
    assert "is no longer VM" in report["affinity"]["skipped"], report
