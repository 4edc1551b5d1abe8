"""``vnuma --apply`` took any --memory up to 64 MiB below the domain's maximum in Xen as its
static max: 1000 MiB on a 1 GiB domain was applied, and 24 MiB of its RAM were in no vnode.
Neither toolstack leaves such a gap: libxl 4.17 sets Xen's maximum to the target (the static
max, with vNUMA) plus LIBXL_MAXMEM_CONSTANT, 1024 KiB; xenopsd, before the first unpause,
leaves it at squeezed's reservation, the static max plus its overhead (shadow memory and
more: 71 MiB for 8 GiB and 4 vCPUs), which the 64 MiB refused for a big VM.  Both record
the static max in xenstore (memory/static-max, KiB) when the build is done, and --apply now
takes exactly that; with nothing recorded, exactly Xen's maximum less the 1 MiB."""
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli import common
from xapi_numa.cli.main import main

MiB, GiB = 1 << 20, 1 << 30


class Recorded(SimHypervisor):
    """A simulated host whose toolstack recorded ``static`` (None: nothing) as every guest's static max."""

    static = None

    def static_max(self, domid):
        return self.static


@pytest.fixture
def host(tmp_path, capsys, monkeypatch):
    """A built, paused 1 GiB HVM domain "g" (2 vCPUs); ``apply(memory, xen_max, static)``
    runs ``vnuma g --apply`` with Xen's maximum and the recorded static max set so."""
    path = str(tmp_path / "h.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "4G"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{path}")
    domid = SimHypervisor(path).create("g", 2, GiB, dtype="hvm", paused=True)
    capsys.readouterr()

    def apply(memory, xen_max=None, static="sim"):
        hv = SimHypervisor(path) if static == "sim" else Recorded(path)
        hv.static = static
        if xen_max is not None:
            hv.set_max_memory(domid, xen_max)
        monkeypatch.setattr(common, "hypervisor", lambda args: hv)
        code = main(["vnuma", "g", "--vcpus", "2", "--memory", memory, "--apply", "--no-xapi"])
        return code, capsys.readouterr().err, SimHypervisor(path).vnuma(domid)
    return apply


def test_memory_short_of_the_static_max_is_refused_and_nothing_set(host):
    code, err, layout = host("1000M")  # the simulator's domains: static max = their maximum
    assert code == 2 and layout is None, err
    assert "--memory: 1000M" in err and "static max is 1G" in err, err


def test_the_static_max_xenopsd_records_is_taken_whatever_its_reservation(host):
    code, err, layout = host("1G", xen_max=GiB + 71 * MiB, static=GiB)
    assert code == 0 and layout is not None, err
    code, err, _ = host("1023M", xen_max=GiB + 71 * MiB, static=GiB)
    assert code == 2 and "--memory: 1023M" in err and "static max is 1G" in err, err


def test_with_nothing_recorded_exactly_the_toolstacks_1_mib_below_the_maximum(host):
    code, err, _ = host("1023M", xen_max=GiB + MiB, static=None)
    assert code == 2 and "--memory: 1023M" in err and "1G exactly" in err, err
    code, err, _ = host("1G", xen_max=GiB + 2 * MiB, static=None)
    assert code == 2 and "--memory: 1G" in err and "1025M exactly" in err, err
    code, err, layout = host("1G", xen_max=GiB + MiB, static=None)
    assert code == 0 and layout is not None, err


@pytest.mark.parametrize("value, expected", [("1048576", GiB), (None, None), ("1048576 ", None), ("-1", None),
                                             ("\u00b2", None), ("", None)])
def test_the_xen_adapter_reads_the_static_max_both_toolstacks_write(monkeypatch, value, expected):
    xen = pytest.importorskip("xapi_numa.backends.xen")
    from test_review10_offline_cpus import TwoNodeHost

    monkeypatch.setattr(xen, "lib", TwoNodeHost())
    hv, asked = xen.XenHypervisor(), []
    hv._xenstore = type("Store", (), {"read": lambda self, path: asked.append(path) or value})()
    assert hv.static_max(7) == expected and asked == ["/local/domain/7/memory/static-max"]


@pytest.mark.parametrize("static, xen_max, said", [(GiB + 4096, None, "1048580K exactly"),
                                                   (None, GiB + MiB + 4096, "1048580K exactly")])
def test_a_static_max_of_no_whole_mib_is_said_as_it_must_be_typed(host, static, xen_max, said):
    """xenopsd records a static max of any whole KiB: the refusal said "1.0G exactly" for 1 GiB and
    4 KiB, a value --memory then refused again; it says one that is taken, and it is."""
    code, err, _ = host("1G", xen_max=xen_max or GiB + MiB, static=static)
    assert code == 2 and said in err and "1.0G" not in err, err
    code, err, layout = host(said.split()[0], xen_max=xen_max or GiB + MiB, static=static)
    assert code == 0 and layout is not None, err
