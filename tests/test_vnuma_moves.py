"""vnodes as units of memory moves: the layout a domain has (the port, both
adapters' parts that run without Xen), the NUMA_VNODE_SPLIT refusal, a whole
vnode moved with ``--vnode`` on the simulator, and the rebalancer's helper."""
import json
import subprocess
import sys

import attrs
import pytest
from conftest import libxenuma
from hypothesis import given, settings
from hypothesis import strategies as st

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.xen_vnuma import pnodes_from_dump
from xapi_numa.core import vnuma
from xapi_numa.core.memory_move import gfns_within
from xapi_numa.core.topology import Topology
from xapi_numa.core.vnode_units import VnodeMove, check_move, whole_vnode_moves
from xapi_numa.errors import InvalidArgument, VnodeSplit
from xapi_numa.ops import move_memory
from xapi_numa.state.ledger import Ledger

MiB = 1 << 20
GiB = 1 << 30


def layout(pnodes, memory=None, vcpus_each=1):
    """A layout with one vnode per entry of ``pnodes`` (sizes ``memory`` MiB each, default 256)."""
    sizes = memory or [256] * len(pnodes)
    ranges, at = [], 0
    for i, size in enumerate(sizes):
        ranges.append((at, at + size * MiB, i))
        at += size * MiB
    k = len(pnodes)
    dist = [10 if a == b else 20 for a in range(k) for b in range(k)]
    return vnuma.layout_from_arrays(ranges, dist, [i for i in range(k) for _ in range(vcpus_each)], pnodes)


@pytest.fixture
def sim(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * GiB), "credit2", 1)
    domid = hv.create("g", 2, 512 * MiB, dtype="pvh", paused=True, load="idle")
    return hv, domid


def set_two_vnodes(hv, domid, pnodes=(0, 1)):
    plan = vnuma.plan_follow(hv.topology(), vnuma.GuestSpec("pvh", 2, 512 * MiB), list(pnodes))
    hv.set_vnuma(domid, plan, vnuma.memory_ranges(plan))
    return plan


# --- the layout a domain has ------------------------------------------------------------------
def test_layout_round_trips_and_knows_its_vnodes():
    plan = vnuma.plan_follow(Topology.uniform(2, 2, 4 * GiB), vnuma.GuestSpec("hvm", 3, 5 * GiB), [1, 0])
    ranges = vnuma.memory_ranges(plan, 0xF0000000, vnuma.FOUR_GiB)
    lay = vnuma.layout_of(plan, ranges)
    assert lay.pnodes == (1, 0) and [v.memory for v in lay.vnodes] == [v.memory for v in plan.vnodes]
    assert vnuma.layout_from_dict(json.loads(json.dumps(lay.to_dict()))) == lay
    assert sum(r.end - r.start for r in lay.ranges_of(1)) == plan.vnodes[1].memory
    moved = lay.with_pnode(1, 1)
    assert moved.pnodes == (1, 1) and moved.vnodes[1].distances == lay.vnodes[1].distances
    assert moved.as_plan().pnodes == (1, 1)
    with pytest.raises(InvalidArgument) as err:
        lay.vnode(2)
    assert err.value.field == "vnode" and err.value.allowed == "0..1"
    with pytest.raises(InvalidArgument):
        layout([0, None]).as_plan()


def test_sim_keeps_what_set_vnuma_set_and_a_second_call_replaces_it(sim):
    hv, domid = sim
    assert hv.vnuma(domid) is None
    plan = set_two_vnodes(hv, domid)
    got = hv.vnuma(domid)
    assert got == vnuma.layout_of(plan, vnuma.memory_ranges(plan)) and got.pnodes == (0, 1)
    set_two_vnodes(hv, domid, (1, 0))
    assert hv.vnuma(domid).pnodes == (1, 0)


