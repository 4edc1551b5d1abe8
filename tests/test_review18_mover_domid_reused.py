"""A page mover never moves the pages of a domain that took its VM's domid.

Batches move pages by domid.  Between batches (reviews rB, rC): a mover working on a
simulated host that ``sim init --force`` replaced (its domids start again at 1), or on Xen
after the domid was given again, went on with the new domain's pages; it now stops at the
next batch and leaves that domain's affinity alone.  Within a batch: the mover looked
whether the domid was still its VM's (``another_domain``), asked xapi whether a migration
had begun (``still_movable``), then ran the batch, two hypervisor calls (and an xapi call)
apart.  The batch now carries the VM's UUID and the backend checks it while it holds the
domain (the simulator: in the batch's transaction; Xen: libxenuma's ``xn_mig_move_as``,
once the batch is mapped), refusing with ESTALE, nothing moved."""
import errno
import json

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.errors import HypervisorError, MoveStopped
from xapi_numa.ops import move_memory
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import STOPPED

MiB = 1 << 20
TOPO = Topology.uniform(2, 2, 1 << 30)
OTHER = "11111111-2222-4333-8444-555555555555"


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


def test_a_domid_given_again_between_the_check_and_the_batch_moves_nothing(tmp_path):
    path = str(tmp_path / "host.json")
    hv = _host(path)
    domid = hv.create("g", 2, 64 * MiB, hard=frozenset({0, 1}), dtype="pvh", load="busy")
    ledger = Ledger(str(tmp_path / "elsewhere.db"))
    plan, lock = move_memory.claim(hv, ledger, str(domid), 1, batch=512)
    reused = {}

    def domid_given_again():
        # asked after the mover's own look at the domid, just before the batch: the VM's
        # domain is destroyed (here: the whole host replaced) and a new VM gets the domid
        if not reused:
            reused["domid"] = _host(path).create("other", 2, 64 * MiB, hard=frozenset({0, 1, 2, 3}),
                                                 dtype="pvh", load="busy", uuid=OTHER)
        return None

    with pytest.raises(MoveStopped) as stopped:
        move_memory.run(hv, ledger.db, plan, lock=lock, sleep=lambda s: None, still_movable=domid_given_again)
    assert reused["domid"] == domid  # (the case: the same domid, another VM)
    assert hv.node_pages(domid).get(1, 0) == 0, "the new VM's pages were moved"
    report = json.loads(stopped.value.params[2])
    assert report["state"] == "failed" and report["released_pages"] == 0, report
    assert "no longer VM {}'s".format(plan.domain.uuid) in report["error"], report
    assert "is no longer VM" in report["affinity"]["skipped"], report  # nor does the new VM's affinity follow


def test_the_simulated_batch_refuses_another_vms_domain_and_takes_its_own(tmp_path):
    hv = _host(str(tmp_path / "host.json"))
    domid = hv.create("g", 2, 64 * MiB, hard=frozenset({0, 1}), dtype="pvh")
    mine = next(d for d in hv.domains() if d.domid == domid).uuid
    gfns = move_memory.prepare(hv, str(domid), 1).batches[0]
    with pytest.raises(HypervisorError) as err:
        hv.move_pages(domid, gfns, 1, uuid=OTHER)
    assert err.value.errno == errno.ESTALE and hv.node_pages(domid).get(1, 0) == 0
    assert hv.move_pages(domid, gfns, 1, uuid=mine).moved == len(gfns)
