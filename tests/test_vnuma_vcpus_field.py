"""A vNUMA plan with more vnodes than the guest has vCPUs was refused under the field
``vnodes``, which no command-line flag, plugin argument or xapi field is called: the CLI
printed "vnodes: 2 vnodes but only 1 vCPU(s)" and the plugin's failure named "vnodes".
The core now names what it checks by the guest's vCPUs, which each caller names as its
user typed it: ``--vcpus`` on the command line, ``VCPUs_max`` for a plan from xapi's record."""
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.core import vnuma
from xapi_numa.core.topology import Topology
from xapi_numa.errors import InvalidArgument
from xapi_numa.ops.vnuma_xapi import plan_for
from xapi_numa.state.ledger import Ledger

GiB = 1 << 30


def test_the_core_names_the_guests_vcpus():
    with pytest.raises(InvalidArgument) as e:
        vnuma.plan_follow(Topology.uniform(2, 2, 4 * GiB), vnuma.GuestSpec("hvm", 1, GiB), [0, 1])
    assert e.value.field == "vcpus" and "2 vnodes" in e.value.detail and "nodes 0,1" in e.value.detail


@pytest.mark.parametrize("how", [["--nodes", "0,1"], ["--split", "0"]], ids=["--nodes", "--split"])
def test_the_cli_names_vcpus_as_typed(tmp_path, capsys, monkeypatch, how):
    host = str(tmp_path / "h.json")
    assert main(["sim", "init", host, "--nodes", "4", "--cpus-per-node", "2", "--memory-per-node", "4G"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    capsys.readouterr()
    assert main(["vnuma", "g", "--vcpus", "1", "--memory", "1G"] + how) == 2
    err = capsys.readouterr().err
    assert "--vcpus: 1" in err and "vnodes:" not in err, err


def test_a_plan_from_xapis_record_names_VCPUs_max(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "h"), Topology.uniform(4, 2, 4 * GiB), "credit2", seed=1, dom0_vcpus=1)
    record = {"domain_type": "hvm", "VCPUs_max": "1", "memory_static_max": str(GiB),
              "memory_dynamic_min": str(GiB), "other_config": {}, "power_state": "Halted"}
    with pytest.raises(InvalidArgument) as e:
        plan_for(hv, Ledger(str(tmp_path / "ledger")), record, "u-1", "split", 0, session=None)
    assert e.value.field == "VCPUs_max", e.value.field
