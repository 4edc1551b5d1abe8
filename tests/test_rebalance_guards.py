"""What the rebalancer must not move, and where memory must not go: a target without
room (free less claims and reservations), memory that cannot follow (QEMU's map
cache, passthrough), VMs whose pages, policy or pool it does not know or that are
still being built, and moves the executor made only in part."""
import os

import attrs
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core import rebalance, rebalance_moves, rebalance_plan
from xapi_numa.core.actions import SetAffinity, SetNodeAffinity
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology
from xapi_numa.ops.executor import DEFERRED, DONE, REFUSED, Outcome
from xapi_numa.ops.rebalancing import Rebalancer
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.ops.xapi_link import XapiLink
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMove, HomeMoves
from xapi_numa.state.ledger import Ledger

GiB = 1 << 30
TOPO = Topology.uniform(2, 4, 8 * GiB)
N0, N1 = TOPO.cpus_of_nodes([0]), TOPO.cpus_of_nodes([1])


def vm(n, home, demand, pages=None, **kw):
    return rebalance.VmLoad(n, "uuid-{}".format(n), "vm{}".format(n), home, (0, 1), demand,
                            pages if pages is not None else {home: GiB >> 12}, **kw)


OVERLOADED = [vm(1, 0, 2.0), vm(2, 0, 2.0), vm(3, 0, 2.0)]  # 6 pCPUs wanted on node 0's 4, node 1 idle


