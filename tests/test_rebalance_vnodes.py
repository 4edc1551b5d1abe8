"""The rebalancer and vNUMA guests: vnodes are the units it weighs and moves, never split.

The pure rule on hand-built units (planner tables), the bookkeeping around it (layouts
read once per domain, hold-down per VM, what a refused or unfinished move does to the
cached layout) and the daemon's cycle on the simulator (a whole vnode ends on its new
pnode, and ``vnuma()`` reports the new map)."""
import attrs
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core import rebalance, rebalance_moves, vnuma
from xapi_numa.core.actions import MoveMemory, SetAffinity, SetNodeAffinity
from xapi_numa.core.host import DomainInfo, VcpuInfo
from xapi_numa.core.snapshot import HostSnapshot
from xapi_numa.core.topology import Topology
from xapi_numa.errors import HypervisorError
from xapi_numa.ops.executor import DONE, REFUSED, Outcome
from xapi_numa.ops.rebalancing import Rebalancer
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMove, HomeMoves

MiB = 1 << 20
GiB = 1 << 30
TOPO = Topology.uniform(3, 4, 8 * GiB, [[10, 20, 30], [20, 10, 20], [30, 20, 10]])
HALF = (512 * MiB) >> 12  # pages


def unit(n, home, demand, vnode=None, pages=None, vcpus=(0, 1), uuid=None, **kw):
    return rebalance.VmLoad(n, uuid or "uuid-{}".format(n), "vm{}".format(n), home, vcpus, demand,
                            pages if pages is not None else {home: HALF if vnode is not None else 2 * HALF},
                            vnode=vnode, **kw)


def vnodes(n, homes, demand, **kw):
    """A vNUMA VM with one 2-vCPU, 512 MiB vnode on each pnode of ``homes``."""
    return [unit(n, p, demand, vnode=i, vcpus=(2 * i, 2 * i + 1), uuid="uuid-{}".format(n), **kw)
            for i, p in enumerate(homes)]


# --- the planner -----------------------------------------------------------------------------------
def test_a_two_vnode_vm_on_an_overloaded_node_gets_exactly_one_whole_vnode_move():
    # node 0: the vNUMA VM's two vnodes (2 pCPUs each) and a pinned VM (2): 6 on 4 pCPUs
    vms = vnodes(1, [0, 0], 2.0) + [unit(2, 0, 2.0, movable=False)]
    best = rebalance.assess(vms, TOPO).best
    assert best is not None and best.kind == "balance" and len(best.moves) == 1
    (moved, to), = best.moves
    assert moved.uuid == "uuid-1" and moved.vnode in (0, 1) and to == 1  # the nearer idle node
    assert best.pages == HALF  # the whole vnode, not the 90 % a VM's memory follows to
    assert best.gain == pytest.approx(2.0)


def test_a_vnode_is_weighed_with_its_own_vcpus_and_memory():
    # vnode 1 is the busy one: it is the one worth moving, vnode 0 (idle) gains nothing
    vms = [unit(1, 0, 0.1, vnode=0, vcpus=(0, 1)), unit(1, 0, 2.0, vnode=1, vcpus=(2, 3))]
    vms += [unit(2, 0, 2.0, movable=False), unit(3, 0, 2.0, movable=False)]
    best = rebalance.assess(vms, TOPO).best
    assert [(m.vnode, to) for m, to in best.moves] == [(1, 1)]
    assert rebalance.node_demand(vms, [0, 1, 2])[0] == pytest.approx(6.1)


def test_candidates_never_split_a_vnode_nor_swap_two_vnodes_of_one_vm():
    vms = vnodes(1, [0, 1], 2.0) + [unit(2, 0, 1.0), unit(3, 1, 3.0)]
    singles = rebalance.candidate_moves(vms, [0, 1, 2])
    for kind, moves in singles:
        (m, to), = moves
        assert m.vnode is None or (m.pages == {m.home: HALF} and to != m.home)
    assert {(m.vnode, to) for _, ((m, to),) in singles if m.uuid == "uuid-1"} == {(0, 1), (0, 2), (1, 0), (1, 2)}
    swaps = rebalance.candidate_moves(vms, [0, 1, 2], swaps=True)
    assert swaps and all(len({m.uuid for m, _ in moves}) == 2 for _, moves in swaps)
    # and a vnode never gets a memory follow-up that would take part of it
    assert rebalance_moves.follow_memory(attrs_evolve(vms[0], home=2), rebalance.Settings()) is None


