"""A plan of more than 32 vnodes (Xen 4.17's limit: the distance table in one page) was refused
under the field ``vnodes``, which no flag, plugin argument or xapi field is called.  It is now
named by what gave the nodes: ``--nodes`` on the command line (also where placement chose
them: --nodes is how to name fewer), ``--split`` for a half of a split host, and through the
plugin ``half`` or, for a follow plan (placement's nodes, decided by the VM's record), ``vm``;
the allowed range says at most 32 nodes."""
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.core.topology import Topology
from xapi_numa.errors import InvalidArgument
from xapi_numa.ops.vnuma_xapi import plan_for
from xapi_numa.state.ledger import Ledger

GiB = 1 << 30


def _cli(tmp_path, capsys, monkeypatch, nodes, *how):
    host = str(tmp_path / "h.json")  # (made here: `sim init` takes at most 64 nodes, whose halves have 32)
    SimHypervisor.init(host, Topology.uniform(nodes, 1, 2 * GiB), "credit2", seed=1, dom0_vcpus=1,
                       dom0_memory=256 << 20)
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    capsys.readouterr()
    rc = main(["vnuma", "g", "--vcpus", "40", "--memory", "40G", "--no-xapi"] + list(how))
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("how", [["--nodes", "0-32"], []], ids=["--nodes", "placement"])
def test_the_cli_names_the_node_list(tmp_path, capsys, monkeypatch, how):
    rc, err = _cli(tmp_path, capsys, monkeypatch, 40, *how)
    assert rc == 2 and "--nodes: " in err and "at most 32 nodes" in err and "vnodes:" not in err, err


def test_the_cli_names_the_split(tmp_path, capsys, monkeypatch):
    rc, err = _cli(tmp_path, capsys, monkeypatch, 66, "--split", "1")
    assert rc == 2 and "--split: 33 nodes" in err and "at most 32 nodes" in err, err


@pytest.mark.parametrize("mode, half, field", [("follow", None, "vm"), ("split", 0, "half")])
def test_the_plugins_plan_names_its_own_arguments(tmp_path, mode, half, field):
    hv = SimHypervisor.init(str(tmp_path / "h"), Topology.uniform(66, 1, 2 * GiB), "credit2", seed=1, dom0_vcpus=1,
                            dom0_memory=256 << 20)
    record = {"domain_type": "hvm", "VCPUs_max": "40", "memory_static_max": str(40 * GiB),
              "memory_dynamic_min": str(40 * GiB), "other_config": {}, "power_state": "Halted"}
    with pytest.raises(InvalidArgument) as e:
        plan_for(hv, Ledger(str(tmp_path / "ledger")), record, "u-1", mode, half, session=None)
    assert e.value.field == field and "at most 32 nodes" in e.value.allowed, (e.value.field, e.value.allowed)