# --- room on the target -----------------------------------------------------------------------------
def test_a_target_without_room_for_the_memory_is_no_target():
    assert rebalance.assess(OVERLOADED, TOPO).best is not None
    a = rebalance.assess(OVERLOADED, TOPO, room={0: 0, 1: (GiB >> 12) // 2})
    assert a.best is None and "no eligible move" in a.reason


def test_moves_in_one_period_share_the_targets_room():
    vms = [vm(i, 0, 2.0) for i in range(1, 6)]
    room = {0: 0, 1: GiB >> 12}  # room for one VM's memory on node 1
    a = rebalance_plan.plan(vms, TOPO, room=room)
    assert len(a.chosen) == 1


def test_a_follow_step_never_takes_more_than_the_room():
    moved = vm(1, 1, 2.0, {0: GiB >> 12})
    step = rebalance_moves.follow_memory(moved, rebalance.Settings(), room=1000)
    assert step is not None and step.max_pages == 1000
    assert rebalance_moves.follow_memory(moved, rebalance.Settings(), room=0) is None


def sim_host(tmp_path, free_on_1):
    """2 nodes x 4 pCPUs x 8G: three busy 2G VMs homed on node 0, node 1 idle with
    ``free_on_1`` left by an idle VM there.  A DMA zone of 1 GiB (dma_bits=30) leaves node 0 room
    for the three whole: with Xen's default of 2 GiB the third would take its second GiB (a 1 GiB
    extent, meminit_hvm) from node 1."""
    sim = SimHypervisor.init(str(tmp_path / "h.json"), TOPO, "credit2", 1, dom0_vcpus=1, dom0_memory=256 << 20,
                             force=True, dma_bits=30)
    for i in range(3):
        sim.create("busy{}".format(i), 2, 2 * GiB, dtype="pvh", soft=N0, load="busy")
    filler = sim.node_memory()[1].claimable - free_on_1
    if filler > 0:
        sim.create("fat", 1, filler, dtype="pvh", soft=N1, hard=N1, load="idle")
    return sim


def run(sim, rt, seconds):
    for _ in range(seconds):
        sim.run(1.0)
        rt.cycle()


def test_no_vm_is_moved_to_a_node_that_cannot_take_its_memory(tmp_path):
    """Node 1 has 900M free: a busy 2G VM moved there would run with most of its memory
    remote for good, and its memory follow-ups spilled step after step."""
    sim = sim_host(tmp_path, 900 << 20)
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings())
    run(sim, rt, 30)
    assert HomeMoves(rt.db).recent() == []


def test_memory_reserved_for_a_start_is_no_room(tmp_path):
    """Node 1 has room, but a VM about to start reserved it in the ledger."""
    sim = sim_host(tmp_path, 6 * GiB)
    db = Database(str(tmp_path / "l.db"))
    free = {m.node: m.claimable for m in sim.node_memory()}
    Ledger(db=db).reserve("vm-starting", {1: free[1] - (512 << 20)}, ttl=3600, free_now=lambda: free)
    rt = Runtime(sim, db, Settings())
    run(sim, rt, 30)
    assert HomeMoves(rt.db).recent() == []
    db2 = Database(str(tmp_path / "l2.db"))  # the same host without the reservation: a VM moves
    rt2 = Runtime(sim, db2, Settings())
    run(sim, rt2, 30)
    assert [m.to_node for m in HomeMoves(db2).recent()][:1] == [1]


# --- what is not weighed as movable ---------------------------------------------------------------------
def dom(domid, paused=False, claimed=0, pool=0):
    return DomainInfo(domid, "vm{}".format(domid), "uuid-{}".format(domid), 2, GiB, GiB, paused, "pvh", claimed, pool)


def vcpus(domid, soft, cpu_time=1.0, state="running"):
    return tuple(VcpuInfo(domid, v, min(soft) + v, state, TOPO.all_cpus, soft, cpu_time) for v in (0, 1))


def loads_of(rb, domains, vc, pages=None, pools=None):
    snap = HostSnapshot(TOPO, 10.0, tuple(domains), vc, pools=pools or {})
    pages = pages if pages is not None else {d.uuid: {0: GiB >> 12} for d in domains}
    return {v.uuid: v for v in rb.loads(snap, pages, set(), 10.0)}


def test_a_vm_whose_pages_are_not_known_is_not_moved(tmp_path):
    rb = Rebalancer(Database(str(tmp_path / "db")))
    got = loads_of(rb, [dom(1), dom(2)], {1: vcpus(1, N0), 2: vcpus(2, N0)}, pages={"uuid-1": {0: GiB >> 12}})
    assert got["uuid-1"].movable and not got["uuid-2"].movable


def test_a_vm_homed_on_both_nodes_loads_both_as_its_vcpus_are_homed(tmp_path):
    """Its demand was left out of the node loads (home None); a temporary pin of
    homing's is no home for it either."""
    from xapi_numa.core.host import VcpuInfo
    rb = Rebalancer(Database(str(tmp_path / "db")))
    both = (VcpuInfo(1, 0, 0, "running", TOPO.all_cpus, N0, 1.0), VcpuInfo(1, 1, 4, "running", N1, N1, 1.0))
    rb.unit_demand[("uuid-1", None)] = 2.0
    got = loads_of(rb, [dom(1)], {1: both})
    assert got["uuid-1"].home is None and got["uuid-1"].loads == {0: 0.5, 1: 0.5}
    assert rebalance.node_demand(list(got.values()), [0, 1]) == {0: 1.0, 1: 1.0}
    # a preferred list says where its home may move, not where its vCPUs run now
    from xapi_numa.core.policy import Policy
    listed = Rebalancer(Database(str(tmp_path / "db2")), policy_of=lambda uuid: Policy.parse("preferred", "0"))
    assert loads_of(listed, [dom(1)], {1: both})["uuid-1"].loads == {0: 0.5, 1: 0.5}
    # vCPU 1 held on node 1 by homing's temporary pin (hard), its soft affinity the host's
    held = (both[0], VcpuInfo(1, 1, 4, "running", N1, TOPO.all_cpus, 1.0))
    snap = HostSnapshot(TOPO, 10.0, (dom(1),), {1: held})
    vm = rb.loads(snap, {"uuid-1": {0: GiB >> 12}}, set(), 10.0, our_pins={("uuid-1", 1)})[0]
    assert vm.home is None and vm.loads == {0: 0.75, 1: 0.25}


def test_a_vm_settled_inside_the_hosts_guest_mask_is_moved_as_any(tmp_path):
    """Its hard affinity is the host's guest mask, as settling leaves it: no admin pin."""
    rb = Rebalancer(Database(str(tmp_path / "db")))
    mask = frozenset(range(1, TOPO.all_cpus.__len__()))
    inside = tuple(attrs.evolve(v, hard=mask) for v in vcpus(1, N0))
    snap = HostSnapshot(TOPO, 10.0, (dom(1),), {1: inside})
    pages = {"uuid-1": {0: GiB >> 12}}
    assert not rb.loads(snap, pages, set(), 10.0)[0].movable  # no mask known: an admin's pin
    assert rb.loads(attrs.evolve(snap, guest_cpus=mask), pages, set(), 10.0)[0].movable


def test_a_domain_being_built_or_arriving_is_not_moved(tmp_path):
    rb = Rebalancer(Database(str(tmp_path / "db")))
    never_run = vcpus(2, N0, cpu_time=0.0, state="paused")
    got = loads_of(rb, [dom(1), dom(2, paused=True), dom(3, claimed=GiB)],
                   {1: vcpus(1, N0), 2: never_run, 3: vcpus(3, N0)})
    assert [got[u].movable for u in ("uuid-1", "uuid-2", "uuid-3")] == [True, False, False]


def test_memory_that_cannot_move_is_weighed_as_staying(tmp_path):
    blocked = {2}
    rb = Rebalancer(Database(str(tmp_path / "db")), move_blockers=lambda domid: ["x"] if domid in blocked else [])
    got = loads_of(rb, [dom(1), dom(2)], {1: vcpus(1, N0), 2: vcpus(2, N0)})
    assert not got["uuid-1"].fixed_memory and got["uuid-2"].fixed_memory and got["uuid-2"].memory_stays
    assert rebalance_moves.follow_memory(attrs.evolve(got["uuid-2"], home=1), rebalance.Settings()) is None
    swaps = rebalance.candidate_moves([attrs.evolve(got["uuid-2"], demand=2.0), attrs.evolve(got["uuid-1"], home=1)],
                                      [0, 1], swaps=True)
    assert swaps == []  # its memory would stay behind: never traded


def test_a_vms_home_moves_only_inside_its_cpu_pool(tmp_path):
    rb = Rebalancer(Database(str(tmp_path / "db")))
    pools = {0: TOPO.all_cpus, 1: N0, 2: N1}
    got = loads_of(rb, [dom(1, pool=1), dom(2, pool=2), dom(3)], {1: vcpus(1, N0), 2: vcpus(2, N1), 3: vcpus(3, N0)},
                   pools=pools)
    assert got["uuid-1"].allowed == frozenset({0}) and got["uuid-2"].allowed == frozenset({1})
    assert got["uuid-3"].allowed == frozenset({0, 1})
    assert not rebalance.candidate_moves([got["uuid-1"]], [0, 1])


def test_a_vm_xapi_has_not_listed_is_left_alone():
    class Session:
        class xenapi:
            class VM:
                @staticmethod
                def get_all_records():
                    return {"OpaqueRef:a": {"uuid": "listed", "other_config": {}}}

    link = XapiLink(lambda: Session(), lambda: 0.0)
    assert not link.rebalance_opted_out("listed")
    assert link.rebalance_opted_out("started-since")
    away = XapiLink(lambda: (_ for _ in ()).throw(ConnectionRefusedError(111, "refused")), lambda: 0.0)
    assert away.rebalance_opted_out("listed")  # xapi away since before: nothing known


# --- a move counts only once made ------------------------------------------------------------------------
def first_home_move(rb, domains, pages):
    """The home-move writes of the first move the rebalancer makes, its VMs all busy on node 0."""
    for t in (1.0, 3.0, 5.0, 7.0):
        vc = {d.domid: vcpus(d.domid, N0, cpu_time=t) for d in domains}
        decision = rb.decide(HostSnapshot(TOPO, t, tuple(domains), vc), pages, set())
        homes = [a for a in decision.actions if isinstance(a, (SetAffinity, SetNodeAffinity))]
        if homes:
            return homes
    raise AssertionError("no move: " + decision.note)


def test_a_move_the_executor_made_only_in_part_is_not_a_move(tmp_path):
    db = Database(str(tmp_path / "db"))
    rb = Rebalancer(db)
    domains = [dom(1), dom(2), dom(3)]
    homes = first_home_move(rb, domains, {d.uuid: {0: GiB >> 12} for d in domains})
    outcomes = [Outcome(a, DONE if i == 0 else DEFERRED) for i, a in enumerate(homes)]
    assert rb.applied(outcomes) == []
    assert HomeMoves(db).recent() == [] and rb.following.followed == {}


def part_made(tmp_path, name):
    """A rebalancer with one move made in part (node affinity and vCPU 0 of three VMs'
    mover; vCPU 1 refused), and the host as those writes left it."""
    rb = Rebalancer(Database(str(tmp_path / name)))
    domains = [dom(1), dom(2), dom(3)]
    pages = {d.uuid: {0: GiB >> 12} for d in domains}
    homes = first_home_move(rb, domains, pages)
    rb.applied([Outcome(a, DONE if isinstance(a, SetNodeAffinity) or a.vcpu == 0 else REFUSED) for a in homes])
    moved = homes[0].domid
    vc = {d.domid: vcpus(d.domid, N0, cpu_time=9.0) for d in domains}
    vc[moved] = (attrs.evolve(vc[moved][0], soft=N1), vc[moved][1])
    return rb, domains, pages, vc, moved


def test_a_move_made_only_in_part_is_undone_until_the_vm_has_one_home_again(tmp_path):
    """Node affinity and vCPU 0 moved, vCPU 1 refused: the VM was left homed on two nodes
    for good (not a move, and a VM over several nodes is no candidate and no fix-up's).
    The writes that were made are undone in the next periods, until they are made."""
    rb, domains, pages, split, moved = part_made(tmp_path, "db")
    undo = mending(rb, 9.0, domains, pages, split, moved)
    assert sorted((type(a).__name__, getattr(a, "vcpu", None)) for a in undo) == [
        ("SetAffinity", 0), ("SetNodeAffinity", None)]
    assert all(a.soft == N0 for a in undo if isinstance(a, SetAffinity))
    assert all(a.nodes is None for a in undo if isinstance(a, SetNodeAffinity))  # automatic: from the vCPUs
    rb.applied([Outcome(a, DONE if isinstance(a, SetAffinity) else DEFERRED) for a in undo])
    home = {d.domid: vcpus(d.domid, N0, cpu_time=11.0) for d in domains}  # vCPU 0 back home
    left = mending(rb, 11.0, domains, pages, home, moved)
    assert [type(a).__name__ for a in left] == ["SetNodeAffinity"]  # only what is not undone yet
    rb.applied([Outcome(a, DONE) for a in left])
    assert mending(rb, 13.0, domains, pages, home, moved) == []


def mending(rb, t, domains, pages, vc, moved, excluded=frozenset()):
    return [a for a in rb.decide(HostSnapshot(TOPO, t, tuple(domains), vc), pages, set(excluded)).actions
            if getattr(a, "domid", None) == moved and "undo" in getattr(a, "reason", "")]


def test_a_part_made_move_is_not_mended_once_the_vm_is_not_the_rebalancers(tmp_path):
    """The VM was then pinned by its admin (or made strict, or opted out: left alone): the
    mending writes were still made, every period, over what its admin set.  A VM excluded
    for a while (a mover of its own runs, say) gets them once it is not."""
    rb, domains, pages, vc, moved = part_made(tmp_path, "a")
    assert mending(rb, 9.0, domains, pages, vc, moved, excluded={moved}) == []
    assert mending(rb, 11.0, domains, pages, vc, moved) != []  # kept for when it is not excluded
    rb, domains, pages, vc, moved = part_made(tmp_path, "b")
    pinned = {**vc, moved: tuple(attrs.evolve(v, hard=N1) for v in vc[moved])}  # an admin's hard pin
    assert mending(rb, 9.0, domains, pages, pinned, moved) == []
    assert mending(rb, 11.0, domains, pages, vc, moved) == []  # dropped, not only skipped


def test_a_vcpu_set_by_someone_else_since_and_refusals_for_long_end_the_mending(tmp_path):
    rb, domains, pages, vc, moved = part_made(tmp_path, "a")
    theirs = {**vc, moved: (attrs.evolve(vc[moved][0], soft=TOPO.all_cpus), vc[moved][1])}
    assert [type(a).__name__ for a in mending(rb, 9.0, domains, pages, theirs, moved)] == ["SetNodeAffinity"]
    rb, domains, pages, vc, moved = part_made(tmp_path, "b")
    for t in (9.0, 100.0, 300.0):
        undo = mending(rb, t, domains, pages, vc, moved)
        assert undo, t
        rb.applied([Outcome(a, REFUSED, "refused") for a in undo])
    assert mending(rb, 320.0, domains, pages, vc, moved) == []  # given up after GIVE_UP seconds


def test_a_move_whose_writes_exceed_the_budget_waits():
    a = rebalance_plan.plan(OVERLOADED, TOPO)
    assert a.best is not None
    assert rebalance_plan.plan(OVERLOADED, TOPO, max_writes=2).best is None  # 2 vCPUs, node affinity: 3
    assert rebalance_plan.plan(OVERLOADED, TOPO, max_writes=3).best == a.best


def test_a_move_over_the_budget_gives_way_to_the_best_that_fits():
    """A 4-vCPU VM's move (5 writes) over a budget of 3 used to leave the period with no
    move at all, though a 2-vCPU VM on the same node would relieve it within budget."""
    big = rebalance.VmLoad(9, "uuid-9", "big", 0, (0, 1, 2, 3), 3.0, {0: GiB >> 12})
    vms = [big, vm(1, 0, 2.0)]
    assert rebalance_plan.plan(vms, TOPO).best.moves[0][0] is big  # the best, unbounded
    a = rebalance_plan.plan(vms, TOPO, max_writes=3)
    assert a.best is not None and a.best.moves[0][0].uuid == "uuid-1"
    none = rebalance_plan.plan([big, vm(1, 0, 2.0, movable=False)], TOPO, max_writes=3)
    assert none.best is None and "budget of 3" in none.reason


# --- memory following -------------------------------------------------------------------------------------
def following(tmp_path):
    from xapi_numa.ops.memory_following import MemoryFollowing
    from xapi_numa.state.moves import MoveJournal

    db = Database(str(tmp_path / "f.db"))
    return MemoryFollowing(rebalance.Settings(), MoveJournal(db), HomeMoves(db))


def test_follow_steps_in_one_period_share_the_targets_room(tmp_path):
    f = following(tmp_path)
    a, b = vm(1, 1, 2.0, {0: GiB >> 12}), vm(2, 1, 2.0, {0: GiB >> 12})
    f.begin_period(None, {0: 0, 1: 1000})
    steps = f.start(a, 1) + f.start(b, 1)
    assert sum(s.max_pages for s in steps) == 1000


def test_a_target_short_of_room_for_a_while_keeps_the_vm_following(tmp_path):
    f = following(tmp_path)
    moved = vm(1, 1, 2.0, {0: GiB >> 12})
    f.begin_period(None, {1: 0})
    assert f.start(moved, 1) == [] and "uuid-1" in f.followed
    f.begin_period(None, {1: 0})
    assert f.steps([moved], set(), now=100.0) == [] and "uuid-1" in f.followed  # waits: a start holds the room
    f.begin_period(None, {1: 10 ** 6})
    assert [s.to for s in f.steps([moved], set(), now=110.0)] == [1]
    f.begin_period(None, {1: 0})
    f.steps([moved], set(), now=200.0)
    f.steps([moved], set(), now=200.0 + rebalance.Settings().hold_down)
    assert "uuid-1" not in f.followed  # no room for a whole hold-down: the fix-up decides


def test_a_step_to_another_node_does_not_count_for_the_home_followed(tmp_path):
    f = following(tmp_path)
    f.begin_period(None, None)
    f.start(vm(1, 1, 2.0, {0: GiB >> 12}), 1)
    f.moved("uuid-1", 0, 500)
    assert f.followed["uuid-1"] == (1, 0)
    f.moved("uuid-1", 1, 500)
    assert f.followed["uuid-1"] == (1, 500)


def test_after_a_restart_following_skips_the_pages_its_steps_already_took(tmp_path):
    """The mover takes gfns in order: resumed with a count of 0, following moved again the
    pages already on the target (a pause each time), and the step 'brought' pages, so it
    never stopped for that."""
    from xapi_numa.ops import observe
    from xapi_numa.ops.memory_following import MemoryFollowing
    from xapi_numa.state.homes import HomeMove
    from xapi_numa.state.moves import MoveJournal
    sim = sim_host(tmp_path, 6 * GiB)
    d = next(x for x in sim.domains() if x.name == "busy0")
    for v in range(2):
        sim.set_vcpu_affinity(d.domid, v, soft=N1)  # homed on node 1 by a move, memory still on 0
    db = Database(str(tmp_path / "f.db"))
    HomeMoves(db).record(HomeMove(d.uuid, sim.clock(), 0, 1, "balance", "then"))
    before = MemoryFollowing(rebalance.Settings(), MoveJournal(db), HomeMoves(db))
    before.resume(observe.take(sim))
    before.moved(d.uuid, 1, 500)
    before.moved(d.uuid, 1, 300)
    assert before.followed[d.uuid] == (1, 800)
    after = MemoryFollowing(rebalance.Settings(), MoveJournal(db), HomeMoves(db))  # the daemon restarted
    after.resume(observe.take(sim))
    assert after.followed[d.uuid] == (1, 800)
    sim.destroy(d.domid)  # the VM started again: a new domain, its memory built afresh
    domid = sim.create("busy0", 2, 2 * GiB, dtype="pvh", soft=N1, load="busy", uuid=d.uuid)
    assert domid != d.domid
    again = MemoryFollowing(rebalance.Settings(), MoveJournal(db), HomeMoves(db))
    again.resume(observe.take(sim))
    assert again.followed.get(d.uuid, (1, 0))[1] == 0


def test_a_vm_whose_memory_stays_keeps_the_home_we_gave_it(tmp_path):
    """Four busy HVM guests (QEMU: memory that cannot move) on node 0 of two: one gets a
    new home on node 1 and keeps it; the affinity fix-up, which points a VM at its
    memory, must not send it back (it did, within seconds, and they bounced)."""
    sim = SimHypervisor.init(str(tmp_path / "h.json"), TOPO, "credit2", 1, dom0_vcpus=1, dom0_memory=256 << 20,
                             force=True)
    for i in range(4):
        sim.create("hvm{}".format(i), 2, GiB, dtype="hvm", soft=N0, load="busy")
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings())
    run(sim, rt, 120)
    moves = HomeMoves(rt.db).recent()
    assert moves and all(m.to_node == 1 for m in moves)
    for m in moves:
        domid = next(d.domid for d in sim.domains() if d.uuid == m.uuid)
        assert all(v.soft == N1 for v in sim.vcpus(domid)), m


