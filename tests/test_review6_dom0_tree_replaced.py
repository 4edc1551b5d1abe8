"""Review 6: a simulated host made again with another dom0 vCPU count is refused as damaged.

``sim init PATH --force`` starts a new host "with no state" (docs/simulator.md: the ledger beside it is
removed) but leaves the replaced host's dom0 tree, ``PATH.dom0/sim-backend.json``
(backends/sim/backend.py:54 removes only PATH.ledger.db*).  Since 32479e0 that record is
checked against the new dom0's vCPU count (dom0_tree.py:106): the old host's IRQ counts
(one per old dom0 vCPU) and CPU lists ("0-7") no longer fit, and every use of dom0 (the
``backends`` command, xapi-numad's start) fails, exit 1:

    simulated dom0 PATH.dom0/sim-backend.json is damaged: dom0.threads[1].allowed must be
    a CPU list of dom0's vCPUs 0..1 such as 0-1, not '0-7' (delete PATH.dom0 to make it again)
    simulated dom0 ...: dom0.irqs[24].counts has 2 entries for 8 CPUs

The file was only ever written by the simulator.  On a787cb1 both commands exit 0.
"""
import pytest

from xapi_numa import daemon
from xapi_numa.cli.main import main

INIT = ["--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "1G"]


@pytest.mark.parametrize("before, after", [(8, 2), (2, 8)])
def test_a_host_made_again_with_other_dom0_vcpus_uses_its_dom0(tmp_path, capsys, before, after):
    path = str(tmp_path / "host.json")
    assert main(["sim", "init", path] + INIT + ["--dom0-vcpus", str(before)]) == 0
    assert main(["sim", "create", path, "g1", "--vcpus", "2", "--memory", "64M", "--type", "hvm"]) == 0
    assert main(["--backend", "sim:" + path, "backends"]) == 0  # makes PATH.dom0
    assert main(["sim", "init", path, "--force"] + INIT + ["--dom0-vcpus", str(after)]) == 0
    assert main(["sim", "create", path, "g1", "--vcpus", "2", "--memory", "64M", "--type", "hvm"]) == 0
    capsys.readouterr()
    rc = main(["--backend", "sim:" + path, "backends"])
    err = capsys.readouterr().err
    assert "damaged" not in err and rc == 0, err
    rc = daemon.main(["--backend", "sim:" + path, "--no-xapi", "--cycles", "1", "--period", "0.05"])
    err = capsys.readouterr().err
    assert "damaged" not in err and rc == 0, err