DUMP = b"""(XEN) 'u' pressed -> dumping numa info (now = 1)
(XEN) Memory location of each domain:
(XEN) d0 (total: 262144):
(XEN)     Node 0: 262144
(XEN)     Node 1: 0
(XEN) d3 (total: 131072):
(XEN)     Node 0: 98304
(XEN)     Node 1: 32768
(XEN)      2 vnodes, 2 vcpus, guest physical layout:
(XEN)          0: pnode   0, vcpus 0
(XEN)            0000000000000000 - 0000000010000000
(XEN)          1: pnode   1, vcpus 1
(XEN)            0000000010000000 - 0000000020000000
(XEN) d4 (total: 1024):
(XEN)     Node 0: 1024
(XEN)     Node 1: 0
(XEN)      1 vnodes, 1 vcpus, guest physical layout:
(XEN)          0: pnode ???, vcpus 0
"""


def test_pnodes_come_from_the_last_u_dump():
    assert pnodes_from_dump(DUMP, 3) == {0: 0, 1: 1}
    assert pnodes_from_dump(DUMP, 4) == {0: None}      # NUMA_NO_NODE
    assert pnodes_from_dump(DUMP, 0) == {}             # no layout
    assert pnodes_from_dump(DUMP, 7) == {}
    older = DUMP.replace(b"pnode   1", b"pnode   0")
    assert pnodes_from_dump(older + DUMP, 3) == {0: 0, 1: 1}
    assert pnodes_from_dump(b"[  12.3] " + DUMP.replace(b"(XEN) ", b""), 3) == {0: 0, 1: 1}


def test_libxenuma_getvnuma_refuses_bad_counts_before_any_hypercall():
    native = libxenuma()
    ffi, lib = native.ffi, native.lib
    counts = [ffi.new("uint32_t *", 65) for _ in range(3)]  # more vnodes than a domain can have
    assert lib.xn_domain_getvnuma(ffi.NULL, 1, counts[0], counts[1], counts[2], ffi.NULL, ffi.NULL, ffi.NULL) == -22
    zero = ffi.new("uint32_t *", 0)
    assert lib.xn_domain_getvnuma(ffi.NULL, 1, zero, zero, ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL) == -22
    two = ffi.new("uint32_t *", 2)  # room claimed, no array given
    assert lib.xn_domain_getvnuma(ffi.NULL, 1, two, zero, zero, ffi.NULL, ffi.NULL, ffi.NULL) == -22


# --- the refusal ------------------------------------------------------------------------------------
def test_check_move_refuses_what_would_split_a_vnode():
    two = layout([0, 1])
    with pytest.raises(VnodeSplit) as err:
        check_move(two, "g", 0)
    assert err.value.code == "NUMA_VNODE_SPLIT"
    assert err.value.params[:4] == ("g", "1", "1", "0") and "--vnode 1 --to 0" in err.value.params[4]
    check_move(two, "g", 0, vnode=1)            # a whole vnode may move
    check_move(layout([1, 1]), "g", 1)          # every vnode already there: gathering drifted pages
    check_move(None, "g", 0)                    # no vNUMA: nothing to promise
    with pytest.raises(InvalidArgument) as err:
        check_move(None, "g", 0, vnode=0)
    assert err.value.field == "vnode"
    with pytest.raises(InvalidArgument):
        check_move(two, "g", 0, vnode=2)
    with pytest.raises(VnodeSplit) as err:
        check_move(layout([0, None]), "g", 0)
    assert err.value.params[2] == "unknown"


def test_move_memory_refuses_a_split_on_the_simulator_and_changes_nothing(sim, tmp_path):
    hv, domid = sim
    set_two_vnodes(hv, domid)
    hv.unpause(domid)
    before = hv.node_pages(domid)
    with pytest.raises(VnodeSplit):
        move_memory.prepare(hv, str(domid), 0)
    with pytest.raises(InvalidArgument) as err:
        move_memory.prepare(hv, str(domid), 0, max_bytes=64 * MiB, vnode=1)
    assert err.value.field == "max"
    with pytest.raises(InvalidArgument) as err:
        move_memory.prepare(hv, str(domid), 0, vnode=1, skip=10)
    assert err.value.field == "skip"
    assert hv.node_pages(domid) == before and hv.vnuma(domid).pnodes == (0, 1)