def test_a_vm_whose_memory_stays_goes_back_to_its_memory_once_its_old_node_has_room(tmp_path):
    """The home we gave an HVM guest (QEMU: its memory cannot follow) was held for good:
    with the load that justified it gone, it ran with all its memory remote for ever."""
    sim = SimHypervisor.init(str(tmp_path / "h.json"), TOPO, "credit2", 1, dom0_vcpus=1, dom0_memory=256 << 20,
                             force=True)
    domids = [sim.create("hvm{}".format(i), 2, GiB, dtype="hvm", soft=N0, load="busy") for i in range(4)]
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings())
    run(sim, rt, 120)
    moved = {m.uuid for m in HomeMoves(rt.db).recent()}
    assert moved
    uuids = {d.domid: d.uuid for d in sim.domains()}
    for domid in domids:
        if uuids[domid] not in moved:
            sim.set_load(domid, "idle")  # the load that sent the others away is gone
    run(sim, rt, 30)
    stayed = [d for d in domids if uuids[d] in moved]
    assert all(v.soft == N1 for d in stayed for v in sim.vcpus(d))  # held for the hold-down
    run(sim, rt, int(rebalance.Settings().hold_down))
    assert all(v.soft == N0 for d in stayed for v in sim.vcpus(d))  # back with its memory


