"""A domain shut down and not yet destroyed is no home to move, nor a swap partner.

Between a guest's shutdown (a poweroff, a crash being handled, a coredump taken) and its
destruction, Xen keeps the domain with its vCPUs paused for the shutdown.  Since review
15a they want no CPU; but the rebalancer still took such a domain for an idle VM and
traded a busy VM's home for its (a swap), writing the affinity of a domain about to go."""
import pytest

from xapi_numa.core.actions import MoveMemory, SetAffinity, SetNodeAffinity
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology
from xapi_numa.ops.rebalancing import Rebalancer
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMove, HomeMoves

GiB = 1 << 30
TOPO = Topology.uniform(2, 4, 8 * GiB)


def _host(shut_down: bool):
    """Node 0: three busy 2-vCPU VMs on 4 pCPUs; node 1: three 2-vCPU domains doing nothing
    (shut down, or idle).  Piling a busy VM onto node 1 would home 8 vCPUs on its 4: a
    trade with one of node 1's is what the planner prefers."""
    n0, n1 = TOPO.cpus_of_nodes([0]), TOPO.cpus_of_nodes([1])
    doms = [DomainInfo(i, "v%d" % i, "u%d" % i, 2, GiB, GiB, False, "pvh", shutdown=shut_down and i > 3)
            for i in range(1, 7)]
    pages = {d.uuid: {0 if d.domid <= 3 else 1: GiB >> 12} for d in doms}

    def vcpus(t):
        idle = "paused" if shut_down else "blocked"
        return {d.domid: tuple(VcpuInfo(d.domid, i, i, "running" if d.domid <= 3 else idle, TOPO.all_cpus,
                                        n0 if d.domid <= 3 else n1, t if d.domid <= 3 else 1.0) for i in range(2))
                for d in doms}
    return doms, pages, vcpus


def _decisions(tmp_path, shut_down: bool):
    doms, pages, vcpus = _host(shut_down)
    rb = Rebalancer(Database(str(tmp_path / "db")))
    return [rb.decide(HostSnapshot(TOPO, t, tuple(doms), vcpus(t)), pages, set()) for t in (2.0, 4.0, 6.0, 8.0)]


def test_idle_vms_are_swap_partners(tmp_path):
    """The same host with node 1's domains idle, not shut down: a swap (what the test below
    rules out is a real choice of the planner's)."""
    chosen = [c for d in _decisions(tmp_path, False) for c in d.assessment.chosen]
    assert chosen and chosen[0].kind == "swap"


def test_a_shut_down_domain_is_never_a_swap_partner_nor_moved(tmp_path):
    decisions = _decisions(tmp_path, True)
    shut = {"u4", "u5", "u6"}
    moved = {vm.uuid for d in decisions for c in d.assessment.chosen + (d.assessment.deferred,) if c
             for vm, _ in c.moves}
    assert not moved & shut, [d.note for d in decisions]
    touched = {a.uuid for d in decisions for a in d.actions
               if isinstance(a, (SetAffinity, SetNodeAffinity, MoveMemory))}
    assert not touched & shut, [d.note for d in decisions]


def test_a_shut_down_domains_memory_does_not_follow_the_home_we_gave_it(tmp_path):
    """Homed by us on node 1 (its memory on node 0, following): once it shuts down, no page
    move is asked of it (the mover refuses a domain shutting down), and its follow state
    is kept for it as for a domain left alone this period."""
    db = Database(str(tmp_path / "db"))
    HomeMoves(db).record(HomeMove("u1", 0.0, 0, 1, "balance", "test"))
    rb = Rebalancer(db)
    n1 = TOPO.cpus_of_nodes([1])
    doms = (DomainInfo(1, "v1", "u1", 2, GiB, GiB, False, "pvh", shutdown=True),)
    vc = {1: tuple(VcpuInfo(1, i, 4 + i, "paused", TOPO.all_cpus, n1, 1.0) for i in range(2))}
    decision = rb.decide(HostSnapshot(TOPO, 10.0, doms, vc), {"u1": {0: GiB >> 12}}, set())
    assert not [a for a in decision.actions if isinstance(a, MoveMemory)], decision.note
    assert rb.following.followed.get("u1", (None,))[0] == 1


def test_the_xen_adapter_says_which_domain_is_shut_down(monkeypatch):
    xen = pytest.importorskip("xapi_numa.backends.xen")
    from tests.test_review15a_shut_down_domain import ShutDownGuest

    monkeypatch.setattr(xen, "lib", ShutDownGuest())
    hv = xen.XenHypervisor()
    assert [(d.domid, d.shutdown) for d in hv.domains()] == [(0, False), (1, True)]
    assert hv.domain(1).shutdown and not hv.domain(1).paused