def attrs_evolve(vm, **kw):
    import attrs
    return attrs.evolve(vm, **kw)


def test_the_actions_of_a_vnode_move_touch_only_that_vnode():
    from xapi_numa.core.vnode_units import vnode_move_actions
    lay = two_vnode_layout((0, 0))
    acts = vnode_move_actions(7, "u7", lay, 1, 2, TOPO, 64 * MiB, "r")
    assert [a.vcpu for a in acts if isinstance(a, SetAffinity)] == [2, 3]
    assert all(a.soft == TOPO.cpus_of_nodes([2]) and a.hard is None for a in acts if isinstance(a, SetAffinity))
    assert [a.nodes for a in acts if isinstance(a, SetNodeAffinity)] == [frozenset({0, 2})]
    move = acts[-1]
    assert isinstance(move, MoveMemory) and (move.vnode, move.to, move.max_pages, move.skip) == (1, 2, None, 0)


def two_vnode_layout(pnodes, vcpus=4, memory=GiB):
    plan = vnuma.plan_follow(TOPO, vnuma.GuestSpec("pvh", vcpus, memory), [0, 1])
    lay = vnuma.layout_of(plan, vnuma.memory_ranges(plan))
    for i, p in enumerate(pnodes):
        lay = lay.with_pnode(i, p)
    return lay


# --- the bookkeeping --------------------------------------------------------------------------------
def snapshot(t, domains, running=True):
    vcpus = {}
    for d in domains:
        cpus = TOPO.cpus_of_nodes([0])
        vcpus[d.domid] = tuple(VcpuInfo(d.domid, i, min(cpus) + i % 4, "running" if running else "paused",
                                        TOPO.all_cpus, cpus, cpu_time=t if running else 0.0)
                               for i in range(d.vcpus))
    return HostSnapshot(TOPO, t, tuple(domains), vcpus)


def dom(domid, name, vcpus=4, paused=False, dtype="pvh"):
    return DomainInfo(domid, name, "uuid-" + name, vcpus, GiB, GiB, paused, dtype)


class Layouts:
    def __init__(self, layouts):
        self.layouts, self.calls = dict(layouts), []

    def __call__(self, domid):
        self.calls.append(domid)
        got = self.layouts.get(domid)
        if isinstance(got, Exception):
            raise got
        return got


def test_layouts_are_read_once_per_domain_kept_and_dropped_when_it_goes(tmp_path):
    reader = Layouts({5: two_vnode_layout((0, 0)), 6: None})
    rb = Rebalancer(Database(str(tmp_path / "db")), read_layout=reader)
    a, b, pv = dom(5, "a"), dom(6, "b", vcpus=2), dom(7, "pv", vcpus=2, dtype="pv")
    for t in (2.0, 4.0, 6.0):
        rb.decide(snapshot(t, [a, b, pv]), {}, set())
    assert sorted(reader.calls) == [5, 6, 7]  # once each, a PV guest's too (it may have one)
    assert sorted(u for u in rb.unit_demand) == [("uuid-a", 0), ("uuid-a", 1), ("uuid-b", None), ("uuid-pv", None)]
    assert rb.demand["uuid-a"] == pytest.approx(4.0)  # per VM: its vnodes summed
    rb.decide(snapshot(8.0, [b, pv]), {}, set())
    assert "uuid-a" not in rb.layouts and ("uuid-a", 0) not in rb.unit_demand
    rb.decide(snapshot(10.0, [dom(9, "a"), b, pv]), {}, set())  # the same VM booted again: a new domain
    assert reader.calls[-1] == 9


def test_a_domain_not_yet_run_is_read_once_it_runs(tmp_path):
    reader = Layouts({5: two_vnode_layout((0, 0))})
    rb = Rebalancer(Database(str(tmp_path / "db")), read_layout=reader)
    rb.decide(snapshot(2.0, [dom(5, "a", paused=True)], running=False), {}, set())
    assert reader.calls == []  # its builder may still give it a layout
    rb.decide(snapshot(4.0, [dom(5, "a")]), {}, set())
    assert reader.calls == [5] and rb.layout("uuid-a") is not None


