"""One reading of the host's guest mask (``guest_VCPUs_params:mask``) everywhere, and the
CLI's ``place --vm`` bounded as the plugin's (review 21).

A host mask that cannot be read was refused by ``place`` but read as no mask by
xapi-numad, ``xapi-numa move-memory``, ``xapi-numa vnuma --apply`` and the plugin's
``homing`` and ``move_memory``: they put VMs on CPUs the admin kept from guests.  Each
command now refuses it in the same words (the field and the syntax), and xapi-numad
leaves every VM alone while it lasts (said once), still undoing its own pins.
``xapi-numa place --vm`` left out the VM's own ``VCPUs_params:mask``, which the
plugin's place for that VM keeps to."""
import json
import logging
import time

from test_plugin import err, ok, run
from test_review19_what_if_guest_mask import cli_env

from xapi_numa.cli.main import main
from xapi_numa.core.actions import PinTemporarily
from xapi_numa.core.homing import HOLD_MAX
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.ops.xapi_link import XapiLink, vm_view
from xapi_numa.state.db import Database

HOST_MASK = "host guest_VCPUs_params:mask"
UNREADABLE = "0,x"  # xapi-numa refuses it ('x' is no CPU number)


def refused_in_the_same_words(stderr: str) -> bool:
    return HOST_MASK in stderr and "is not a CPU number" in stderr and "allowed: comma-separated CPU numbers" in \
        stderr and "Traceback" not in stderr


def test_the_plugins_functions_refuse_an_unreadable_host_mask_in_the_same_words(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 256 << 20, domain_type="pvh")
    session.xenapi.VM.start_on(ref, host, False, False)
    sim, domid = server.sims[host], int(session.xenapi.VM.get_domid(ref))
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": UNREADABLE})
    before = sim.node_pages(domid)
    to = 1 - max(before, key=before.get)
    for fn, args in (("homing", {}), ("move_memory", {"vm": uuid, "to": str(to)}), ("vnuma_plan", {"vm": uuid}),
                     ("place", {"vm": uuid, "dry_run": "true"}), ("settle", {"vm": uuid})):
        details = err(run(server, host, sid, fn, args))
        assert details[:2] == ["NUMA_INVALID_ARGUMENT", HOST_MASK], (fn, details)
        assert "is not a CPU number" in details[2] and "allowed" in details[2], (fn, details)
    time.sleep(0.5)  # (a mover started would have moved something by now)
    assert sim.node_pages(domid) == before


