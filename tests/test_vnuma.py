"""The vNUMA planner (core/vnuma.py) and ``xapi-numa vnuma``: properties of every
plan, each refusal with its own error, the split-host halves and the xl.cfg lines."""
import re
import subprocess
import sys

import pytest
from conftest import libxenuma
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from xapi_numa.core import vnuma
from xapi_numa.core.policy import Policy
from xapi_numa.core.topology import Topology
from xapi_numa.errors import InvalidArgument, NoCapacity

MiB = 1 << 20
GiB = 1 << 30


def slit(n: int, seed: int):
    """A valid symmetric SLIT: 10 local, remote 11..40 from a seed."""
    rows = [[10] * n for _ in range(n)]
    for a in range(n):
        for b in range(a + 1, n):
            rows[a][b] = rows[b][a] = 11 + (seed * 7 + a * 13 + b * 5) % 30
    return rows


@st.composite
def cases(draw):
    n = draw(st.integers(1, 8))
    topo = Topology.uniform(n, draw(st.integers(1, 4)), 64 * GiB, slit(n, draw(st.integers(0, 100))))
    k = draw(st.integers(1, n))
    pnodes = draw(st.permutations(sorted(topo.node_ids)))[:k]
    vcpus = draw(st.integers(k, 64))
    memory = draw(st.integers(k * 2, 4096)) * MiB + draw(st.sampled_from([0, 0, 4096, 12288]))
    return topo, vnuma.GuestSpec(draw(st.sampled_from(["hvm", "pvh"])), vcpus, memory), pnodes


@settings(max_examples=300, deadline=None)
@given(cases())
def test_plan_properties(case):
    topo, guest, pnodes = case
    plan = vnuma.plan_follow(topo, guest, pnodes)
    assert plan.pnodes == tuple(pnodes)
    # sizes sum exactly; every boundary on 2 MiB (only the end of RAM may be unaligned)
    assert sum(v.memory for v in plan.vnodes) == guest.memory
    assert all(v.memory % vnuma.ALIGN == 0 for v in plan.vnodes[:-1])
    assert all(v.memory >= vnuma.ALIGN for v in plan.vnodes)
    # every vCPU in exactly one vnode, contiguous blocks, at least one per vnode
    owners = [v.index for v in plan.vnodes for _ in v.vcpus]
    assert sorted(c for v in plan.vnodes for c in v.vcpus) == list(range(guest.vcpus))
    assert len(owners) == guest.vcpus and all(v.vcpus for v in plan.vnodes)
    assert all(list(v.vcpus) == list(range(v.vcpus[0], v.vcpus[-1] + 1)) for v in plan.vnodes)
    assert max(len(v.vcpus) for v in plan.vnodes) - min(len(v.vcpus) for v in plan.vnodes) <= 1
    # vdistances: the host's SLIT between the pnodes, symmetric, local <= remote
    for a in plan.vnodes:
        assert a.distances[a.index] == 10
        for b in plan.vnodes:
            assert a.distances[b.index] == b.distances[a.index] == topo.distance(a.pnode, b.pnode)
            assert a.distances[a.index] <= a.distances[b.index]


@settings(max_examples=200, deadline=None)
@given(cases(), st.integers(0, 5))
def test_every_invalid_configuration_is_refused_with_its_own_error(case, which):
    topo, guest, pnodes = case
    free = {n: 64 * GiB for n in topo.node_ids}
    if which == 0:
        bad, field = vnuma.GuestSpec("kvm", guest.vcpus, guest.memory), "type"
    elif which == 1:
        bad, field = vnuma.GuestSpec(guest.type, guest.vcpus, guest.memory, guest.memory - MiB), "memory_dynamic_min"
    elif which == 2:
        assume(len(pnodes) > 1)
        bad, field = vnuma.GuestSpec(guest.type, len(pnodes) - 1, guest.memory), "vcpus"
    elif which == 3:
        bad, field = guest, None
        free[pnodes[-1]] = guest.memory // len(pnodes) // 4
    elif which == 4:
        bad, field = vnuma.GuestSpec(guest.type, guest.vcpus, guest.memory, policy=Policy.parse("any")), "policy"
    else:
        assume(len(topo.node_ids) > len(pnodes))
        other = min(set(topo.node_ids) - set(pnodes))
        bad, field = vnuma.GuestSpec(guest.type, guest.vcpus, guest.memory,
                                     policy=Policy.parse("strict", str(other), "fail")), "policy"
    with pytest.raises(InvalidArgument if field else NoCapacity) as info:
        vnuma.plan_follow(topo, bad, pnodes, free)
    if field:
        assert info.value.field == field and info.value.allowed