def test_a_vnode_recorded_on_the_target_but_built_elsewhere_needs_room_there(tmp_path):
    """--apply records the map on a built domain whose memory is all on node 0: moving
    vnode 1 to its recorded node 1 moves all its pages, so a node 1 without room for
    them refuses up front (NUMA_NO_CAPACITY) and nothing moves."""
    from xapi_numa.errors import NoCapacity
    hv = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * GiB), "credit2", 1)
    domid = hv.create("g", 2, 512 * MiB, dtype="pvh", paused=True, load="idle", soft=frozenset({0, 1}))
    assert hv.node_pages(domid).get(1, 0) == 0
    set_two_vnodes(hv, domid, (0, 1))
    hv.unpause(domid)
    hv.create("filler", 1, 3584 * MiB, dtype="pvh", hard=frozenset({2, 3}), soft=frozenset({2, 3}), load="idle")
    assert hv.node_memory()[1].claimable < 256 * MiB  # less than vnode 1's 256M
    before = hv.node_pages(domid)
    with pytest.raises(NoCapacity):
        move_memory.check(hv, str(domid), 1, vnode=1)
    assert hv.node_pages(domid) == before


def test_a_whole_vnode_moves_with_its_vcpus_and_the_map_follows(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * GiB), "credit2", 1)
    topo = hv.topology()
    domid = hv.create("g", 2, 512 * MiB, dtype="pvh", paused=True, load="idle")
    built = hv.node_pages(domid)
    home = max(built, key=built.get)
    assert built[home] == 512 * MiB >> 12  # built on one node: libxl's placement
    there = 1 - home
    plan = set_two_vnodes(hv, domid, (there, home))  # vnode 0 promised the other node
    hv.unpause(domid)
    classes = hv.memory_map(domid).classes
    db = Ledger(str(tmp_path / "l.db")).db
    prepared = move_memory.prepare(hv, str(domid), there, vnode=0)
    boundary = 256 * MiB >> 12
    moved_gfns = [g for b in prepared.batches for g in b]
    assert moved_gfns and max(moved_gfns) < boundary and prepared.to_dict()["vnode"] == 0
    report = move_memory.run(hv, db, prepared)
    assert report["state"] == "done" and report["vnode"]["from"] == there and report["vnode"]["to"] == there
    skipped_low = sum(1 for g in range(boundary) if classes[g] != 0)
    assert hv.node_pages(domid)[there] == boundary - skipped_low  # vnode 0's movable pages, nothing of vnode 1
    # now vnode 1 joins it there
    report = move_memory.run(hv, db, move_memory.prepare(hv, str(domid), there, vnode=1))
    assert report["vnode"]["from"] == home and report["vnode"]["to"] == there
    assert report["vnode"]["affinity"] == "set" and report["vnode"]["vcpus"] == [1]
    skipped = sum(1 for g in range(2 * boundary) if classes[g] != 0)
    assert hv.node_pages(domid) == {there: 2 * boundary - skipped, home: skipped}
    assert hv.vnuma(domid).pnodes == (there, there)
    assert hv.vnuma(domid).vnodes[1].distances == plan.vnodes[1].distances  # the guest's view is unchanged
    assert hv.vcpus(domid)[1].soft == topo.cpus_of_nodes([there])
    assert hv.node_affinity(domid) == frozenset({there})
    # every vnode now on one node: a plain move there is allowed again, elsewhere it is not
    move_memory.check(hv, str(domid), there)
    with pytest.raises(VnodeSplit):
        move_memory.check(hv, str(domid), home)