def test_trimming_to_the_write_budget_trims_the_reason_too():
    vms = [vm(i, 0, 2.0) for i in range(1, 6)]
    a = rebalance_plan.plan(vms, TOPO)
    assert len(a.chosen) >= 2 and "; then " in a.reason
    one = rebalance_plan.plan(vms, TOPO, max_writes=3)
    assert one.chosen == (a.best,) and "; then " not in one.reason


def test_whether_memory_can_move_is_asked_once_the_domain_runs(tmp_path):
    """A domain being built has not all its devices yet (QEMU registers later): its answer
    was cached as "movable" for the domain's life."""
    asked = []
    rb = Rebalancer(Database(str(tmp_path / "db")), move_blockers=lambda domid: asked.append(domid) or ["qemu"])
    got = loads_of(rb, [dom(2, paused=True)], {2: vcpus(2, N0, cpu_time=0.0, state="paused")})
    assert asked == [] and got["uuid-2"].fixed_memory and not got["uuid-2"].movable
    got = loads_of(rb, [dom(2)], {2: vcpus(2, N0)})
    assert asked == [2] and got["uuid-2"].fixed_memory


def test_a_step_refused_for_a_hold_down_ends_following(tmp_path):
    f = following(tmp_path)
    moved = vm(1, 1, 2.0, {0: GiB >> 12})
    f.begin_period(None, None)
    f.start(moved, 1)
    f.refused("uuid-1", 0.0)
    assert f.steps([moved], set(), now=10.0) and "uuid-1" in f.followed
    f.steps([moved], set(), now=rebalance.Settings().hold_down)
    assert "uuid-1" not in f.followed and "uuid-1" not in f.held_homes()


def test_a_rebooted_vm_is_a_new_domain_to_following(tmp_path):
    f = following(tmp_path)
    f.begin_period(None, None)
    f.start(vm(1, 1, 2.0, {0: GiB >> 12}), 1)
    f.start(vm(2, 1, 2.0, {0: GiB >> 12}, type="pv"), 1)
    f.forget_all_but({"uuid-1": 1, "uuid-2": 2})
    assert f.held_homes() == {"uuid-1", "uuid-2"}
    f.forget_all_but({"uuid-1": 7, "uuid-2": 2})  # uuid-1 rebooted: domid 7
    assert f.held_homes() == {"uuid-2"}