def test_the_cli_refuses_an_unreadable_host_mask_in_the_same_words_and_changes_nothing(pool, monkeypatch, capsys):
    server, session = pool
    host = session.xenapi.host.get_all()[0]
    cli_env(server, host, monkeypatch)
    hv = server.sims[host]  # 2 nodes x 4 CPUs
    running = hv.create("running", 2, 256 << 20, soft=hv.topology().cpus_of_nodes([0]), dtype="pvh", load="idle")
    built = hv.create("built", 2, 512 << 20, dtype="pvh", paused=True, load="idle")
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": UNREADABLE})
    pages, layout = hv.node_pages(running), hv.vnuma(built)
    capsys.readouterr()
    assert main(["move-memory", str(running), "--to", "1"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and refused_in_the_same_words(out.err), out
    assert main(["vnuma", "built", "--vcpus", "2", "--memory", "512M", "--type", "pvh", "--nodes", "1",
                 "--apply"]) == 2
    out = capsys.readouterr()
    assert refused_in_the_same_words(out.err), out
    for dry_run in (["homing", "--dry-run"], ["rebalance", "--dry-run", "--samples", "1"]):
        assert main(dry_run) == 2, dry_run
        out = capsys.readouterr()
        assert refused_in_the_same_words(out.err), (dry_run, out)
    assert hv.node_pages(running) == pages and hv.vnuma(built) == layout
    assert main(["move-memory", str(running), "--to", "1", "--no-xapi", "--dry-run"]) == 0  # xapi not asked: no mask


def test_xapi_numad_leaves_every_vm_alone_while_the_host_mask_cannot_be_read(pool, tmp_path, caplog, monkeypatch):
    """It read the mask as none: its fix-up pointed a VM's soft affinity at CPUs the mask
    keeps from guests.  Now it leaves the VM alone, says why once (and when the mask can
    be read again), and still undoes a temporary pin of its own."""
    server, session = pool
    host = session.xenapi.host.get_all()[0]
    monkeypatch.setenv("XAPI_NUMA_INVENTORY", server.inventories[host])  # xapi-numad's host
    sim = server.sims[host]
    n0, n1 = sim.topology().cpus_of_nodes([0]), sim.topology().cpus_of_nodes([1])
    _, uuid = server.add_vm("g", 2, 512 << 20, domain_type="pvh")
    domid = sim.create("g", 2, 512 << 20, uuid=uuid, soft=n0, dtype="pvh", load="idle")
    for v in range(2):  # its memory on node 0, its soft affinity node 1: the fix-up's case
        sim.set_vcpu_affinity(domid, v, soft=n1)
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": UNREADABLE})
    now = [0.0]
    link = XapiLink(lambda: session, lambda: now[0])
    rt = Runtime(sim, Database(str(tmp_path / "l.db")), Settings(fixup_every=2, pin_timeout=0.5, rebalancing=True),
                 **vm_view(link))
    hard = sim.vcpus(domid)[0].hard
    rt.executor.apply([PinTemporarily(domid, uuid, 0, n1, hard, "a pin of ours")])
    sim.run(HOLD_MAX + 1.0)  # held no longer (credit2), home or not
    with caplog.at_level(logging.INFO, logger="xapi-numad"):
        for _ in range(3):
            rt.cycle()
            sim.run(1.0)
            now[0] += 31.0  # the mask read again at each cycle
    assert all(v.soft == n1 for v in sim.vcpus(domid)), sim.vcpus(domid)  # left alone
    assert rt.pins.entries() == [] and sim.vcpus(domid)[0].hard == hard  # our pin undone all the same
    said = [r for r in caplog.records if "guest mask" in r.getMessage()]
    assert len(said) == 1 and HOST_MASK in said[0].fields["error"], [r.getMessage() for r in said]
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "0,1,2,3,4,5,6"})  # readable: CPU 7 kept from guests
    with caplog.at_level(logging.INFO, logger="xapi-numad"):
        for _ in range(2):
            rt.cycle()
            sim.run(1.0)
            now[0] += 31.0
    assert all(v.soft == frozenset({0, 1, 2, 3}) for v in sim.vcpus(domid)), sim.vcpus(domid)  # followed its memory
    said = [r.getMessage() for r in caplog.records if "guest mask" in r.getMessage()]
    assert len(said) == 2 and "can be read again" in said[1], said


def test_the_cli_place_for_a_vm_keeps_to_its_own_mask_as_the_plugins_place(pool, monkeypatch, capsys):
    server, session = pool
    host = session.xenapi.host.get_all()[0]
    sid = session._session
    cli_env(server, host, monkeypatch)
    ref, uuid = server.add_vm("masked", 2, 1 << 30, domain_type="pvh")
    session.xenapi.VM.add_to_VCPUs_params(ref, "mask", "0;1")  # node 0's CPUs 0 and 1, one per vCPU
    plugin = ok(run(server, host, sid, "place", {"vm": uuid, "dry_run": "true"}))
    capsys.readouterr()
    assert main(["place", "--vm", uuid, "--vcpus", "2", "--memory", "1G", "--type", "pvh", "--dry-run",
                 "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert plugin["nodes"] == cli["nodes"] == [0], (plugin, cli)  # unmasked, it goes to node 1 (dom0 is on 0)
    assert (plugin["soft"], plugin["hard"]) == (cli["soft"], cli["hard"]) == ("0-1", None), (plugin, cli)
    assert cli["xapi"] == "consulted"
    # a VM xapi does not know is refused, as the plugin refuses it
    assert main(["place", "--vm", "12345678-0000-4000-8000-000000000000", "--vcpus", "1", "--memory", "1G",
                 "--dry-run"]) != 0
    out = capsys.readouterr()
    assert "12345678-0000-4000-8000-000000000000" in out.err and "Traceback" not in out.err, out
    assert main(["place", "--vm", uuid, "--vcpus", "2", "--memory", "1G", "--dry-run", "--no-xapi", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nodes"] == [1]  # xapi not asked: no mask read
