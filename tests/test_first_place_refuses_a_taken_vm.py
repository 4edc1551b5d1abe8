"""The first place of a VM on a host (no state database yet), the plugin's or the CLI's ``place
--vm``, refuses a VM another host placed as every later place does, and makes no database for it.

``start_placement.check_place``, run where there is no database yet so that a refusal makes none,
left out the place's ``not_placed_elsewhere`` (another live host of the pool holds the VM's
reservation and pin).  So a VM placed elsewhere that fits here passed the check, and the place then
made the database before refusing it (NUMA_VM_BUSY); one that does not fit here was refused
NUMA_NO_CAPACITY, where the same place on a host with a database says NUMA_VM_BUSY.  The CLI's
first place checked the room alone, and left out the start-hold rule too: the same two outcomes.
"""
import os
import time

import pytest

from test_plugin import err, ok, run
from test_review19_what_if_guest_mask import cli_env
from test_review26_refusals_make_no_database import made_there
from xapi_numa.cli.main import main
from xapi_numa.ops import start_hold, start_placement
from xapi_numa.state.ledger import Ledger

G = 1 << 30
STRICT_ON_NODE_0 = {"numa_mode": "strict", "numa_nodes": "0", "numa_on_exhaust": "fail"}


@pytest.mark.parametrize("fits", [True, False])
@pytest.mark.parametrize("database", [False, True])
def test_a_vm_placed_by_another_host_is_refused_alike_with_a_database_or_none(ctx, fits, database):
    server, session, host, sid = ctx
    other = session.xenapi.host.get_all()[1]
    other_uuid = session.xenapi.host.get_uuid(other)
    ref, uuid = server.add_vm("vm", 2, 5 * G)  # over both nodes of a host (4G each)
    ok(run(server, other, sid, "place", {"vm": uuid}))
    if not fits:  # its policy now wants node 0 alone: no room for it here
        server.vms[ref]["other_config"].update(STRICT_ON_NODE_0)
    if database:
        Ledger(server.ledgers[host])
    assert os.path.exists(server.ledgers[host]) is database
    before = (session.xenapi.VM.get_VCPUs_params(ref), session.xenapi.VM.get_other_config(ref))
    details = err(run(server, host, sid, "place", {"vm": uuid}))
    assert details[0] == "NUMA_VM_BUSY" and details[2:] == ["vm", uuid, other_uuid], details  # before: NO_CAPACITY
    assert os.path.exists(server.ledgers[host]) is database  # before: made for the refusal
    assert (session.xenapi.VM.get_VCPUs_params(ref), session.xenapi.VM.get_other_config(ref)) == before


def test_check_place_refuses_what_the_place_refuses(ctx, tmp_path):
    server, session, host, _ = ctx
    other = session.xenapi.host.get_all()[1]
    ref, uuid = server.add_vm("vm", 2, G)
    start_placement.place_vm(server.sims[other], Ledger(str(tmp_path / "other")), session, uuid,
                             host_uuid=session.xenapi.host.get_uuid(other))
    here, ledger = session.xenapi.host.get_uuid(host), Ledger(str(tmp_path / "here"))
    for step in (start_placement.check_place, start_placement.place_vm):
        with pytest.raises(Exception) as refused:
            step(server.sims[host], ledger, session, uuid, host_uuid=here)
        assert getattr(refused.value, "code", None) == "NUMA_VM_BUSY", (step, refused.value)
    assert ledger.reservations() == []


@pytest.mark.parametrize("fits", [True, False])
@pytest.mark.parametrize("taken", ["placed_elsewhere", "start_hold"])
def test_the_clis_first_place_refuses_a_taken_vm_as_a_later_one_making_no_database(pool, monkeypatch, capsys,
                                                                                   taken, fits):
    server, session = pool
    here, other = session.xenapi.host.get_all()[:2]
    ref, uuid = server.add_vm("vm", 2, 5 * G)
    if taken == "placed_elsewhere":
        ok(run(server, other, session._session, "place", {"vm": uuid}))
    else:
        session.xenapi.VM.add_to_other_config(ref, start_hold.START_KEY, start_hold.start_token(time.time(), 300, uuid))
    cli_env(server, here, monkeypatch)
    before = (dict(server.vms[ref]["other_config"]), dict(server.vms[ref]["VCPUs_params"]))
    place = ["place", "--vm", uuid, "--vcpus", "2", "--memory", "5G"] + \
        ([] if fits else ["--mode", "strict", "--nodes", "0", "--on-exhaust", "fail"])
    said = []
    for database in (False, True):  # the first place here, then one on a host with a database
        assert made_there(server.ledgers[here]) == [] if not database else made_there(server.ledgers[here])
        capsys.readouterr()
        assert main(place) == 1
        said.append(capsys.readouterr().err)
        assert "Traceback" not in said[-1]
        assert (dict(server.vms[ref]["other_config"]), dict(server.vms[ref]["VCPUs_params"])) == before
        if not database:
            assert made_there(server.ledgers[here]) == [], said  # before: made for a VM placed elsewhere
            Ledger(server.ledgers[here])
    refusal = "is placed by host" if taken == "placed_elsewhere" else "is being started by a pool vm-start"
    assert all(refusal in one and "needs" not in one for one in said), said  # before: no room first (NO_CAPACITY)
