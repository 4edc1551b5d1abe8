"""dom0's vCPUs unpinned after its guests' backend work was aligned: "dom0 vCPU 1" no
longer means node 1, so docs/dom0-backends.md's rule (a layout with a vCPU not pinned to one node
is not used: nothing is aligned) must hold for what was aligned before too.  The planner
kept it, as if the layout could not be read: every guest's netback, blkback and qemu
threads stayed confined to one dom0 vCPU and its IRQs banned from irqbalance for as long
as the guest ran.  Now, once the layout has been unusable for LAYOUT_LOST_AFTER (not a
re-pinning under way, which still undoes nothing), it is handed back to dom0's default;
dom0's vCPUs not read at all (no layout to judge) never count."""
import sys
import os

sys.path.insert(0, os.path.dirname(__file__))

from test_backend_affinity import ALL, aligned_guest, allowed  # noqa: E402

import logging  # noqa: E402

import attrs  # noqa: E402

from xapi_numa.core import backend_affinity as ba  # noqa: E402
from xapi_numa.ops.backend_alignment import BackendAlignment  # noqa: E402
from xapi_numa.state.db import Database  # noqa: E402
from xapi_numa.core.host import DomainInfo, VcpuInfo  # noqa: E402
from xapi_numa.core.snapshot import HostSnapshot  # noqa: E402
from xapi_numa.core.topology import Topology  # noqa: E402
from xapi_numa.state.backend_pins import BackendJournal  # noqa: E402


def test_unpinning_dom0_hands_its_guests_backend_work_back(tmp_path):
    hv, g, dom0, db, rt, out = aligned_guest(tmp_path, "hvm")
    hv.set_vcpu_affinity(0, 0, hard=ALL)             # xl vcpu-pin Domain-0 all all
    hv.set_vcpu_affinity(0, 1, hard=ALL)
    hv.run(1.0)
    rt.cycle()
    assert set(map(tuple, allowed(dom0, g)[0].values())) == {(1,)}   # for a moment: kept
    for _ in range(7):
        hv.run(10.0)
        rt.cycle()
    threads, irqs = allowed(dom0, g)
    assert set(map(tuple, threads.values())) == {(0, 1)} and set(map(tuple, irqs.values())) == {(0, 1)}
    assert BackendJournal(db).entries() == [] and dom0.banned() == frozenset()


def test_dom0_vcpus_not_read_keep_what_was_aligned(tmp_path):
    topo = Topology.uniform(2, 2, 4 << 30)
    domains = (DomainInfo(0, "Domain-0", "dom0-uuid", 2, 1 << 30, 1 << 30, False),
               DomainInfo(1, "g1", "uuid-1", 1, 1 << 30, 1 << 30, False, "pvh"))
    n1 = frozenset({2, 3})
    vcpus = {1: (VcpuInfo(1, 0, 2, "running", frozenset(range(4)), n1),)}   # dom0's not read
    s = HostSnapshot(topo, 0.0, domains, vcpus, unread={"dom0-uuid": 0})
    work = dict(tasks=(ba.BackendTask(1, "netback", 500, "vif1.0-q0-guest", 7, frozenset({1})),),
                owned=(ba.Owned("uuid-1", ba.THREAD, 500, "vif1.0-q0-guest", 7),))
    assert ba.plan(s, ba.BackendState(ba.read_layout((), topo), **work)) == []
    # the use case never calls a layout it could not read lost, however long that lasts
    align = BackendAlignment(None, Database(str(tmp_path / "l.db")), logging.getLogger("t"))
    assert not any(align._layout_lost(attrs.evolve(s, time=t), ba.read_layout((), topo)) for t in (0.0, 600.0))
    # read and unpinned: lost once it has lasted
    unpinned = ba.read_layout((VcpuInfo(0, 0, 0, "running", frozenset(range(4)), frozenset(range(4))),), topo)
    assert [align._layout_lost(attrs.evolve(s, time=t), unpinned) for t in (0.0, 30.0, 61.0)] == [False, False, True]
    lost = ba.plan(s, ba.BackendState(unpinned, layout_lost=True, **work))
    assert [(type(a).__name__, a.ident, sorted(a.cpus)) for a in lost] == [("RestoreBackendAffinity", 500, [0])]