def test_memory_stops_following_a_vm_the_rebalancer_must_now_leave_alone(tmp_path):
    out = {"uuid-1": False}
    rb = Rebalancer(Database(str(tmp_path / "db")), opted_out=lambda uuid: out.get(uuid, False))
    rb.following.start(vm(1, 1, 2.0, {0: GiB >> 12}), 1)
    domains = [dom(1)]
    snap = HostSnapshot(TOPO, 10.0, tuple(domains), {1: vcpus(1, N1)})
    pages = {"uuid-1": {0: GiB >> 12}}
    assert any(a.uuid == "uuid-1" for a in rb.decide(snap, pages, set()).actions)
    out["uuid-1"] = True  # the admin opted it out since
    snap = HostSnapshot(TOPO, 12.0, tuple(domains), {1: vcpus(1, N1, cpu_time=2.0)})
    assert rb.decide(snap, pages, set()).actions == () and rb.following.followed == {}


def test_a_node_only_partly_in_a_vms_pool_is_no_home_for_it(tmp_path):
    rb = Rebalancer(Database(str(tmp_path / "db")))
    pools = {0: frozenset(range(5)), 1: frozenset({5, 6, 7})}  # pool 0 has one pCPU of node 1
    got = loads_of(rb, [dom(1, pool=0)], {1: vcpus(1, N0)}, pools=pools)
    assert got["uuid-1"].allowed == frozenset({0})


def test_a_follow_steps_check_reads_no_page_counts(tmp_path):
    """On stock Xen a page count is a debug-key walk of every page: a step that may spill
    has no use for one."""
    from xapi_numa.ops import move_memory
    sim = sim_host(tmp_path, 6 * GiB)
    domid = next(d.domid for d in sim.domains() if d.name == "busy0")
    calls = []
    real = sim.node_pages
    sim.node_pages = lambda d: calls.append(d) or real(d)
    move_memory.check(sim, str(domid), 1, max_bytes=64 << 20, allow_fallback=True)
    assert calls == []
    move_memory.check(sim, str(domid), 1, max_bytes=64 << 20)
    assert calls == [domid]


def test_with_the_rebalancer_off_the_fix_up_is_not_held_back_by_its_old_moves(tmp_path):
    """A home move in the log from when the rebalancer ran: with it off (--no-rebalance)
    nothing would ever let that VM go, and its memory stayed remote for good."""
    from xapi_numa.state.homes import HomeMove
    sim = SimHypervisor.init(str(tmp_path / "h.json"), TOPO, "credit2", 1, dom0_vcpus=1, dom0_memory=256 << 20,
                             force=True)
    domid = sim.create("g", 2, GiB, dtype="pvh", soft=N0, load="busy")
    for v in range(2):
        sim.set_vcpu_affinity(domid, v, soft=N1)  # homed on node 1, its memory on node 0
    uuid = next(d.uuid for d in sim.domains() if d.domid == domid)
    db = Database(str(tmp_path / "l.db"))
    HomeMoves(db).record(HomeMove(uuid, sim.clock(), 0, 1, "balance", "then"))
    rt = Runtime(sim, db, Settings(rebalancing=False))
    run(sim, rt, 10)
    assert all(v.soft == N0 for v in sim.vcpus(domid))


def test_the_pages_a_running_mover_still_brings_are_no_room(tmp_path):
    from xapi_numa.ops.reserve import room_pages
    from xapi_numa.state.moves import MoveJournal
    sim = sim_host(tmp_path, 6 * GiB)
    ledger = Ledger(str(tmp_path / "l.db"))
    before = room_pages(sim, ledger)
    d = next(x for x in sim.domains() if x.name == "busy0")
    journal = MoveJournal(ledger.db)
    journal.begin(d, 1, {"state": "running"}, pid=os.getpid()).release()
    journal.progress(d.uuid, {"state": "running", "planned_pages": 50000, "moved_pages": 20000})
    assert room_pages(sim, ledger)[1] == before[1] - 30000 and room_pages(sim, ledger)[0] == before[0]


def test_a_host_wide_claim_leaves_no_node_more_room_than_the_host_has(tmp_path):
    """A host-wide claim (stock Xen's, and the fallback where per-node claims are missing)
    is on no node, but Xen keeps it from every allocation: room counted only per node let
    a follow step plan pages the claim forbids (the mover's allocation then fails)."""
    from xapi_numa.ops.reserve import room_pages
    sim = sim_host(tmp_path, 6 * GiB)
    ledger = Ledger(str(tmp_path / "l.db"))
    free = {m.node: m.free >> 12 for m in sim.node_memory()}
    domid = sim.create("starting", 1, 64 << 20, paused=True, auto_numa=False)
    left = sum(m.free >> 12 for m in sim.node_memory())
    keep = 1000  # pages the host has left after the claim
    with sim.store.transaction() as host:  # a build's maximum set before its memory lands, as xenopsd does
        host.domain(domid).max_pages = 1 << 30
    sim.claim(domid, (64 << 20 >> 12) + left - keep)
    assert all(m.claimed == 0 for m in sim.node_memory())  # on no node
    room = room_pages(sim, ledger)
    assert max(room.values()) <= keep and sum(free.values()) > keep


