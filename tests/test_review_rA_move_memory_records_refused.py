"""Review: 6a8a27e says a dry run whose login xapi took but whose VMs' records it refused
says 'VM records refused: <reason>' (docs/xapi-numad.md: rebalance, homing --dry-run and move-memory).
move-memory --dry-run decides on link.reached (set by any call that returned, the guest
mask's read among them) and says "consulted" although the VM's policy it checks (a strict
VM is not moved off its nodes) was never read: the default policy was used."""
import json

import pytest

from test_review17_dry_run_login_refused import dry_run_host
from xapi_loopback import Failure
from xapi_numa.cli.main import main


@pytest.fixture
def records_refused(pool, tmp_path, monkeypatch):
    server, _ = pool
    dry_run_host(server, tmp_path, monkeypatch, "xenroot")

    def refused(session_id):
        raise Failure("HOST_IS_SLAVE", "192.0.2.1")
    server.VM_get_all_records = refused
    return server


@pytest.mark.parametrize("argv", [["rebalance", "--dry-run"],
                                  ["move-memory", "a", "--to", "1", "--dry-run"]], ids=lambda a: a[0])
def test_a_dry_run_whose_vm_records_xapi_refused_says_so(records_refused, capsys, argv):
    capsys.readouterr()
    assert main(argv + ["--json"]) == 0
    said = json.loads(capsys.readouterr().out)["xapi"]
    assert said.startswith("VM records refused: "), said