def test_a_pv_guests_layout_is_read_and_none_of_its_vnodes_moves(tmp_path):
    """A PV guest can have a vNUMA layout on Xen 4.17: XEN_DOMCTL_setvnumainfo checks no guest type
    (xen/common/domctl.c, vnuma_init), libxl builds one from ``vnuma=`` (tools/libs/light/libxl_dom.c,
    libxl__build_pv: libxl__vnuma_build_vmemrange_pv, set_vnuma_info, then each vnode's vCPUs' soft
    affinity on its pnode in libxl__build_post) and libxc populates each range from its pnode
    (tools/libs/guest/xg_dom_x86.c, meminit_pv).  The rebalancer never read a PV guest's layout
    ("Xen has no PV vNUMA") and weighed it as one VM, whose vCPUs it could all point at one node
    (a PV guest's memory stays where it is), taking every vnode but one off its pnode.  It now reads
    it, weighs the guest vnode by vnode, and moves none of them: a PV guest's memory cannot move, so
    a vnode moved would be split from its memory."""
    reader = Layouts({7: two_vnode_layout((0, 1)), 8: None})
    rb = Rebalancer(Database(str(tmp_path / "db")), read_layout=reader)
    snap = snapshot(100.0, [dom(7, "pv", dtype="pv"), dom(8, "plain", dtype="pv")])
    rb.refresh_layouts(snap)
    assert sorted(reader.calls) == [7, 8]
    units = {(v.uuid, v.vnode): v for v in rb.loads(snap, {}, set(), 100.0)}
    assert sorted(units) == [("uuid-plain", None), ("uuid-pv", 0), ("uuid-pv", 1)]
    assert [(units["uuid-pv", i].home, units["uuid-pv", i].movable) for i in (0, 1)] == [(0, False), (1, False)]


def test_an_unreadable_layout_makes_the_vm_unmovable(tmp_path):
    import errno
    reader = Layouts({5: HypervisorError(errno.ENOSYS, "reading vNUMA layouts")})
    rb = Rebalancer(Database(str(tmp_path / "db")), read_layout=reader)
    snap = snapshot(2.0, [dom(5, "a")])
    rb.refresh_layouts(snap)
    assert [v.movable for v in rb.loads(snap, {}, set(), 2.0)] == [False]


def test_hold_down_is_per_vm_for_all_its_vnodes(tmp_path):
    db = Database(str(tmp_path / "db"))
    rb = Rebalancer(db, read_layout=Layouts({5: two_vnode_layout((0, 0))}))
    snap = snapshot(100.0, [dom(5, "a")])
    rb.refresh_layouts(snap)
    assert [v.movable for v in rb.loads(snap, {}, set(), 100.0)] == [True, True]
    HomeMoves(db).record(HomeMove("uuid-a", 50.0, 0, 1, "balance", "vnode 1 moved"))
    held = rb.loads(snap, {}, set(), 100.0)
    assert [(v.vnode, v.movable) for v in held] == [(0, False), (1, False)]
    assert all(v.movable for v in rb.loads(snap, {}, set(), 351.0))


def test_our_vnode_moves_update_the_cached_layout_a_refusal_reads_it_again(tmp_path):
    reader = Layouts({5: two_vnode_layout((0, 0))})
    rb = Rebalancer(Database(str(tmp_path / "db")), read_layout=reader)
    snap = snapshot(2.0, [dom(5, "a")])
    rb.refresh_layouts(snap)
    move = MoveMemory(5, "uuid-a", 2, vnode=1)
    rb.applied([Outcome(move, DONE)])
    assert rb.layout("uuid-a").pnodes == (0, 2)
    rb.refresh_layouts(snapshot(4.0, [dom(5, "a")]))  # no mover of ours on record: it did not finish
    assert rb.layout("uuid-a").pnodes == (0, 0) and reader.calls == [5, 5]
    rb.applied([Outcome(move, REFUSED, "refused")])
    assert "uuid-a" not in rb.layouts
    rb.refresh_layouts(snapshot(6.0, [dom(5, "a")]))
    assert reader.calls == [5, 5, 5]