def test_the_further_moves_of_a_period_are_weighed_on_the_writes_left():
    """Weighed on the whole budget, a further move too big for what the first left was
    chosen, then trimmed with everything after it: a smaller one that fits was lost."""
    big = rebalance.VmLoad(9, "uuid-9", "big", 0, (0, 1, 2, 3), 1.0, {0: (GiB // 10) >> 12})  # 5 writes
    vms = [vm(i, 0, 2.0) for i in (1, 2, 3)] + [big]  # 3 writes each
    a = rebalance_plan.plan(vms, Topology.uniform(3, 4, 8 * GiB), max_writes=7)
    assert [c.writes for c in a.chosen] == [3, 3]


def test_back_to_memory_only_within_the_nodes_the_vm_may_use():
    """Its memory on node 0, homed by us on node 1, node 0 quiet again: it goes back,
    unless its preferred list or CPU pool no longer allows node 0, it is not movable
    (held down, its policy), or another homed it elsewhere since."""
    away = vm(1, 1, 1.0, {0: GiB >> 12}, fixed_memory=True)
    ours, cap, s = {"uuid-1": 1}, {0: 4.0, 1: 4.0}, rebalance.Settings()
    assert rebalance_moves.back_to_memory([away], ours, cap, s) == [(away, 0)]
    assert rebalance_moves.back_to_memory([attrs.evolve(away, allowed=frozenset({1}))], ours, cap, s) == []
    assert rebalance_moves.back_to_memory([attrs.evolve(away, movable=False)], ours, cap, s) == []
    assert rebalance_moves.back_to_memory([away], {"uuid-1": 2}, cap, s) == []
    busy = [away, vm(2, 0, 3.0)]  # node 0 would be over 90 % with it
    assert rebalance_moves.back_to_memory(busy, ours, cap, s) == []


def test_a_vm_sent_away_from_its_memory_is_not_brought_back_in_a_dip_between_bursts(tmp_path):
    """V (HVM: its memory stays on node 0) shares node 0 with B, pinned there by its admin:
    6 vCPUs busy for 290 s, quiet for 10 s.  Judged on one instant, V came back in each
    dip and was sent away again in the next burst, 8 home moves an hour."""
    rb = Rebalancer(Database(str(tmp_path / "db")), move_blockers=lambda domid: ["qemu"])
    v_dom = DomainInfo(1, "V", "uuid-V", 2, GiB, GiB, False, "hvm")
    b_dom = DomainInfo(2, "B", "uuid-B", 6, GiB, GiB, False, "hvm")
    pages = {"uuid-V": {0: 1000}, "uuid-B": {0: 1000}}
    soft_v, cpu, moves, t = N0, {}, [], 0.0
    while t < 1800.0:
        t += 2.0
        b_busy = t % 300.0 < 290.0
        vc = {1: tuple(VcpuInfo(1, i, min(soft_v) + i, "running", TOPO.all_cpus, soft_v, t) for i in range(2)),
              2: tuple(VcpuInfo(2, i, i % 4, "running" if b_busy else "blocked", N0, N0,
                                cpu.setdefault(i, 0.0) + (2.0 if b_busy else 0.0)) for i in range(6))}
        cpu = {i: vc[2][i].cpu_time for i in range(6)}
        decision = rb.decide(HostSnapshot(TOPO, t, (v_dom, b_dom), vc), pages, set())
        for a in decision.actions:
            if isinstance(a, SetAffinity) and a.domid == 1:
                soft_v = a.soft
            if isinstance(a, SetNodeAffinity) and a.domid == 1:
                moves.append((t, a.nodes))
        rb.applied([Outcome(a, DONE) for a in decision.actions])
    assert [nodes for _, nodes in moves] == [frozenset({1})], moves  # sent away once, and left there


def test_a_vm_going_back_to_its_memory_counts_there_for_the_planner_in_the_same_period(tmp_path):
    """vm2 (its memory stays on node 0) goes back there as another VM's move to node 0
    has stood one period: both went, and node 0 was overloaded at once."""
    db = Database(str(tmp_path / "db"))
    rb = Rebalancer(db, move_blockers=lambda domid: ["qemu"] if domid == 2 else [])
    HomeMoves(db).record(HomeMove("uuid-2", 3.0 - 300.0, 0, 1, "balance", "earlier"))  # held down until t=3
    rb.following.start(rebalance.VmLoad(2, "uuid-2", "vm2", 0, (0, 1), 2.0, {0: 1000}, fixed_memory=True), 1)
    doms = [DomainInfo(i, "vm{}".format(i), "uuid-{}".format(i), 2, GiB, GiB, False, "hvm") for i in (1, 2, 3, 4)]
    pages = {"uuid-1": {0: 1000}, "uuid-2": {0: 1000}, "uuid-3": {1: 1000}, "uuid-4": {1: 1000}}

    def running(i, soft, t, busy):
        return tuple(VcpuInfo(i, v, min(soft) + v, "running" if v < busy else "blocked", TOPO.all_cpus, soft,
                              t if v < busy else 0.0) for v in (0, 1))
    for t in (1.0, 3.0):
        vc = {1: running(1, N0, t, 1), 2: running(2, N1, t, 2), 3: running(3, N1, t, 2), 4: running(4, N1, t, 2)}
        moved = {a.uuid: a.nodes for a in rb.decide(HostSnapshot(TOPO, t, tuple(doms), vc), pages, set()).actions
                 if isinstance(a, SetNodeAffinity)}
    assert moved == {"uuid-2": frozenset({0})}  # vm2 back; vm4's move no longer gains on node 0


class Killed(BaseException):
    """A SIGKILL, as far as the code under test can tell."""


def three_busy_vms(tmp_path, soft_of=lambda topo: topo.cpus_of_nodes([0])):
    """2 nodes x 4 pCPUs, three busy 2-vCPU VMs on node 0 (soft affinity ``soft_of``), and a
    hook that raises on the second soft-affinity write to node 1 (the middle of a home move)."""
    from xapi_numa.backends.sim.backend import SimHypervisor
    topo = Topology.uniform(2, 4, 8 << 30)
    sim = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit2", 1, dom0_vcpus=1, dom0_memory=256 << 20)
    for i in range(3):
        sim.create("busy{}".format(i), 2, 2 << 30, dtype="pvh", soft=soft_of(topo), load="busy")
    real, writes = sim.set_vcpu_affinity, []

    def interrupt_with(error):
        def second_write_to_node_1(domid, vcpu, hard=None, soft=None):
            if soft == topo.cpus_of_nodes([1]):
                writes.append(vcpu)
                if len(writes) == 2:
                    raise error
            return real(domid, vcpu, hard=hard, soft=soft)
        sim.set_vcpu_affinity = second_write_to_node_1
    return sim, topo, real, interrupt_with


def test_a_home_move_cut_short_by_a_kill_is_mended_by_the_next_process(tmp_path):
    """What was still to mend lived in the dying process only: killed between two writes of
    a home move, it left the VM homed on two nodes for good (no candidate again, and its
    memory inside its soft affinity for the fix-up)."""
    from xapi_numa.ops.runtime import Runtime, Settings
    from xapi_numa.state.db import Database
    sim, topo, real, interrupt_with = three_busy_vms(tmp_path)
    n0 = topo.cpus_of_nodes([0])
    interrupt_with(Killed())
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings())
    with pytest.raises(Killed):
        for _ in range(30):
            sim.run(1.0)
            rt.cycle()
    sim.set_vcpu_affinity = real
    split = [d.name for d in sim.domains() if d.domid and len({v.soft for v in sim.vcpus(d.domid)}) > 1]
    assert split == ["busy2"]  # (node 0's DMA zone sent part of its memory to node 1: the move's candidate)
    # the next process is killed too, at its first mending write: the note stays for the third
    sim.set_vcpu_affinity = lambda domid, vcpu, hard=None, soft=None: (_ for _ in ()).throw(Killed()) \
        if soft == n0 else real(domid, vcpu, hard=hard, soft=soft)
    with pytest.raises(Killed):
        for _ in range(30):
            sim.run(1.0)
            Runtime(sim, Database(str(tmp_path / "l.db")), Settings()).cycle()
    sim.set_vcpu_affinity = real
    assert HomeMoves(Database(str(tmp_path / "l.db"))).unwritten()
    again = Runtime(sim, Database(str(tmp_path / "l.db")), Settings())
    again.restore_all_pins("start")
    for _ in range(60):
        sim.run(1.0)
        again.cycle()
    for d in sim.domains():
        if d.domid:
            homes = {v.soft for v in sim.vcpus(d.domid)}
            assert len(homes) == 1 and topo.nodes_of_cpus(next(iter(homes))) == sim.node_affinity(d.domid), d.name
    assert HomeMoves(Database(str(tmp_path / "l.db"))).unwritten() == {}


def test_a_home_move_cut_short_by_a_failing_cycle_is_mended_by_the_same_process(tmp_path):
    """A cycle that raised between a move's writes (the daemon's loop goes on) dropped what
    it was doing: the VM stayed homed on two nodes for the life of the process."""
    from xapi_numa.errors import StateError
    sim, topo, real, interrupt_with = three_busy_vms(tmp_path)
    interrupt_with(StateError("state database: cannot write: database is locked"))
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings())
    failed = 0
    for _ in range(40):
        sim.run(1.0)
        try:
            rt.cycle()
        except StateError:
            failed += 1
    assert failed == 1
    for d in sim.domains():
        if d.domid:
            assert len({v.soft for v in sim.vcpus(d.domid)}) == 1, d.name
    assert HomeMoves(rt.db).unwritten() == {}


def test_a_quiet_host_mends_a_vm_whose_home_was_part_of_a_node(tmp_path):
    """Mended on a host gone quiet, for a VM whose soft affinity was 3 of its home node's 4
    CPUs: the split VM (home None) was taken for one of ours to send back to its memory and
    its note failed (NOT NULL) every period, and the note's undo wanted the whole node."""
    sim, topo, real, interrupt_with = three_busy_vms(tmp_path, lambda t: frozenset(sorted(t.cpus_of_nodes([0]))[:3]))
    part = frozenset(sorted(topo.cpus_of_nodes([0]))[:3])
    interrupt_with(Killed())
    with pytest.raises(Killed):
        rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings())
        for _ in range(30):
            sim.run(1.0)
            rt.cycle()
    sim.set_vcpu_affinity = real
    split = [d for d in sim.domains() if d.domid and len({v.soft for v in sim.vcpus(d.domid)}) > 1]
    assert [d.name for d in split] == ["busy2"]  # (partly on node 1 already: node 0's DMA zone)
    for d in sim.domains():
        if d.domid:
            sim.set_load(d.domid, "idle")
    again = Runtime(sim, Database(str(tmp_path / "l.db")), Settings())
    for _ in range(60):
        sim.run(1.0)
        assert again.cycle() is not None  # (a failing period raises)
    assert {v.soft for v in sim.vcpus(split[0].domid)} == {part} and sim.node_affinity(split[0].domid) == {0}
    assert HomeMoves(again.db).unwritten() == {}


