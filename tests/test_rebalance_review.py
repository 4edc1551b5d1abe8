"""Found in a review of the rebalancer: a memory-only node taken for a home."""
from xapi_numa.core import rebalance, rebalance_moves
from xapi_numa.core.actions import SetNodeAffinity
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology
from xapi_numa.ops.rebalancing import Rebalancer
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMove, HomeMoves

GiB = 1 << 30
# nodes 0 and 1 with 4 pCPUs each, node 2 memory only (CXL, a memory expander)
MEMORY_ONLY = Topology.from_arrays([0] * 4 + [1] * 4, [[10, 20, 20], [20, 10, 20], [20, 20, 10]], [8 * GiB] * 3)


def test_a_vm_whose_memory_stays_is_never_homed_back_onto_a_node_without_pcpus():
    """An idle PV guest whose memory is on node 2 (no pCPUs), homed by us on node 1: node
    2's series is all zeros, within 90 % of its zero pCPUs, so it was sent "back to its
    memory" there: node affinity {2}, its vCPUs' soft affinity the nearest nodes' (here
    both: homed on two nodes, which nothing moves again)."""
    pv = rebalance.VmLoad(1, "u1", "pv", 1, (0, 1), 0.0, {2: GiB >> 12, 1: 10}, "pv", history=(0.0,) * 5)
    capacity = {0: 4.0, 1: 4.0, 2: 0.0}  # pools.guest_capacity: every node, 0 pCPUs for the memory-only one
    assert rebalance_moves.back_to_memory([pv], {"u1": 1}, capacity, rebalance.Settings()) == []


def test_the_rebalancer_sends_no_vm_back_to_a_memory_only_node(tmp_path):
    db = Database(str(tmp_path / "l.db"))
    rb = Rebalancer(db)
    HomeMoves(db).record(HomeMove("u1", -1000.0, 0, 1, "balance", "test"))  # ours, long held down
    d = DomainInfo(1, "pv", "u1", 2, 2 * GiB, 2 * GiB, False, type="pv")
    n1 = MEMORY_ONLY.cpus_of_nodes([1])
    for t in (1.0, 3.0, 5.0):
        vc = {1: tuple(VcpuInfo(1, i, 4, "blocked", MEMORY_ONLY.all_cpus, n1, 0.0) for i in range(2))}
        rb.following.homed_fixed["u1"] = 1
        decision = rb.decide(HostSnapshot(MEMORY_ONLY, t, (d,), vc), {"u1": {2: GiB >> 12}}, set())
        assert not [a for a in decision.actions if isinstance(a, SetNodeAffinity)], decision.note


def test_a_vm_whose_stored_policy_cannot_be_read_is_not_the_rebalancers():
    """``numa_mode=strict`` with a typo in ``numa_nodes`` was read as the default policy
    (best_effort) and the rebalancer moved the VM its admin meant to stay put."""
    from xapi_numa.ops.xapi_link import XapiLink

    records = {"OpaqueRef:a": {"uuid": "typo", "other_config": {"numa_mode": "strict", "numa_nodes": "1,x"}},
               "OpaqueRef:b": {"uuid": "any", "other_config": {"numa_mode": "any", "numa_on_exhaust": "bogus"}},
               "OpaqueRef:c": {"uuid": "fine", "other_config": {"numa_mode": "preferred", "numa_nodes": "1"}}}

    class Session:
        class xenapi:
            class VM:
                @staticmethod
                def get_all_records():
                    return records

    link = XapiLink(lambda: Session(), lambda: 0.0)
    assert link.rebalance_opted_out("typo") and link.rebalance_opted_out("any")
    assert not link.rebalance_opted_out("fine")
    assert link.policy_of("typo").mode == "best_effort"  # settling's default is unchanged


