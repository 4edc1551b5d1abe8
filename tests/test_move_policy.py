"""A hand move of a strict VM's memory stays on its nodes (ops/move_policy.py), through the
plugin as xapi runs it and through the CLI (found by review: the VM ended up hard-pinned on
node 1 with all its memory on node 0, and nothing would ever bring either back)."""
import time

from xapi_numa.cli.main import main


def run(server, host, session, fn, args):
    from test_plugin import run as run_as_xapi

    return run_as_xapi(server, host, session, fn, args)


def test_a_strict_vms_memory_is_not_moved_off_its_nodes_by_hand(pool, monkeypatch, capsys):
    """plugins/numa move_memory (xapi_numa/plugin/functions.py move_memory_fn) takes a
    ``strict`` VM (numa_nodes=1, settled with hard affinity on node 1's CPUs) and moves its
    memory to node 0: the VM ends up with every vCPU hard-pinned on node 1 and its memory
    all on node 0 (local share 0), its soft affinity set to node 0 (disjoint from the hard
    one, so ignored by Xen), and the call answers "running" with no word of it.  The policy
    promised "memory and vCPUs only there"; nothing undoes it (the rebalancer and the
    fix-up leave strict VMs alone).  A move by hand off a strict VM's nodes should be
    refused, naming the policy (or the target checked against it), before anything moves."""
    server, session = pool
    host = session.xenapi.host.get_all()[0]
    sid = session._session
    ref, uuid = server.add_vm("strictvm", 2, 256 << 20, domain_type="pvh",
                              other_config={"numa_mode": "strict", "numa_nodes": "1"})
    assert run(server, host, sid, "place", {"vm": uuid})["Status"] == "Success"
    session.xenapi.VM.start_on(ref, host, False, False)
    assert run(server, host, sid, "settle", {"vm": uuid})["Status"] == "Success"
    sim, domid = server.sims[host], int(session.xenapi.VM.get_domid(ref))
    assert {v.hard for v in sim.vcpus(domid)} == {frozenset({4, 5, 6, 7})}
    before = sim.node_pages(domid)
    answer = run(server, host, sid, "move_memory", {"vm": uuid, "to": "0"})
    if answer["Status"] == "Success":  # let the background mover finish, then show the damage
        deadline = time.monotonic() + 120
        while run(server, host, sid, "memory_move_status", {"vm": uuid})["Value"].find('"running"') >= 0:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert answer["Status"] == "Failure", (answer, "pages per node now", sim.node_pages(domid),
                                           "hard", {v.hard for v in sim.vcpus(domid)})
    assert answer["ErrorDescription"][0] == "NUMA_NOT_MOVABLE" and "strict" in " ".join(answer["ErrorDescription"])
    assert sim.node_pages(domid) == before
    # the CLI in dom0 reads the policy from xapi as the plugin does
    for key, value in server.plugin_env(host).items():
        if key.startswith("XAPI_NUMA_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("XAPI_NUMA_POOL_PASSWORD", "xenroot")
    capsys.readouterr()
    assert main(["move-memory", str(domid), "--to", "0", "--dry-run"]) == 1
    assert "its policy is strict" in capsys.readouterr().err
    assert main(["move-memory", str(domid), "--to", "1", "--dry-run"]) == 0  # its own node: allowed
    # a preference is no promise: a preferred VM's memory moves where the admin says
    session.xenapi.VM.remove_from_other_config(ref, "numa_mode")
    session.xenapi.VM.add_to_other_config(ref, "numa_mode", "preferred")
    assert main(["move-memory", str(domid), "--to", "0", "--dry-run"]) == 0