def test_a_vms_home_never_moves_to_a_node_outside_the_hosts_guest_mask(tmp_path):
    """A host whose guest_VCPUs_params:mask is node 0's CPUs (xapi gives every guest that hard
    affinity): node 1 was counted as free pCPUs, VMs were given it as their home, their
    memory went there while their vCPUs could not, and every hold-down the same again."""
    import os

    from xapi_numa.backends.sim.backend import SimHypervisor
    from xapi_numa.core import pools
    from xapi_numa.core.topology import Topology
    from xapi_numa.ops.runtime import Runtime, Settings

    rb = Rebalancer(Database(str(tmp_path / "db")))
    snap = HostSnapshot(TOPO, 10.0, (dom(1),), {1: vcpus(1, N0)}, guest_cpus=N0)
    assert pools.guest_capacity(snap) == {0: float(len(N0)), 1: 0.0}
    assert loads_of_snap(rb, snap)["uuid-1"].allowed == frozenset({0})
    # a mask leaving out one CPU of node 0 (kept for dom0): both nodes stay homes, node 0 one pCPU smaller
    some = TOPO.all_cpus - {min(N0)}
    assert pools.guest_capacity(attrs.evolve(snap, guest_cpus=some)) == {0: float(len(N0) - 1), 1: float(len(N1))}
    assert pools.within_pool(None, attrs.evolve(snap, guest_cpus=some), 1) == frozenset({0, 1})
    # end to end: three busy VMs on node 0, the simulated host and the daemon's own cycle
    topo = Topology.uniform(2, 4, 8 * GiB)
    sim = SimHypervisor.init(os.path.join(str(tmp_path), "h.json"), topo, "credit2", seed=1, dom0_vcpus=1)
    node0 = topo.cpus_of_nodes([0])
    ids = [sim.create("busy%d" % i, 2, GiB, hard=node0, soft=node0, load="busy", dtype="pvh") for i in range(3)]
    rt = Runtime(sim, Database(str(tmp_path / "rt.db")), Settings(), guest_cpus=lambda: node0)
    for _ in range(30):
        sim.run(1.0)
        rt.cycle()
    assert rt.rebalancer.homes.recent() == []
    assert all(set(sim.node_pages(domid)) <= {0} or not sim.node_pages(domid).get(1) for domid in ids)
    assert all(v.soft <= node0 for domid in ids for v in sim.vcpus(domid))


def loads_of_snap(rb, snap):
    pages = {d.uuid: {0: GiB >> 12} for d in snap.domains}
    return {v.uuid: v for v in rb.loads(snap, pages, set(), 10.0)}


def test_a_vm_whose_part_made_move_is_being_mended_still_loads_its_node(tmp_path):
    """Its undo deferred for a period or two, a VM with 4 busy vCPUs on node 1 vanished
    from the node loads: node 1 looked idle and another VM was sent there."""
    spec = {1: (4, 1), 2: (2, 0), 3: (2, 0), 4: (2, 0)}
    nodes = [N0, N1]

    def vm(n):
        return DomainInfo(n, "vm%d" % n, "uuid-%d" % n, spec[n][0], GiB, GiB, False, "pvh")

    def busy(n, t):
        return tuple(VcpuInfo(n, i, min(nodes[spec[n][1]]) + i % 4, "running", TOPO.all_cpus, nodes[spec[n][1]],
                              cpu_time=t) for i in range(spec[n][0]))
    pages = {"uuid-%d" % n: {spec[n][1]: GiB >> 12} for n in spec}
    rb = Rebalancer(Database(str(tmp_path / "db")))
    rb.part_moves._writes["uuid-1"] = (1, 0.0, [(None, SetNodeAffinity(1, "uuid-1", None, "undo"))])
    for t in (0.0, 2.0):
        snap = HostSnapshot(TOPO, t, tuple(vm(n) for n in spec), {n: busy(n, t) for n in spec})
        d = rb.decide(snap, pages, set(), room={0: 8 * GiB >> 12, 1: 8 * GiB >> 12}, record=True)
    assert d.assessment.loads[1] == 1.0
    assert not [a for a in d.actions if isinstance(a, SetNodeAffinity) and a.nodes == frozenset({1})]


