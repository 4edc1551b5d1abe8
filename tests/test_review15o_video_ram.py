"""An HVM guest's video RAM is part of its static max but not of its RAM: xenopsd builds
static-max minus platform:videoram (default 4 MiB; Memory.HVM.build_max_mib), libxl
static max minus video_memkb, which it takes out of vnode 0's ranges
(libxl__vnuma_build_vmemrange_hvm).  ``memory_ranges`` laid out the full static max,
so every vnode boundary sat the video size too high and the last range ran past the
guest's RAM.  The ranges now leave the video RAM out of vnode 0, as libxl does;
``vnuma --apply`` takes it from ``--videoram`` (MiB, as xapi's platform key and xl's
option), 4 MiB by default for HVM (xenopsd's default), none for PVH."""
import json

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.core import vnuma
from xapi_numa.core.topology import Topology
from xapi_numa.errors import InvalidArgument

MiB, GiB = 1 << 20, 1 << 30
LOW = 0xF0000000  # libxl's and hvmloader's default end of RAM below 4 GiB with a device model


def _plan(memory, kind="hvm"):
    return vnuma.plan_follow(Topology.uniform(2, 2, 16 * GiB), vnuma.GuestSpec(kind, 2, memory), [0, 1])


def _triples(ranges):
    return [(r.start, r.end, r.vnode) for r in ranges]


def test_video_ram_comes_out_of_vnode_0_as_libxl_lays_it():
    # 4 GiB static max, 4 MiB video: 4092 MiB of RAM, 0xF0000000 below 4 GiB, the rest above
    ranges = vnuma.memory_ranges(_plan(4 * GiB), LOW, vnuma.FOUR_GiB, video=4 * MiB)
    assert _triples(ranges) == [(0, 2 * GiB - 4 * MiB, 0), (2 * GiB - 4 * MiB, LOW, 1),
                                (vnuma.FOUR_GiB, vnuma.FOUR_GiB + (4 * GiB - 4 * MiB - LOW), 1)]
    # no video: the whole static max, as before (PVH)
    assert _triples(vnuma.memory_ranges(_plan(4 * GiB, "pvh"), 0xFC000000, vnuma.FOUR_GiB))[-1][1] == \
        vnuma.FOUR_GiB + 4 * GiB - 0xFC000000


def test_a_vnode_0_that_cannot_hold_the_video_ram_is_refused_as_libxl_refuses_it():
    plan = _plan(4 * GiB)
    for video in (2 * GiB, 3 * GiB, -4096, 4 * MiB + 1):
        with pytest.raises(InvalidArgument) as err:
            vnuma.memory_ranges(plan, LOW, vnuma.FOUR_GiB, video=video)
        assert err.value.field == "video"


def _apply(tmp_path, capsys, monkeypatch, kind, *extra):
    tmp_path.mkdir(exist_ok=True)
    host = str(tmp_path / "h.json")
    assert main(["sim", "init", host, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "8G"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    domid = SimHypervisor(host).create_shell("g", 2, 4 * GiB, dtype=kind)
    capsys.readouterr()
    rc = main(["vnuma", "g", "--vcpus", "2", "--memory", "4G", "--type", kind, "--apply", "--nodes", "0,1",
               "--no-xapi", "--json"] + list(extra))
    out, err = capsys.readouterr()
    return rc, out, err, SimHypervisor(host).vnuma(domid)


def test_apply_lays_an_hvm_guest_ranges_without_its_video_ram(tmp_path, capsys, monkeypatch):
    rc, out, err, layout = _apply(tmp_path, capsys, monkeypatch, "hvm")
    assert rc == 0, err
    # xenopsd's default platform:videoram, 4 MiB: RAM ends at 4 GiB + 256 MiB - 4 MiB
    assert _triples(layout.ranges) == [(0, 2 * GiB - 4 * MiB, 0), (2 * GiB - 4 * MiB, LOW, 1),
                                       (vnuma.FOUR_GiB, vnuma.FOUR_GiB + 252 * MiB, 1)]
    assert json.loads(out)["video_ram"] == 4 * MiB  # the answer says what it assumed


def test_apply_takes_the_video_size_given(tmp_path, capsys, monkeypatch):
    rc, out, err, layout = _apply(tmp_path, capsys, monkeypatch, "hvm", "--videoram", "16")  # a vGPU VM
    assert rc == 0, err
    assert layout.ranges[0].end == 2 * GiB - 16 * MiB and layout.ranges[-1].end == vnuma.FOUR_GiB + 240 * MiB
    assert json.loads(out)["video_ram"] == 16 * MiB


def test_apply_to_a_pvh_guest_has_no_video_ram_and_refuses_one(tmp_path, capsys, monkeypatch):
    rc, out, err, layout = _apply(tmp_path, capsys, monkeypatch, "pvh")
    assert rc == 0, err
    assert layout.ranges[0].end == 2 * GiB and layout.ranges[-1].end == vnuma.FOUR_GiB + 4 * GiB - 0xF0000000
    rc, out, err, layout = _apply(tmp_path / "again", capsys, monkeypatch, "pvh", "--videoram", "4")
    assert rc == 2 and "--videoram" in err and "Traceback" not in err and layout is None, err


def test_videoram_only_with_apply(tmp_path, capsys, monkeypatch):
    host = str(tmp_path / "h.json")
    assert main(["sim", "init", host, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "8G"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    capsys.readouterr()
    assert main(["vnuma", "g", "--vcpus", "2", "--memory", "4G", "--videoram", "8"]) == 2
    assert "--videoram: only with --apply" in capsys.readouterr().err