def test_cli_move_memory_vnode_on_the_simulator(sim, tmp_path):
    hv, domid = sim
    set_two_vnodes(hv, domid)
    hv.unpause(domid)
    base = [sys.executable, "-m", "xapi_numa.cli", "--backend", "sim:" + hv.path]
    refused = subprocess.run(base + ["move-memory", str(domid), "--to", "0"], capture_output=True, text=True)
    assert refused.returncode != 0 and "vnode 1 is promised pnode 1" in refused.stderr
    assert "--vnode 1 --to 0" in refused.stderr and "Traceback" not in refused.stderr
    done = subprocess.run(base + ["move-memory", str(domid), "--to", "0", "--vnode", "1", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["vnode"]["pnodes"] == [0, 0]


def test_keep_affinity_holds_for_a_vnode_move_too(tmp_path):
    """--keep-affinity leaves soft and node affinity as they are; the vnode map still
    records where the vnode's memory now is."""
    hv = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * GiB), "credit2", 1)
    domid = hv.create("g", 2, 512 * MiB, dtype="pvh", paused=True, load="idle")
    set_two_vnodes(hv, domid, (0, 1))
    hv.unpause(domid)
    soft = {v.vcpu: v.soft for v in hv.vcpus(domid)}
    node_affinity = hv.node_affinity(domid)
    db = Ledger(str(tmp_path / "l.db")).db
    report = move_memory.run(hv, db, move_memory.prepare(hv, str(domid), 0, vnode=1), follow_affinity=False)
    assert report["vnode"]["affinity"] == "kept (--keep-affinity)" and hv.vnuma(domid).pnodes == (0, 0)
    assert {v.vcpu: v.soft for v in hv.vcpus(domid)} == soft and hv.node_affinity(domid) == node_affinity


# --- the rebalancer's helper ------------------------------------------------------------------------
def test_whole_vnode_moves_examples():
    two = layout([0, 1], [512, 256])
    assert whole_vnode_moves(two, [0, 1]) == ()
    assert whole_vnode_moves(two, [0]) == (VnodeMove(1, 1, 0, 256 * MiB),)
    assert whole_vnode_moves(two, [2, 3]) == (VnodeMove(0, 0, 2, 512 * MiB), VnodeMove(1, 1, 3, 256 * MiB))
    assert whole_vnode_moves(two, [1, 2]) == (VnodeMove(0, 0, 2, 512 * MiB),)
    assert whole_vnode_moves(layout([0]), [0, 1]) is None          # one vnode cannot span two nodes
    assert whole_vnode_moves(layout([0, None]), [0]) is None       # unknown pnode: cannot promise
    # two vnodes on node 0, homes {0, 1}: the smaller one moves out
    assert whole_vnode_moves(layout([0, 0], [256, 128]), [0, 1]) == (VnodeMove(1, 0, 1, 128 * MiB),)
    with pytest.raises(InvalidArgument):
        whole_vnode_moves(two, [])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=6), st.data())
def test_whole_vnode_moves_properties(pnodes, data):
    sizes = data.draw(st.lists(st.integers(2, 64), min_size=len(pnodes), max_size=len(pnodes)))
    homes = set(data.draw(st.lists(st.integers(0, 5), min_size=1, max_size=6)))
    lay = layout(pnodes, sizes)
    moves = whole_vnode_moves(lay, homes)
    if len(homes) > len(pnodes):
        assert moves is None
        return
    assert moves is not None
    after = list(pnodes)
    for m in moves:
        assert after[m.vnode] == m.source != m.target and m.memory == sizes[m.vnode] * MiB
        after[m.vnode] = m.target
    assert set(after) == homes                       # realised exactly, each vnode whole on one node
    assert len({m.vnode for m in moves}) == len(moves)
    # nothing that already sat on a home node moved unless a home node needed it
    held = set(pnodes) & homes
    forced = [i for i, p in enumerate(pnodes) if p not in homes]
    if len(forced) >= len(homes - held):
        assert sorted(m.vnode for m in moves) == forced