def test_each_refusal_names_its_reason():
    topo = Topology.uniform(2, 2, 4 * GiB)
    cases = [(vnuma.GuestSpec("hvm", 2, GiB, GiB // 2), "populate-on-demand"),
             # a PV guest has no populate-on-demand: it would start ballooned
             (vnuma.GuestSpec("pv", 2, GiB, GiB // 2), "start ballooned, its build populating less"),
             (vnuma.GuestSpec("hvm", 1, GiB), "2 vnodes .*every vnode needs a vCPU"),
             (vnuma.GuestSpec("hvm", 2, GiB, policy=Policy.parse("strict", "1", "fail")), "leaves out"),
             (vnuma.GuestSpec("hvm", 2, 2 * MiB), "below 2 MiB"),
             (vnuma.GuestSpec("kvm", 2, GiB), "unknown guest type")]
    for guest, words in cases:
        with pytest.raises(InvalidArgument, match=words):
            vnuma.plan_follow(topo, guest, [0, 1])
    with pytest.raises(NoCapacity, match="node 1"):
        vnuma.plan_follow(topo, vnuma.GuestSpec("hvm", 2, 4 * GiB), [0, 1], {0: 4 * GiB, 1: GiB})
    with pytest.raises(InvalidArgument, match="no node 5"):
        vnuma.plan_follow(topo, vnuma.GuestSpec("hvm", 2, GiB), [0, 5])
    with pytest.raises(InvalidArgument, match="each pnode once"):
        vnuma.plan_follow(topo, vnuma.GuestSpec("hvm", 2, GiB), [1, 1])


def test_a_node_list_confines_the_vnode_map_only_where_placement_would_stop_there():
    """``2,nearest`` and the default fallback go on to other nodes when 2 is full: a map
    over 2 and 3 is the very placement they make, and was refused."""
    topo = Topology.uniform(4, 2, 4 * GiB)
    for policy in (Policy.parse("best_effort", "2,nearest"), Policy.parse("preferred", "2"),
                   Policy.parse("strict", "2"), Policy.parse("strict", "2,nearest", "fail")):
        vnuma.plan_follow(topo, vnuma.GuestSpec("hvm", 4, 6 * GiB, policy=policy), [2, 3])
    with pytest.raises(InvalidArgument, match="on_exhaust=fail leaves out"):
        vnuma.plan_follow(topo, vnuma.GuestSpec("hvm", 4, 6 * GiB, policy=Policy.parse("strict", "2", "fail")),
                          [2, 3])


def test_split_keeps_close_nodes_together():
    # two sockets of two dies each, numbered alternately: 0,2 on one socket, 1,3 on the other
    topo = Topology.uniform(4, 2, 8 * GiB, [[10, 32, 16, 32], [32, 10, 32, 16], [16, 32, 10, 32], [32, 16, 32, 10]])
    assert vnuma.split_halves(topo) == (frozenset({0, 2}), frozenset({1, 3}))
    plan = vnuma.plan_split(topo, vnuma.GuestSpec("hvm", 4, 4 * GiB), 1)
    assert plan.mode == "split" and plan.pnodes == (1, 3)
    assert [v.distances for v in plan.vnodes] == [(10, 16), (16, 10)]
    with pytest.raises(InvalidArgument, match="2 or more"):
        vnuma.split_halves(Topology.uniform(1, 2, GiB))
    with pytest.raises(InvalidArgument) as info:
        vnuma.plan_split(topo, vnuma.GuestSpec("hvm", 4, GiB), 2)
    assert info.value.field == "half"


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 9), st.integers(0, 100))
def test_split_halves_partition_the_host(n, seed):
    topo = Topology.uniform(n, 1, GiB, slit(n, seed))
    a, b = vnuma.split_halves(topo)
    assert a | b == topo.node_ids and not a & b and 0 in a and len(a) - len(b) in (0, 1)


def test_xl_lines_follow_xl_cfg_syntax():
    topo = Topology.uniform(2, 2, 4 * GiB, [[10, 21], [21, 10]])
    plan = vnuma.plan_follow(topo, vnuma.GuestSpec("hvm", 3, 1000 * MiB), [1, 0])
    text = vnuma.xl_lines(plan, topo)
    assert text.splitlines() == [
        "memory = 1000", "maxmem = 1000",
        'vnuma = [["pnode=1", "size=666", "vcpus=0-1", "vdistances=10,21"], '
        '["pnode=0", "size=334", "vcpus=2", "vdistances=21,10"]]',
        'cpus_soft = ["2-3", "2-3", "0-1"]']
    # a strict policy: the same per-vCPU CPUs as hard affinity too
    assert vnuma.xl_lines(plan, topo, hard=True).splitlines()[-1] == 'cpus = ["2-3", "2-3", "0-1"]'
    odd = vnuma.plan_follow(topo, vnuma.GuestSpec("hvm", 2, GiB + 4096), [0, 1])
    with pytest.raises(InvalidArgument, match="whole number of MiB"):
        vnuma.xl_lines(odd, topo)


def test_vnode_of_vcpu_and_memory_by_pnode():
    topo = Topology.uniform(2, 2, 4 * GiB)
    plan = vnuma.plan_follow(topo, vnuma.GuestSpec("pvh", 4, GiB), [0, 1])
    assert [plan.vnode_of_vcpu(c) for c in range(4)] == [0, 0, 1, 1]
    assert plan.memory_by_pnode() == {0: GiB // 2, 1: GiB // 2}
    with pytest.raises(InvalidArgument):
        plan.vnode_of_vcpu(4)


def _cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "xapi_numa.cli", "--backend", f"sim:{tmp_path}/h.json", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)


def test_cli_prints_xl_lines_and_refuses_cleanly(tmp_path):
    assert _cli(tmp_path, "sim", "init", f"{tmp_path}/h.json", "--nodes", "2", "--cpus-per-node", "2",
                "--memory-per-node", "4G").returncode == 0
    out = _cli(tmp_path, "vnuma", "vm1", "--vcpus", "2", "--memory", "1G", "--nodes", "0,1", "--xl")
    assert out.returncode == 0, out.stderr
    assert re.search(r'^vnuma = \[\["pnode=0", "size=512", "vcpus=0", "vdistances=10,20"\], '
                     r'\["pnode=1", "size=512", "vcpus=1", "vdistances=20,10"\]\]$', out.stdout, re.M), out.stdout
    # Xen's node syntax, as everywhere a node list is typed
    for spelled in ("0-1", "nodes:0-1", "node:0,node:1"):
        again = _cli(tmp_path, "vnuma", "vm1", "--vcpus", "2", "--memory", "1G", "--nodes", spelled, "--xl")
        assert again.returncode == 0 and again.stdout == out.stdout, (spelled, again.stderr)
    # without --nodes the vnodes follow a placement dry run: 1 GiB fits on one node
    out = _cli(tmp_path, "vnuma", "vm1", "--vcpus", "2", "--memory", "1G", "--json")
    assert out.returncode == 0 and '"pnode"' in out.stdout, out.stderr
    for args, words in [(("--type", "kvm"), "--type: unknown guest type"),
                        (("--dynamic-min", "512M"), "populate-on-demand"),
                        (("--nodes", "0,7"), "--nodes"), (("--split", "3"), "--split: 3")]:
        out = _cli(tmp_path, "vnuma", "vm1", "--vcpus", "2", "--memory", "1G", *args)
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_cli_names_the_flag_a_user_must_change(tmp_path):
    """--split on a one-node host names --split (not the policy's --mode), --hole-start
    without --apply is refused, not ignored, and --memory must be whole pages."""
    assert _cli(tmp_path, "sim", "init", f"{tmp_path}/h.json", "--nodes", "1", "--cpus-per-node", "4",
                "--memory-per-node", "4G").returncode == 0
    for args, words in [(("--split", "0"), "--split: a split plan needs a host with 2 or more NUMA nodes"),
                        (("--hole-start", "0xf0000000"), "--hole-start: only with --apply"),
                        (("--memory", "4194305"), "--memory: 4194305 bytes is not a whole number of 4 KiB pages")]:
        argv = ["vnuma", "vm1", "--vcpus", "2"] + (["--memory", "1G"] if "--memory" not in args else []) + list(args)
        out = _cli(tmp_path, *argv)
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)


def test_memory_ranges_go_around_the_hole():
    topo = Topology.uniform(2, 2, 8 * GiB)
    plan = vnuma.plan_follow(topo, vnuma.GuestSpec("hvm", 2, 6 * GiB), [0, 1])
    ranges = vnuma.memory_ranges(plan, 0xF0000000)
    assert [(r.start, r.end, r.vnode) for r in ranges] == [
        (0, 3 * GiB, 0), (3 * GiB, 0xF0000000, 1), (4 * GiB, 4 * GiB + 3 * GiB - (0xF0000000 - 3 * GiB), 1)]
    assert sum(r.end - r.start for r in ranges) == 6 * GiB
    with pytest.raises(InvalidArgument):
        vnuma.memory_ranges(plan, 123)


@settings(max_examples=100, deadline=None)
@given(cases(), st.integers(1, 0xFFFFF))
def test_memory_ranges_cover_each_vnode_exactly(case, hole_pages):
    topo, guest, pnodes = case
    plan = vnuma.plan_follow(topo, guest, pnodes)
    ranges = vnuma.memory_ranges(plan, hole_pages * 4096)
    assert all(a.end <= b.start for a, b in zip(ranges, ranges[1:]))
    assert all(r.start >= vnuma.FOUR_GiB or r.end <= hole_pages * 4096 for r in ranges)
    for v in plan.vnodes:
        assert sum(r.end - r.start for r in ranges if r.vnode == v.index) == v.memory


def test_sim_port_checks_the_layout_as_xen_does(tmp_path):
    from xapi_numa.backends.sim.backend import SimHypervisor
    from xapi_numa.errors import HypervisorError

    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 4 * GiB), "credit2", 1)
    domid = sim.create("g", 2, 512 * MiB, dtype="hvm", paused=True)
    plan = vnuma.plan_follow(sim.topology(), vnuma.GuestSpec("hvm", 2, 512 * MiB), [0, 1])
    sim.set_vnuma(domid, plan, vnuma.memory_ranges(plan))
    wrong = vnuma.plan_follow(sim.topology(), vnuma.GuestSpec("hvm", 3, 512 * MiB), [0, 1])
    with pytest.raises(HypervisorError):
        sim.set_vnuma(domid, wrong, vnuma.memory_ranges(wrong))


