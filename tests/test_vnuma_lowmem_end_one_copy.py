"""Where a builder ends a guest's RAM below 4 GiB by default (libxl__build_hvm: 0xf0000000 for
HVM, 0xfc000000 for PVH) was written twice in the core: in pages in xenalloc (the model of Xen's
build) and in bytes in vnuma, whose copy ``vnuma --apply`` took for its default --hole-start.
One copy is kept, xenalloc's: the layout --apply sets follows it."""
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.core import xenalloc

GiB = 1 << 30


@pytest.mark.parametrize("kind", ["hvm", "pvh"])
def test_apply_lays_the_ranges_round_the_builds_own_lowmem_end(tmp_path, capsys, monkeypatch, kind):
    host = str(tmp_path / "h.json")
    assert main(["sim", "init", host, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "8G"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    domid = SimHypervisor(host).create_shell("g", 2, 4 * GiB, dtype=kind)
    # a builder that ended RAM at 3.5 GiB: the layout's hole must start where the build's does
    monkeypatch.setitem(xenalloc.LOWMEM_END, kind, 0xE0000)
    capsys.readouterr()
    rc = main(["vnuma", "g", "--vcpus", "2", "--memory", "4G", "--type", kind, "--apply", "--nodes", "0,1",
               "--no-xapi", "--json", "--videoram", "0"])
    assert rc == 0, capsys.readouterr().err
    ranges = SimHypervisor(host).vnuma(domid).ranges
    below = [r for r in ranges if r.start < 4 * GiB]
    assert max(r.end for r in below) == 0xE0000000
    assert min(r.start for r in ranges if r.start >= 4 * GiB) == 4 * GiB