def test_gfns_within_spans():
    gfns = list(range(0, 100, 3))
    assert gfns_within(gfns, [(10, 20), (90, 200)]) == [12, 15, 18, 90, 93, 96, 99]
    assert gfns_within(gfns, []) == []


def test_the_rebalancers_memory_moves_are_refused_for_a_vnuma_guest(sim, tmp_path):
    """The rebalancer's MoveMemory goes through the executor's mover (move_now on a host
    with modelled time): a move that would split a vnode comes back refused, nothing moved."""
    from xapi_numa.core.actions import MoveMemory
    from xapi_numa.ops.executor import REFUSED, Executor

    hv, domid = sim
    set_two_vnodes(hv, domid)
    hv.unpause(domid)
    before = hv.node_pages(domid)
    uuid = next(d.uuid for d in hv.domains() if d.domid == domid)
    db = Ledger(str(tmp_path / "l.db")).db
    outcome, = Executor(hv, db, start_mover=move_memory.move_now).apply(
        [MoveMemory(domid, uuid, 0, max_pages=4096, reason="rebalance")])
    assert outcome.status == REFUSED and "vnode 1 is promised pnode 1" in outcome.detail
    assert hv.node_pages(domid) == before


class FakeGetvnuma:
    """xn_domain_getvnuma as Xen answers it: counts back with ENOBUFS when the room is
    short, EOPNOTSUPP without a layout; ``replace_once`` swaps the layout for a bigger
    one between the sizing call and the fill (the answer is then ENOBUFS again)."""

    def __init__(self, layouts):
        self.layouts, self.calls = list(layouts), 0

    def xn_domain_getvnuma(self, handle, domid, nodes, nranges, vcpus, ranges, dist, v2n):
        self.calls += 1
        if not self.layouts:
            return -95  # EOPNOTSUPP
        lay = self.layouts[0] if len(self.layouts) == 1 else self.layouts.pop(0)
        k, rs, cpus = len(lay.vnodes), lay.ranges, sum(len(v.vcpus) for v in lay.vnodes)
        short = nodes[0] < k or nranges[0] < len(rs) or vcpus[0] < cpus
        nodes[0], nranges[0], vcpus[0] = k, len(rs), cpus
        if short:
            return -105  # ENOBUFS
        for i, r in enumerate(rs):
            ranges[i].start, ranges[i].end, ranges[i].vnode = r.start, r.end, r.vnode
        for i, d in enumerate(d for v in lay.vnodes for d in v.distances):
            dist[i] = d
        for v in lay.vnodes:
            for c in v.vcpus:
                v2n[c] = v.index
        return 0


def test_xen_adapter_sizes_with_the_enobufs_answer_and_asks_again():
    from xapi_numa.backends import xen_vnuma

    native = libxenuma()
    one, two = layout([1]), layout([0, 1])  # two as DUMP shows d3 (pnodes come only from a dump that agrees)
    dump = DUMP.replace(b"d3 (total", b"d5 (total")
    fake = FakeGetvnuma([two])
    got = xen_vnuma.read(native.ffi, fake, None, 5, lambda fresh: dump)
    assert fake.calls == 2 and got == two  # sized (ENOBUFS), then filled; pnodes from the dump
    fake = FakeGetvnuma([one, two])  # replaced by a larger layout between the two looks
    assert xen_vnuma.read(native.ffi, fake, None, 5, lambda fresh: dump) == two and fake.calls == 3
    assert xen_vnuma.read(native.ffi, FakeGetvnuma([]), None, 5, lambda fresh: dump) is None
    unknown = xen_vnuma.read(native.ffi, FakeGetvnuma([two]), None, 9, lambda fresh: dump)
    assert unknown.pnodes == (None, None) and unknown.vnodes == tuple(
        attrs.evolve(v, pnode=None) for v in two.vnodes)


class FakeSetvnuma:
    """Stands for libxenuma's xn_domain_setvnuma: records the vCPU -> vnode array it got."""

    def __init__(self):
        self.calls = []

    def xn_domain_setvnuma(self, handle, domid, nr_vnodes, nr_ranges, ranges, nr_vcpus, dist, v2n, n2p):
        self.calls.append([v2n[i] for i in range(nr_vcpus)])
        return 0


