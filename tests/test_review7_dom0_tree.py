"""Review 7: ``sim init --force`` removing the replaced host's dom0 tree (ef2b554).

1. Through a symlinked state path.  ``forget_dom0_tree(store.path)`` (backends/sim/backend.py
   init) is given the *resolved* path (SimStore takes os.path.realpath), so it looks at
   REAL.json.dom0; but the tree is kept beside the path as given: ``dom0_for`` in
   ops/backend_alignment.py opens ``SimDom0(hv, sim_path(spec))``, LINK.json.dom0.  So
   ``sim init LINK --force`` with another dom0 vCPU count leaves the old tree, and every use of
   dom0 fails exactly as in review 6 ("simulated dom0 LINK.json.dom0/sim-backend.json is
   damaged: dom0.threads[1].allowed must be a CPU list of dom0's vCPUs 0..1 such as 0-1, not
   '0-7'"), exit 1.  (The ledger is kept beside the resolved path: cli/common.py ledger_path.)

2. A tree that cannot be removed (an immutable file, a read-only mount, another owner):
   ``shutil.rmtree`` raises and ``sim init --force`` ends in "xapi-numa: internal error:
   PermissionError: [Errno 1] Operation not permitted: 'stat'", exit 70, not naming the
   tree, after the new host was already written and the old ledger removed.
"""
import os
import shutil
import subprocess

import pytest

from xapi_numa.cli.main import main

INIT = ["--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "1G"]


def test_a_host_made_again_through_a_symlink_uses_its_dom0(tmp_path, capsys):
    real, link = str(tmp_path / "real.json"), str(tmp_path / "host.json")
    assert main(["sim", "init", real] + INIT + ["--dom0-vcpus", "8"]) == 0
    os.symlink(real, link)
    assert main(["sim", "create", link, "g1", "--vcpus", "2", "--memory", "64M", "--type", "hvm"]) == 0
    assert main(["--backend", "sim:" + link, "backends"]) == 0  # makes the dom0 tree
    assert main(["sim", "init", link, "--force"] + INIT + ["--dom0-vcpus", "2"]) == 0
    capsys.readouterr()
    rc = main(["--backend", "sim:" + link, "backends"])
    err = capsys.readouterr().err
    assert "damaged" not in err and rc == 0, err


def _immutable(path, on):
    return subprocess.call(["chattr", "+i" if on else "-i", path],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def test_a_dom0_tree_that_cannot_be_removed_is_a_clear_error(tmp_path, capsys):
    path = str(tmp_path / "h.json")
    assert main(["sim", "init", path] + INIT + ["--dom0-vcpus", "4"]) == 0
    assert main(["--backend", "sim:" + path, "backends"]) == 0  # makes PATH.dom0
    stuck = os.path.join(path + ".dom0", "proc", "1", "stat")
    if os.geteuid() != 0 or shutil.which("chattr") is None or not _immutable(stuck, True):
        pytest.skip("needs root and chattr +i to make a file rmtree cannot remove")
    try:
        capsys.readouterr()
        rc = main(["sim", "init", path, "--force"] + INIT + ["--dom0-vcpus", "2"])
        err = capsys.readouterr().err
    finally:
        _immutable(stuck, False)
    assert "internal error" not in err and rc == 1, (rc, err)
    assert path + ".dom0" in err, err  # names what could not be removed