# --- the daemon's cycle on the simulator ---------------------------------------------------------------
def build_host(tmp_path):
    """2 nodes x 4 pCPUs: on node 0 a busy 4-vCPU vNUMA guest (two vnodes, both on node 0)
    and two busy 2-vCPU guests; node 1 idle.  A DMA zone of 512 MiB (dma_bits=29) leaves node 0
    room for the three: with Xen's default of 1 GiB the last would be built on node 1 (its 1 GiB
    extent, meminit_hvm)."""
    topo = Topology.uniform(2, 4, 4 * GiB, [[10, 20], [20, 10]])
    hv = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit2", 3, dom0_vcpus=1, dom0_memory=256 * MiB,
                            force=True, dma_bits=29)
    node0 = topo.cpus_of_nodes([0])
    domid = hv.create("numa", 4, GiB, soft=node0, load="busy:mem=0.6", dtype="pvh", paused=True)
    plan = vnuma.plan_follow(topo, vnuma.GuestSpec("pvh", 4, GiB), [0, 1])
    plan = vnuma.VnumaPlan("follow", tuple(v.__class__(v.index, 0, v.memory, v.vcpus, v.distances)
                                           for v in plan.vnodes), {})
    hv.set_vnuma(domid, plan, vnuma.memory_ranges(plan))
    hv.unpause(domid)
    for name in ("b", "c"):
        hv.create(name, 2, GiB, soft=node0, load="busy:mem=0.6", dtype="pvh")
    return hv, domid


def test_the_daemon_moves_one_whole_vnode_and_the_map_follows(tmp_path):
    hv, domid = build_host(tmp_path)
    assert hv.node_pages(domid)[0] == GiB >> 12
    rt = Runtime(hv, Database(str(tmp_path / "l.db")), Settings())
    reads = []
    read = rt.rebalancer.read_layout
    rt.rebalancer.read_layout = lambda d: reads.append(d) or read(d)
    uuid = next(d.uuid for d in hv.domains() if d.domid == domid)
    seen = []
    for _ in range(60):
        hv.run(1.0)
        rt.cycle()
        if rt.last_decision is not None:
            seen += [a for a in rt.last_decision.actions if a.uuid == uuid]
    moves = [m for m in HomeMoves(rt.db).recent() if m.uuid == uuid]
    assert len(moves) == 1 and (moves[0].from_node, moves[0].to_node) == (0, 1)
    lay = hv.vnuma(domid)
    (moved,) = [v for v in lay.vnodes if v.pnode == 1]
    assert sorted(lay.pnodes) == [0, 1]
    # every movable page of that vnode is on node 1, and nothing of the other vnode
    classes = hv.memory_map(domid).classes
    spans = [(r.start >> 12, r.end >> 12) for r in lay.ranges_of(moved.index)]
    movable_in = sum(1 for a, b in spans for g in range(a, b) if classes[g] == 0)
    assert hv.node_pages(domid)[1] == movable_in
    assert all(isinstance(a, (SetAffinity, SetNodeAffinity)) or (isinstance(a, MoveMemory) and a.vnode == moved.index)
               for a in seen)  # never a page move that would take part of a vnode
    assert {a.vcpu for a in seen if isinstance(a, SetAffinity)} == set(moved.vcpus)
    vcpus = {v.vcpu: v for v in hv.vcpus(domid)}
    assert all(vcpus[c].soft == hv.topology().cpus_of_nodes([1]) for c in moved.vcpus)
    assert all(vcpus[c].soft == hv.topology().cpus_of_nodes([0]) for c in range(4) if c not in moved.vcpus)
    assert hv.node_affinity(domid) == frozenset({0, 1})
    # the cache was read once and follows our move: it is what the hypervisor now reports
    assert sorted(reads) == sorted(d.domid for d in hv.domains() if d.domid)  # each domain once
    assert rt.rebalancer.layout(uuid) == lay