@pytest.mark.parametrize("broken", [
    lambda v: [attrs.evolve(v[0], distances=(10,)), v[1]],           # a short row: C reads past it
    lambda v: [v[0], attrs.evolve(v[1], vcpus=(0,))],                 # vCPU 0 twice, vCPU 1 in none
    lambda v: [v[1], v[0]],                                           # out of order
    lambda v: [v[0], attrs.evolve(v[1], pnode=None)],                 # no pnode
], ids=["short distances", "a vCPU twice", "vnodes out of order", "no pnode"])
def test_the_xen_adapter_refuses_a_plan_the_c_library_would_misread(broken):
    from xapi_numa.backends import xen_vnuma

    native, good = libxenuma(), layout([0, 1], [128, 64])
    fake = FakeSetvnuma()
    xen_vnuma.write(native.ffi, fake, None, 5, good.as_plan(), good.ranges)
    assert fake.calls == [[0, 1]]
    bad = vnuma.VnumaPlan("follow", tuple(broken(list(good.vnodes))), {})
    with pytest.raises(InvalidArgument) as err:
        xen_vnuma.write(native.ffi, fake, None, 5, bad, good.ranges)
    assert err.value.field == "vnuma plan" and fake.calls == [[0, 1]]


def test_a_library_without_getvnuma_is_an_error_never_no_layout():
    from xapi_numa.backends import xen_vnuma
    from xapi_numa.errors import HypervisorError

    with pytest.raises(HypervisorError) as err:
        xen_vnuma.read(None, object(), None, 5, lambda fresh: b"")
    assert err.value.errno_name == "ENOSYS" and "xn_domain_getvnuma" in err.value.message


def test_the_rebalancers_vnode_step_never_spills_a_vnode_and_the_map_stays_true(tmp_path):
    """A planned vnode move (the rebalancer's MoveMemory with a vnode) to a node without
    room for the whole vnode is refused before anything moves: with fallback the vnode
    ended split while the map recorded it whole on the target."""
    from xapi_numa.core.actions import MoveMemory
    from xapi_numa.errors import NoCapacity
    hv = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * GiB), "credit2", 1)
    domid = hv.create("g", 2, 512 * MiB, dtype="pvh", paused=True, load="idle", soft=frozenset({0, 1}))
    set_two_vnodes(hv, domid, (0, 1))
    hv.unpause(domid)
    hv.create("filler", 1, 3584 * MiB, dtype="pvh", hard=frozenset({2, 3}), soft=frozenset({2, 3}), load="idle")
    assert hv.node_memory()[1].claimable < 256 * MiB
    before, db = hv.node_pages(domid), Ledger(str(tmp_path / "l.db")).db
    uuid = next(d.uuid for d in hv.domains() if d.domid == domid)
    with pytest.raises(NoCapacity):
        move_memory.move_now(hv, db, MoveMemory(domid, uuid, 1, vnode=0, reason="test"))
    assert hv.node_pages(domid) == before and hv.vnuma(domid).pnodes == (0, 1)
    with pytest.raises(InvalidArgument) as err:
        move_memory.check(hv, str(domid), 1, vnode=0, allow_fallback=True)
    assert err.value.field == "allow_fallback"


def test_a_vnode_move_whose_pages_fell_back_is_failed_not_recorded():
    from xapi_numa.core.memory_move import MoveTally
    from xapi_numa.ops.vnode_move import after_vnode_move

    lay = layout([0, 0])
    tally = MoveTally(planned=10, batches_planned=1, moved=10, fallback=3, released=10)
    report = {}
    note = after_vnode_move(None, None, lay, 1, 1, True, tally, report)
    assert note and "3 pages of vnode 1 went to other nodes" in note and "split" in note