def test_homes_back_to_their_memory_count_against_the_periods_move_limit(tmp_path):
    """Six HVM VMs (their memory stays on node 0) that we homed on node 1, node 0 quiet again:
    all six went back in one period, bounded by the write budget only, not by ``per_period``
    (4) as every other move is."""
    topo = Topology.uniform(2, 8, 16 * GiB)
    db = Database(str(tmp_path / "db"))
    rb = Rebalancer(db, move_blockers=lambda domid: ["qemu"])
    doms = tuple(DomainInfo(i, "vm{}".format(i), "uuid-{}".format(i), 2, GiB, GiB, False, "hvm")
                 for i in range(1, 7))
    pages = {d.uuid: {0: 1000} for d in doms}
    for d in doms:
        HomeMoves(db).record(HomeMove(d.uuid, -1000.0, 0, 1, "balance", "earlier"))  # held down long ago
        rb.following.start(rebalance.VmLoad(d.domid, d.uuid, d.name, 0, (0, 1), 0.0, {0: 1000},
                                            fixed_memory=True), 1)
    n1 = topo.cpus_of_nodes([1])
    vc = {d.domid: tuple(VcpuInfo(d.domid, v, min(n1) + v, "blocked", topo.all_cpus, n1, 0.0) for v in (0, 1))
          for d in doms}
    decision = rb.decide(HostSnapshot(topo, 1.0, doms, vc), pages, set())
    back = [a.uuid for a in decision.actions if isinstance(a, SetNodeAffinity) and a.nodes == frozenset({0})]
    assert len(back) == rebalance.Settings().per_period, decision.note


def test_the_planner_counts_the_moves_made_before_it_in_the_period():
    """Moves already made this period (homes back to their memory) leave ``per_period`` less
    for the planner's own; none left: no move, and the reason says why."""
    vms = [vm(i, 0, 2.0) for i in range(1, 6)]  # node 0 far over capacity: several moves worth making
    assert len(rebalance_plan.plan(vms, TOPO).chosen) >= 2
    assert len(rebalance_plan.plan(vms, TOPO, already=3).chosen) == 1
    full = rebalance_plan.plan(vms, TOPO, already=4)
    assert full.chosen == () and "4 moves" in full.reason
    backs = [(vm(10 + i, 1, 0.0, {0: 1000}, fixed_memory=True), 0) for i in range(6)]
    assert len(rebalance_plan.back_moves(backs, rebalance.Settings(), None)) == 4
    assert len(rebalance_plan.back_moves(backs, rebalance.Settings(), 6)) == 2  # 3 writes each


def test_a_policy_the_link_refuses_leaves_the_vm_alone_as_an_unreadable_one(tmp_path):
    """``policy_of`` raising NumaError (a link that refuses a VM's stored policy, as
    homing's and the fix-up's exclusions already expect) stopped the whole period's
    weighing; the VM is now left alone, as one whose stored policy cannot be read."""
    from xapi_numa.core.policy import Policy
    from xapi_numa.errors import InvalidArgument

    class RefusingLink:
        def policy_of(self, uuid):
            if uuid == "uuid-1":
                raise InvalidArgument("numa_mode", "'stirct'", "any, best_effort, preferred, strict")
            return Policy()

    rb = Rebalancer(Database(str(tmp_path / "db")), policy_of=RefusingLink().policy_of)
    got = loads_of(rb, [dom(1), dom(2)], {1: vcpus(1, N0), 2: vcpus(2, N0)})
    assert not got["uuid-1"].movable and got["uuid-2"].movable
    assert rb.left_alone == {"uuid-1"}  # nor does its memory follow a home we gave it
    snap = HostSnapshot(TOPO, 10.0, (dom(1), dom(2)), {1: vcpus(1, N0), 2: vcpus(2, N0)})
    decision = rb.decide(snap, {"uuid-1": {0: GiB >> 12}, "uuid-2": {0: GiB >> 12}}, set())
    assert all(a.uuid != "uuid-1" for a in decision.actions)


def test_a_move_the_periods_back_moves_leave_no_room_for_still_counts_as_standing(tmp_path):
    """Node 2 overloaded (two busy VMs on 4 pCPUs) waits its first period; in the second, four
    VMs homed away from their memory go back to it, which is the period's ``per_period``.
    The overload stood all the same: its move came in the third period, not after its sustain
    count started again (the fifth)."""
    topo = Topology.uniform(3, 4, 16 * GiB)
    db = Database(str(tmp_path / "db"))
    rb = Rebalancer(db, move_blockers=lambda domid: ["qemu"] if domid <= 4 else [])
    n1, n2 = topo.cpus_of_nodes([1]), topo.cpus_of_nodes([2])
    doms = tuple(DomainInfo(i, "vm{}".format(i), "uuid-{}".format(i), 2, GiB, GiB, False, "hvm" if i <= 4 else "pvh")
                 for i in range(1, 7))
    pages = {d.uuid: {0: 1000} if d.domid <= 4 else {2: 1000} for d in doms}
    for d in doms[:4]:  # their memory stays on node 0; homed on node 1 by us, held down until t=2
        HomeMoves(db).record(HomeMove(d.uuid, 2.0 - 300.0, 0, 1, "balance", "earlier"))
        rb.following.start(rebalance.VmLoad(d.domid, d.uuid, d.name, 0, (0, 1), 0.0, {0: 1000},
                                            fixed_memory=True), 1)
    decisions = []
    for t in (1.0, 3.0, 5.0):
        vc = {d.domid: tuple(VcpuInfo(d.domid, v, min(n1) + v, "blocked", topo.all_cpus, n1, 0.0) for v in (0, 1))
              if d.domid <= 4 else tuple(VcpuInfo(d.domid, v, min(n2) + 2 * (d.domid - 5) + v, "running",
                                                  topo.all_cpus, n2, t) for v in (0, 1)) for d in doms}
        decision = rb.decide(HostSnapshot(topo, t, doms, vc), pages, set())
        rb.applied([Outcome(a, DONE, "") for a in decision.actions])
        decisions.append({a.uuid: a.nodes for a in decision.actions if isinstance(a, SetNodeAffinity)})
    assert decisions[0] == {} and decisions[1] == {d.uuid: frozenset({0}) for d in doms[:4]}
    assert set(decisions[2]) & {"uuid-5", "uuid-6"}, decisions[2]  # node 2's overload relieved
