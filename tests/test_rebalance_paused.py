"""A paused domain (an admin's ``xl pause`` or ``VM.pause``) is no home to move, nor a swap partner.

It wants no CPU while paused, whatever its history says: the planner took a paused VM for an idle
one and traded a busy VM's home for its (a swap: the paused VM's affinity written, its memory made
to follow to the busy node).  Whoever holds the pause: one of our page mover's lasts as long as its
move, and the VM is movable again in the first period after it."""
from xapi_numa.core.actions import MoveMemory, SetAffinity, SetNodeAffinity
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology
from xapi_numa.ops.rebalancing import Rebalancer
from xapi_numa.state.db import Database

GiB = 1 << 30
TOPO = Topology.uniform(2, 4, 8 * GiB)
PAGES = {"u%d" % i: {0 if i <= 3 else 1: GiB >> 12} for i in range(1, 7)}


def snap(t, paused=frozenset()):
    """Node 0: three busy 2-vCPU VMs on 4 pCPUs; node 1: three idle ones (those in ``paused``
    paused, after running)."""
    n0, n1 = TOPO.cpus_of_nodes([0]), TOPO.cpus_of_nodes([1])
    doms = tuple(DomainInfo(i, "v%d" % i, "u%d" % i, 2, GiB, GiB, i in paused, "pvh") for i in range(1, 7))
    vcpus = {i: tuple(VcpuInfo(i, v, v, "paused" if i in paused else "running" if i <= 3 else "blocked",
                               TOPO.all_cpus, n0 if i <= 3 else n1, t if i <= 3 else 1.0) for v in range(2))
             for i in range(1, 7)}
    return HostSnapshot(TOPO, t, doms, vcpus)


def decisions(tmp_path, paused):
    rb = Rebalancer(Database(str(tmp_path / "db")))
    return [rb.decide(snap(t, paused), PAGES, set()) for t in (2.0, 4.0, 6.0, 8.0)]


def test_idle_vms_are_swap_partners(tmp_path):
    """Not paused, node 1's idle VMs are what the planner trades a busy VM's home with."""
    chosen = [c for d in decisions(tmp_path, ()) for c in d.assessment.chosen]
    assert chosen and chosen[0].kind == "swap"


def test_a_paused_vm_is_never_a_swap_partner_nor_moved(tmp_path):
    found = decisions(tmp_path, {4, 5, 6})
    moved = {vm.uuid for d in found for c in d.assessment.chosen + (d.assessment.deferred,) if c
             for vm, _ in c.moves}
    assert not moved & {"u4", "u5", "u6"}, [d.note for d in found]
    touched = {a.uuid for d in found for a in d.actions if isinstance(a, (SetAffinity, SetNodeAffinity, MoveMemory))}
    assert not touched & {"u4", "u5", "u6"}, [d.note for d in found]


def test_a_busy_vm_paused_is_not_moved_on_its_history(tmp_path):
    """v1, busy until now, paused: its window still says busy, its move would gain nothing."""
    rb = Rebalancer(Database(str(tmp_path / "db")))
    for t in (2.0, 4.0, 6.0):
        rb.observe_demand(snap(t))
    loads = {vm.uuid: vm for vm in rb.loads(snap(8.0, {1}), PAGES, set(), 8.0)}
    assert not loads["u1"].movable and loads["u2"].movable and max(loads["u1"].history) > 1.0


def test_a_pause_of_our_movers_does_not_outlast_its_move(tmp_path):
    """Paused by a batch of our page mover (the VM excluded as one a mover of ours is moving), then
    unpaused: movable again in the next period, its hold-down and history as they were."""
    rb = Rebalancer(Database(str(tmp_path / "db")))
    for t in (2.0, 4.0):
        rb.observe_demand(snap(t))
    assert not {vm.uuid: vm for vm in rb.loads(snap(6.0, {1}), PAGES, {1}, 6.0)}["u1"].movable
    assert {vm.uuid: vm for vm in rb.loads(snap(8.0), PAGES, set(), 8.0)}["u1"].movable