# --- the host's guest mask ----------------------------------------------------------------------------
def test_a_vnode_moved_by_hand_stays_inside_the_hosts_guest_mask(sim, tmp_path):
    """The rebalancer's vnode moves go only to nodes with CPUs guests may use, their soft
    affinity inside the mask; a move by hand went anywhere: the vnode's memory on a node its
    vCPUs could not run on, their soft affinity on CPUs outside their hard one."""
    hv, domid = sim  # 2 nodes x 2 CPUs: node 0 CPUs 0-1, node 1 CPUs 2-3
    set_two_vnodes(hv, domid, (0, 1))
    hv.unpause(domid)
    before, db = hv.node_pages(domid), Ledger(str(tmp_path / "l.db")).db
    with pytest.raises(InvalidArgument) as err:
        move_memory.check(hv, str(domid), 0, vnode=1, guest_cpus=frozenset({2, 3}))
    assert err.value.field == "to" and err.value.allowed == "nodes 1" and "guest mask" in err.value.detail
    with pytest.raises(InvalidArgument):
        move_memory.prepare(hv, str(domid), 0, vnode=1, guest_cpus=frozenset({2, 3}))
    assert hv.node_pages(domid) == before and hv.vnuma(domid).pnodes == (0, 1)
    report = move_memory.run(hv, db, move_memory.prepare(hv, str(domid), 0, vnode=1, guest_cpus=frozenset({0, 2, 3})))
    assert report["state"] == "done" and hv.vnuma(domid).pnodes == (0, 0)
    assert hv.vcpus(domid)[1].soft == frozenset({0})  # node 0's CPU the mask leaves guests


def test_the_cli_reads_the_guest_mask_from_xapi_for_a_vnode_move(pool):
    """``move-memory --vnode`` asks xapi for the host's guest mask as ``rebalance --dry-run``
    does (not with --no-xapi): a target outside it is refused, naming --to."""
    server, session = pool
    host = session.xenapi.host.get_all()[0]
    hv = server.sims[host]  # 2 nodes x 4 CPUs
    domid = hv.create("g", 2, 512 * MiB, dtype="pvh", paused=True, load="idle", soft=hv.topology().cpus_of_nodes([0]))
    set_two_vnodes(hv, domid, (0, 1))
    hv.unpause(domid)
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "4,5,6,7"})  # node 1's CPUs
    env = dict(server.plugin_env(host), XAPI_NUMA_POOL_PASSWORD="xenroot")
    base = [sys.executable, "-m", "xapi_numa.cli", "move-memory", str(domid), "--to", "0", "--vnode", "1", "--json"]
    refused = subprocess.run(base, capture_output=True, text=True, env=env)
    assert refused.returncode != 0 and "--to" in refused.stderr and "allowed: nodes 1" in refused.stderr, \
        refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr and hv.vnuma(domid).pnodes == (0, 1)
    done = subprocess.run(base + ["--no-xapi"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert hv.vnuma(domid).pnodes == (0, 0)


@pytest.mark.parametrize("broken", [
    lambda v: [attrs.evolve(v[0], distances=(10,)), v[1]],
    lambda v: [v[1], v[0]],
    lambda v: [v[0], attrs.evolve(v[1], pnode=None)],
], ids=["short distances", "vnodes out of order", "no pnode"])
def test_the_simulator_refuses_what_the_xen_adapter_refuses(sim, broken):
    """The simulator took a short distance row and vnodes out of order (kept as given), and
    a vnode with no pnode was a TypeError traceback: it now refuses them as the adapter does."""
    hv, domid = sim
    good = set_two_vnodes(hv, domid)
    before = hv.vnuma(domid)
    bad = vnuma.VnumaPlan("follow", tuple(broken(list(good.vnodes))), {})
    with pytest.raises(InvalidArgument) as err:
        hv.set_vnuma(domid, bad, vnuma.memory_ranges(good))
    assert err.value.field == "vnuma plan" and hv.vnuma(domid) == before