def test_a_vnode_move_and_the_periods_follow_steps_share_the_targets_room(tmp_path):
    """Node 1 has room for one vnode (512 MiB) and the step of a VM following its home there: the
    planner moved a whole vnode there and, in the same period, gave the follower a step sized to
    the whole room again (more than the room asked of node 1; the later mover refused).  The
    follower's step takes its room first (tests/test_rebalance_follow_room.py), the vnode what is left."""
    from xapi_numa.core import vnuma
    from xapi_numa.core.actions import MoveMemory

    topo = Topology.uniform(2, 4, 8 * GiB)
    n0, n1 = topo.cpus_of_nodes([0]), topo.cpus_of_nodes([1])
    plan = vnuma.plan_follow(topo, vnuma.GuestSpec("pvh", 4, GiB), [0, 1])
    lay = vnuma.layout_of(plan, vnuma.memory_ranges(plan)).with_pnode(0, 0).with_pnode(1, 0)
    vnode_pages = lay.vnodes[1].memory >> 12
    doms = (DomainInfo(5, "numa", "u-numa", 4, GiB, GiB, False, "pvh"),
            DomainInfo(6, "b", "u-b", 2, GiB, GiB, False, "pvh"),
            DomainInfo(7, "f", "u-f", 1, GiB, GiB, False, "pvh"))
    rb = Rebalancer(Database(str(tmp_path / "db")), read_layout=lambda domid: lay if domid == 5 else None)
    rb.following.followed["u-f"], rb.following._domid["u-f"] = (1, 0), 7  # f's memory follows its home, node 1
    pages = {"u-b": {0: GiB >> 12}, "u-f": {0: GiB >> 12}}
    room = {0: 0, 1: vnode_pages + 249037 + 1000}  # (249037: the follower's step, 95 % of its 1 GiB)
    moved = False
    for t in (2.0, 4.0, 6.0):
        vc = {5: tuple(VcpuInfo(5, i, i, "running", topo.all_cpus, n0, t) for i in range(4)),
              6: tuple(VcpuInfo(6, i, i, "running", topo.all_cpus, n0, t) for i in range(2)),
              7: (VcpuInfo(7, 0, 4, "blocked", topo.all_cpus, n1, 0.0),)}
        decision = rb.decide(HostSnapshot(topo, t, doms, vc), pages, set(), room=dict(room))
        to_1 = [a for a in decision.actions if isinstance(a, MoveMemory) and a.to == 1]
        moved = moved or any(a.vnode is not None for a in to_1)
        assert sum(vnode_pages if a.vnode is not None else a.max_pages for a in to_1) <= room[1], decision.note
    assert moved


def test_no_home_moves_while_a_domain_could_not_be_read(tmp_path):
    """Node 0: three busy 2-vCPU VMs on 4 pCPUs; node 1: a busy 4-vCPU VM, x, filling it.
    x's vCPUs could not be read for two periods (HostSnapshot.unread: left out, not gone):
    node 1 was taken for empty (load 0.00) and node 0's VMs were moved onto x's node."""
    topo = Topology.uniform(2, 4, 8 * GiB)
    n0, n1 = topo.cpus_of_nodes([0]), topo.cpus_of_nodes([1])
    doms = [DomainInfo(i, "v%d" % i, "u%d" % i, 2, GiB, GiB, False, "pvh") for i in (1, 2, 3)]
    x = DomainInfo(4, "x", "ux", 4, GiB, GiB, False, "pvh")
    pages = dict({d.uuid: {0: GiB >> 12} for d in doms}, ux={1: GiB >> 12})
    rb = Rebalancer(Database(str(tmp_path / "db")))
    for t in range(2, 41, 2):
        unread = t > 30
        vc = {d.domid: tuple(VcpuInfo(d.domid, i, i, "running", topo.all_cpus, n0, t) for i in range(2))
              for d in doms}
        if not unread:
            vc[4] = tuple(VcpuInfo(4, i, 4 + i, "running", topo.all_cpus, n1, t) for i in range(4))
        snap = HostSnapshot(topo, float(t), tuple(doms + ([] if unread else [x])), vc,
                            unread={"ux": 4} if unread else {})
        decision = rb.decide(snap, pages, set())
        assert not [a for a in decision.actions if isinstance(a, SetNodeAffinity)], (t, decision.note)
    assert "not read" in decision.note


def test_a_home_move_cut_short_on_a_host_with_a_guest_mask_is_mended():
    """The host's guest mask keeps CPU 0 for dom0: a move to node 0 writes soft affinity
    {1, 2, 3}.  Killed after the first vCPU's write, the next look compared it with all of
    node 0 ({0..3}), took it for someone else's change and dropped the note: the VM stayed
    homed on two nodes for good."""
    from xapi_numa.core.actions import SetAffinity
    from xapi_numa.ops.part_moves import PartMoves
    from xapi_numa.state.homes import Intent

    topo = Topology.uniform(2, 4, 8 * GiB)
    n1, mask = topo.cpus_of_nodes([1]), topo.all_cpus - {0}
    d = DomainInfo(1, "vm", "u", 2, GiB, GiB, False, "pvh")
    vm = rebalance.VmLoad(1, "u", "vm", 1, (0, 1), 2.0, {1: 1})
    written = [a.soft for a in rebalance_moves.home_move_actions(vm, 0, topo, "test", mask)
               if isinstance(a, SetAffinity)][0]
    assert written == frozenset({1, 2, 3})
    intent = Intent(1, 1, 0, None, {0: n1, 1: n1})

    def look(soft1):
        vc = {1: (VcpuInfo(1, 0, 1, "running", topo.all_cpus, written, 1.0),
                  VcpuInfo(1, 1, 5, "running", topo.all_cpus, soft1, 1.0))}
        part = PartMoves()
        return part, part.left_unwritten(HostSnapshot(topo, 10.0, (d,), vc, guest_cpus=mask), "u", intent, None,
                                         False)
    part, waiting = look(n1)  # vCPU 0 written, vCPU 1 not
    assert waiting
    assert [(a.vcpu, a.soft) for a in part.due(HostSnapshot(topo, 11.0, (d,), {1: ()}, guest_cpus=mask), set(),
                                                set()) if isinstance(a, SetAffinity)] == [(0, n1)]
    part, waiting = look(written)  # every write made: nothing to mend
    assert not waiting and not part.mending