def test_libxenuma_checks_a_layout_before_any_hypercall():
    native = libxenuma()
    ffi, lib = native.ffi, native.lib
    dist = ffi.new("uint32_t[4]", [10, 20, 20, 10])

    def check(ranges, vcpu_to_vnode, nr_vnodes=2):
        r = ffi.new("struct xn_vmemrange[]", ranges)
        v = ffi.new("uint32_t[]", vcpu_to_vnode)
        return lib.xn_vnuma_check(nr_vnodes, len(ranges), r, len(vcpu_to_vnode), dist, v)

    good = [(0, 128 * MiB, 0), (128 * MiB, 256 * MiB, 1)]
    assert check(good, [0, 1]) == 0
    assert check(good, [0, 0]) == -22                                     # vnode 1 has no vCPU
    assert check([(0, 128 * MiB, 0), (128 * MiB, 256 * MiB, 0)], [0, 1]) == -22  # vnode 1 has no memory
    assert check([(0, 128 * MiB, 0), (64 * MiB, 256 * MiB, 1)], [0, 1]) == -22   # overlap
    assert check([(0, 128 * MiB + 1, 0), (129 * MiB, 256 * MiB, 1)], [0, 1]) == -22  # not page-aligned
    assert check(good, [0, 2]) == -22                                     # vCPU's vnode out of range
    assert check(good[:1], [0], nr_vnodes=1) == 0


@pytest.mark.parametrize("guest, field, allowed", [
    (vnuma.GuestSpec("hvm", 2, 4 * MiB + 1), "memory", "(one VM, in whole 4K pages)"),
    (vnuma.GuestSpec("hvm", 100000, 4 * GiB), "vcpus", "1..4096"),
])
def test_a_guest_vnuma_cannot_lay_out_is_refused_by_name(guest, field, allowed):
    """Memory ranges end on pages, and the vCPU bound is the placement engine's."""
    with pytest.raises(InvalidArgument) as err:
        vnuma.check_guest(guest)
    assert err.value.field == field and allowed in err.value.message
