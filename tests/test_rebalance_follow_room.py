"""A period's follow steps and its home moves share the target's room.

docs/xapi-numad.md: a node is a target only if its room "takes that memory (moves and follow
steps in one period share it)".  The planner was given the whole room, and the follow
steps of VMs already following a home there were sized after it: a move was chosen
that the room left could not take, its VM homed there with its memory left behind."""
from xapi_numa.core.actions import MoveMemory
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology
from xapi_numa.ops.rebalancing import Rebalancer
from xapi_numa.state.db import Database

GiB = 1 << 30
TOPO = Topology.uniform(2, 4, 8 * GiB)
N0, N1 = TOPO.cpus_of_nodes([0]), TOPO.cpus_of_nodes([1])
VM_PAGES = GiB >> 12
ROOM = 300000  # node 1 takes one busy VM's move (235930 pages) or the follower's step (249037), not both


def _snapshot(t):
    """Node 0: three busy 2-vCPU VMs (6 pCPUs wanted on 4); node 1: an idle VM homed there by
    us, its memory still on node 0 and following."""
    doms = tuple(DomainInfo(i, "v%d" % i, "u%d" % i, 2, GiB, GiB, False, "pvh") for i in range(1, 5))
    vcpus = {d.domid: tuple(VcpuInfo(d.domid, i, i, "running" if d.domid < 4 else "blocked", TOPO.all_cpus,
                                     N0 if d.domid < 4 else N1, t if d.domid < 4 else 1.0) for i in range(2))
             for d in doms}
    return HostSnapshot(TOPO, t, doms, vcpus)


def _decisions(tmp_path, record, room=ROOM):
    rb = Rebalancer(Database(str(tmp_path / "db")))
    rb.following.followed["u4"], rb.following._domid["u4"] = (1, 0), 4
    pages = {"u%d" % i: {0: VM_PAGES} for i in range(1, 5)}
    return [rb.decide(_snapshot(t), pages, set(), room={0: 0, 1: room}, record=record) for t in (2.0, 4.0, 6.0)]


def _into_node_1(decision):
    """Pages this period's follow steps and home moves bring to node 1."""
    steps = sum(a.max_pages for a in decision.actions if isinstance(a, MoveMemory) and a.to == 1)
    moved = sum(vm.pages[0] for c in decision.assessment.chosen for vm, to in c.moves if to == 1)
    return steps, moved


def test_the_follow_step_is_made_and_no_move_takes_the_room_it_leaves(tmp_path):
    for decision in _decisions(tmp_path, record=True):
        steps, _ = _into_node_1(decision)
        assert steps, decision.note  # the follower's step goes on
        assert not decision.assessment.chosen, decision.note  # room left: 50963 pages, no VM's memory


def test_the_dry_run_counts_the_follow_steps_too(tmp_path):
    for decision in _decisions(tmp_path, record=False):
        assert not decision.assessment.chosen, decision.note


def test_with_room_for_both_the_move_is_made(tmp_path):
    decisions = _decisions(tmp_path, record=True, room=600000)
    assert any(d.assessment.chosen for d in decisions), [d.note for d in decisions]