def test_a_vnode_move_keeps_its_vcpus_inside_the_hosts_guest_mask(tmp_path):
    """A whole VM's new home is the node's CPUs inside the guest mask (home_move_actions);
    a vnode's was all of the node's, CPU 4 (kept for dom0 by the mask) included."""
    from xapi_numa.core import vnuma
    from xapi_numa.core.actions import SetAffinity

    topo = Topology.uniform(2, 4, 8 * GiB)
    n0, mask = topo.cpus_of_nodes([0]), topo.all_cpus - {4}
    plan = vnuma.plan_follow(topo, vnuma.GuestSpec("pvh", 4, GiB), [0, 1])
    lay = vnuma.layout_of(plan, vnuma.memory_ranges(plan)).with_pnode(0, 0).with_pnode(1, 0)
    doms = (DomainInfo(5, "numa", "u-numa", 4, GiB, GiB, False, "pvh"),
            DomainInfo(6, "b", "u-b", 2, GiB, GiB, False, "pvh"))
    rb = Rebalancer(Database(str(tmp_path / "db")), read_layout=lambda domid: lay if domid == 5 else None)
    softs = []
    for t in (2.0, 4.0, 6.0):
        vc = {5: tuple(VcpuInfo(5, i, i, "running", topo.all_cpus, n0, t) for i in range(4)),
              6: tuple(VcpuInfo(6, i, i, "running", topo.all_cpus, n0, t) for i in range(2))}
        decision = rb.decide(HostSnapshot(topo, t, doms, vc, guest_cpus=mask), {"u-b": {0: GiB >> 12}}, set())
        softs += [a.soft for a in decision.actions if isinstance(a, SetAffinity) and a.soft is not None]
    assert softs and all(s <= mask for s in softs), softs


def test_half_a_swap_is_no_move(tmp_path):
    """Node 0: three busy VMs on 4 pCPUs; node 1: three idle ones.  The planner trades a busy
    VM for an idle one (a swap: piling it onto the idle ones would home 8 vCPUs on node 1's
    4).  The idle VM's writes refused, the busy one's move counted all the same: logged as a
    swap, held down, its memory following, node 1 homing 8 vCPUs."""
    from xapi_numa.core.actions import SetAffinity
    from xapi_numa.ops.executor import DONE, REFUSED, Outcome

    topo = Topology.uniform(2, 4, 8 * GiB)
    n0, n1 = topo.cpus_of_nodes([0]), topo.cpus_of_nodes([1])
    doms = [DomainInfo(i, "v%d" % i, "u%d" % i, 2, GiB, GiB, False, "pvh") for i in range(1, 7)]
    pages = {d.uuid: {0 if d.domid <= 3 else 1: GiB >> 12} for d in doms}
    rb = Rebalancer(Database(str(tmp_path / "db")))
    for t in (2.0, 4.0, 6.0):
        vc = {d.domid: tuple(VcpuInfo(d.domid, i, i, "running" if d.domid <= 3 else "blocked", topo.all_cpus,
                                      n0 if d.domid <= 3 else n1, t if d.domid <= 3 else 0.0) for i in range(2))
              for d in doms}
        decision = rb.decide(HostSnapshot(topo, t, tuple(doms), vc), pages, set())
        if any(isinstance(a, SetNodeAffinity) for a in decision.actions):
            break
    assert decision.assessment.best.kind == "swap" and not decision.assessment.more
    (busy, _), (idle, _) = decision.assessment.best.moves
    steps = rb.applied([Outcome(a, REFUSED if a.domid == idle.domid else DONE) for a in decision.actions])
    assert steps == [] and HomeMoves(rb.homes.db).recent() == []
    assert rb.part_moves.mending == {busy.uuid}  # its writes undone in the next periods
    vc[busy.domid] = tuple(VcpuInfo(busy.domid, i, i, "running", topo.all_cpus, n1, 8.0) for i in range(2))
    undo = rb.decide(HostSnapshot(topo, 8.0, tuple(doms), vc), pages, set()).actions
    assert {a.soft for a in undo if isinstance(a, SetAffinity) and a.domid == busy.domid} == {n0}
