"""The CLI's ``xapi-numa place --vm VM`` refuses a VM the plugin's place refuses for its state.

It held the VM as the plugin's place does (``start_placement.placing``) but skipped the place's
checks of the record read while holding it: the VM's power state, a start of it xapi has under way,
a template, a snapshot or another host's control domain (``start_placement.startable``), and a place
another host of the pool made (``start_placement.not_placed_elsewhere``).  So it reserved (exit 0)
for a VM running on another host, a template, or one whose reservation and pin another host holds,
all of which the plugin's place refuses.  It now makes the same checks through the same functions,
refused with the plugin's error and exit status for its code, changing nothing.  ``--no-xapi``
reads no record: those checks are not made (its help says so).
"""
import pytest

from test_plugin import err, ok, run
from test_review19_what_if_guest_mask import cli_env
from xapi_numa.cli import placing
from xapi_numa.cli.main import main
from xapi_numa.ops import start_placement
from xapi_numa.state.ledger import Ledger

G = 1 << 30
PLACE_ARGS = ["--vcpus", "2", "--memory", "1G"]


def _make(server, session, hosts, ref, how):
    """Put the VM (``ref``) in the state ``how`` names; returns the ref to place (dom0's for "dom0")."""
    if how == "running":
        session.xenapi.VM.start_on(ref, hosts[1], False, False)
    elif how in ("template", "snapshot"):
        server.vms[ref].update(is_a_template=True, is_a_snapshot=how == "snapshot")
    elif how == "starting":
        server.vms[ref]["current_operations"] = {"OpaqueRef:task": "start"}
    elif how == "placed_elsewhere":
        assert ok(run(server, hosts[1], session._session, "place", {"vm": server.vms[ref]["uuid"]}))["nodes"]
    elif how == "dom0":
        return server.control_domains[hosts[1]]
    return ref


def _state(server, host, ref):
    return ([r.to_dict() for r in Ledger(server.ledgers[host]).reservations()], dict(server.vms[ref]["other_config"]),
            dict(server.vms[ref]["VCPUs_params"]), server.vms[ref]["power_state"])


@pytest.mark.parametrize("how, code", [
    ("running", "NUMA_INVALID_ARGUMENT"), ("template", "NUMA_INVALID_ARGUMENT"),
    ("snapshot", "NUMA_INVALID_ARGUMENT"), ("dom0", "NUMA_INVALID_ARGUMENT"), ("starting", "NUMA_VM_BUSY"),
    ("placed_elsewhere", "NUMA_VM_BUSY")])
def test_the_cli_place_refuses_a_vm_the_plugins_place_refuses_changing_nothing(pool, monkeypatch, capsys, how, code):
    server, session = pool
    hosts = session.xenapi.host.get_all()
    ref = _make(server, session, hosts, server.add_vm("web", 2, G)[0], how)
    uuid = server.vms[ref]["uuid"]
    cli_env(server, hosts[0], monkeypatch)
    before = _state(server, hosts[0], ref)
    refused = err(run(server, hosts[0], session._session, "place", {"vm": uuid}))
    assert refused[0] == code, refused
    assert _state(server, hosts[0], ref) == before
    capsys.readouterr()
    # before: 0, reserved on host 0 (dom0 and a VM xapi builds: also its reservation held for nothing)
    assert main(["place", "--vm", uuid] + PLACE_ARGS) == (2 if code == "NUMA_INVALID_ARGUMENT" else 1), how
    said = capsys.readouterr().err
    detail = refused[-1].split(": ", 1)[1] if code == "NUMA_INVALID_ARGUMENT" else refused[-1]
    detail = detail.replace(start_placement.DRY_RUN_SAID, placing.DRY_RUN_SAID)  # (each says its own option)
    assert detail in said and "Traceback" not in said, (refused, said)
    assert _state(server, hosts[0], ref) == before
    # a dry run is answered as the plugin's is: for any VM but a control domain (before: dom0's too)
    dry = run(server, hosts[0], session._session, "place", {"vm": uuid, "dry_run": "true"})
    assert err(dry)[0] == code if how == "dom0" else ok(dry)["nodes"]
    assert main(["place", "--vm", uuid, "--dry-run"] + PLACE_ARGS) == (2 if how == "dom0" else 0), how
    assert _state(server, hosts[0], ref) == before
    # with --no-xapi no record is read: none of these is checked (the place lock alone is held)
    assert main(["place", "--vm", uuid, "--no-xapi"] + PLACE_ARGS) == 0
    assert uuid in [r.vm for r in Ledger(server.ledgers[hosts[0]]).reservations()]


def test_the_cli_place_of_a_halted_vm_placed_here_before_is_made(pool, monkeypatch, capsys):
    """A VM this host placed before (its pin names this host) is placed again, as the plugin's place."""
    server, session = pool
    hosts = session.xenapi.host.get_all()
    ref, uuid = server.add_vm("web", 2, G)
    cli_env(server, hosts[0], monkeypatch)
    assert ok(run(server, hosts[0], session._session, "place", {"vm": uuid}))["nodes"]
    assert main(["place", "--vm", uuid] + PLACE_ARGS) == 0
    assert [r.vm for r in Ledger(server.ledgers[hosts[0]]).reservations()] == [uuid]