def test_a_vnode_move_made_in_part_is_undone_or_once_its_pages_move_finished(tmp_path):
    """vCPU 3 of vnode 1's move refused: with the page move not started, what was made is
    undone (back on pnode 0); with the pages on their way, the refused write is made again."""
    for mover, expected in ((REFUSED, {2: TOPO.cpus_of_nodes([0]), None: frozenset({0})}),
                            (DONE, {3: TOPO.cpus_of_nodes([2])})):
        rb = Rebalancer(Database(str(tmp_path / "db-{}".format(mover))),
                        read_layout=Layouts({5: two_vnode_layout((0, 0))}))
        snap = snapshot(2.0, [dom(5, "a")])
        rb.refresh_layouts(snap)
        vnode1 = [v for v in rb.loads(snap, {}, set(), 2.0) if v.vnode == 1][0]
        acts = rb._move_homes(rebalance.Candidate("balance", ((vnode1, 2),), 1.0, HALF, 1.0), snap, 2.0)
        rb.applied([Outcome(a, mover if isinstance(a, MoveMemory) else REFUSED if getattr(a, "vcpu", None) == 3
                            else DONE) for a in acts])
        later = snapshot(4.0, [dom(5, "a")])  # as the writes left it: vCPU 2 on pnode 2
        later.vcpus[5] = tuple(attrs.evolve(v, soft=TOPO.cpus_of_nodes([2])) if v.vcpu == 2 else v
                               for v in later.vcpus[5])
        if mover == DONE:  # while its mover runs the VM is excluded: the writes wait, not dropped
            assert not [a for a in rb.decide(later, {}, {5}).actions if a.domid == 5]
        again = [a for a in rb.decide(later, {}, set()).actions if a.domid == 5]
        got = {getattr(a, "vcpu", None): a.soft if isinstance(a, SetAffinity) else a.nodes for a in again}
        assert got == expected, mover


def test_a_vnode_move_another_process_made_is_read_again(tmp_path):
    """The admin moved vnode 1 to node 1 from the CLI: the daemon's cached layout still had
    it on node 0, and it 'moved' vnode 1 from 1 to 1 (512 MiB paused and copied for
    nothing, and a gain logged that never happened)."""
    from xapi_numa.ops import move_memory
    from xapi_numa.state.moves import MoveJournal
    hv, domid = build_host(tmp_path)
    db = Database(str(tmp_path / "l.db"))
    rt = Runtime(hv, db, Settings())
    uuid = next(d.uuid for d in hv.domains() if d.domid == domid)
    hv.run(1.0)
    rt.cycle()
    assert rt.rebalancer.layout(uuid).pnodes == (0, 0)
    move_memory.run(hv, db, move_memory.prepare(hv, str(domid), 1, vnode=1))   # another process's move
    assert hv.vnuma(domid).pnodes == (0, 1)
    moves = []
    for _ in range(60):
        hv.run(1.0)
        rt.cycle()
        if rt.last_decision is not None:
            moves += [(a.vnode, a.to) for a in rt.last_decision.actions
                      if isinstance(a, MoveMemory) and a.uuid == uuid]
    assert (1, 1) not in moves, moves
    assert rt.rebalancer.layout(uuid).pnodes == hv.vnuma(domid).pnodes
    assert MoveJournal(db).status(uuid).report["vnode"]["from"] != MoveJournal(db).status(uuid).report["vnode"]["to"]


def test_a_vnode_move_killed_before_its_mover_started_is_undone_by_the_next_process(tmp_path, monkeypatch):
    """The vnode's vCPUs were homed on the new pnode, then the process died before the mover
    started (no journal row): its vCPUs stayed away from all of its memory for good."""
    from xapi_numa.ops import executor as ex

    class Killed(BaseException):
        pass
    hv, domid = build_host(tmp_path)
    real = ex.Executor._MoveMemory

    def killed(self, a):
        if a.vnode is not None:
            raise Killed()
        return real(self, a)
    monkeypatch.setattr(ex.Executor, "_MoveMemory", killed)
    rt = Runtime(hv, Database(str(tmp_path / "l.db")), Settings())
    with pytest.raises(Killed):
        for _ in range(60):
            hv.run(1.0)
            rt.cycle()
    monkeypatch.setattr(ex.Executor, "_MoveMemory", real)
    topo = hv.topology()
    away = {v.vcpu for v in hv.vcpus(domid) if topo.nodes_of_cpus(v.soft) != {0}}
    assert away and hv.vnuma(domid).pnodes == (0, 0) and hv.node_pages(domid)[1] == 0
    for d in hv.domains():
        if d.domid:
            hv.set_load(d.domid, "idle")  # what made the move worth making is gone
    again = Runtime(hv, Database(str(tmp_path / "l.db")), Settings())
    for _ in range(30):
        hv.run(1.0)
        again.cycle()
    assert {v.vcpu for v in hv.vcpus(domid) if topo.nodes_of_cpus(v.soft) != {0}} == set()
