"""End to end through the XenAPI SDK and the CLI against a loopback pool of 3 simulated hosts."""
import json
import os
import subprocess
import sys
import types


from xapi_numa.state.ledger import Ledger

G = 1 << 30
M = 1 << 20
XAPI_NUMA = os.path.join(os.path.dirname(sys.executable), "xapi-numa")


def fill(server, host_index: int, node: int, size: int) -> None:
    """Take memory on one node of one host (a guest pinned there)."""
    host = list(server.hosts)[host_index]
    sim = server.sims[host]
    topo = sim.topology()
    sim.create(f"filler-{host_index}-{node}", 1, size, hard=topo.cpus_of_nodes([node]), load="idle",
               auto_numa=False)


def cli(server, tmp_path, *argv):
    secret = tmp_path / "password"
    if not secret.exists():
        secret.write_text("xenroot\n")
        secret.chmod(0o600)
    return subprocess.Popen([XAPI_NUMA, "--insecure", "--pool", server.url, "--user", "root", "--password-file", str(secret),
                             *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def nodes_with_memory(server, host, domid):
    pages = server.sims[host].node_pages(domid)
    return sorted(n for n, p in pages.items() if p)


def test_16_concurrent_vm_starts_land_on_single_nodes(pool, tmp_path):
    server, session = pool
    # different free memory per node on each host (each node has about 3.6G after dom0)
    fill(server, 0, 0, 2 * G)
    fill(server, 1, 1, 1 * G)
    fill(server, 2, 0, 3 * G)
    vms = [server.add_vm(f"vm{i:02d}", 2, 512 * M) for i in range(16)]
    procs = [cli(server, tmp_path, "vm-start", uuid, "--json") for _, uuid in vms]
    results = [finish(p) for p in procs]
    for code, out, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    hosts_used = set()
    for (ref, uuid), (_, out, _) in zip(vms, results):
        report = json.loads(out)
        record = session.xenapi.VM.get_record(ref)
        assert record["power_state"] == "Running"
        host, domid = record["resident_on"], int(record["domid"])
        hosts_used.add(host)
        landed = nodes_with_memory(server, host, domid)
        assert len(landed) == 1, f"{record['name_label']} spread over {landed}"
        assert landed == report["placement"]["nodes"] == report["settled"]["memory_nodes"]
        # after settle: soft affinity is the node holding the memory; the boot pin is gone
        topo = server.sims[host].topology()
        assert {v.soft for v in server.sims[host].vcpus(domid)} == {topo.cpus_of_nodes(landed)}
        assert "mask" not in record["VCPUs_params"]
        assert not {"numa_saved_mask", "numa_placed_nodes", "numa_placed_host"} & set(record["other_config"])
    assert len(hosts_used) >= 2  # spread over the pool, not piled on one host
    for host, path in server.ledgers.items():
        assert Ledger(path).reservations() == []  # no reservation left
        for m in server.sims[host].node_memory():
            assert m.free >= 0


def test_ordered_fallback_and_no_capacity(pool, tmp_path):
    server, session = pool
    for i in range(3):
        fill(server, i, 1, 3968 * M)  # node 1 of every host is full (4G less dom0's share)
    ref, uuid = server.add_vm("prefers-1", 2, G, other_config={"numa_mode": "preferred", "numa_nodes": "1,0"})
    code, out, err = finish(cli(server, tmp_path, "vm-start", uuid, "--json"))
    assert code == 0, err
    report = json.loads(out)
    assert report["placement"]["fallback"] is True and report["settled"]["nodes"] == [0]
    ref2, uuid2 = server.add_vm("strict-1", 2, G, other_config={"numa_mode": "strict", "numa_nodes": "1",
                                                                "numa_on_exhaust": "fail"})
    code, out, err = finish(cli(server, tmp_path, "vm-start", uuid2))
    assert code == 1 and "no host can take the VM" in err and "node 1 has" in err
    assert "Traceback" not in err and out == ""
    assert session.xenapi.VM.get_power_state(ref2) == "Halted"
    assert session.xenapi.VM.get_VCPUs_params(ref2) == {}
    assert all(Ledger(p).reservations() == [] for p in server.ledgers.values())


def test_vm_placement_and_pool_queries(pool, tmp_path):
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G)
    code, out, err = finish(cli(server, tmp_path, "vm-placement", "web", "--json"))
    assert code == 0, err
    assert len(json.loads(out)["options"]) == 3
    assert finish(cli(server, tmp_path, "vm-start", "web"))[0] == 0
    code, out, err = finish(cli(server, tmp_path, "vm-placement", uuid, "--json"))
    placed = json.loads(out)
    assert placed["state"] == "Running" and placed["memory"]["local_share"] == 1.0
    code, out, err = finish(cli(server, tmp_path, "topology", "--json"))
    answers = json.loads(out)  # keyed by host UUID, the name inside
    assert code == 0 and sorted(answers) == sorted(h["uuid"] for h in server.hosts.values())
    assert sorted(a["name_label"] for a in answers.values()) == ["host0", "host1", "host2"]
    code, out, err = finish(cli(server, tmp_path, "vcpus", "web", "--json"))
    assert code == 0 and len(json.loads(out)) == 2
    # a VM named as on one host: its UUID (any case) or its domid with leading zeros; a typo is said so
    domid = session.xenapi.VM.get_domid(ref)
    for name in (uuid.upper(), "0" + domid):
        code, out, err = finish(cli(server, tmp_path, "vcpus", name, "--json"))
        assert code == 0 and uuid in {r["uuid"] for r in json.loads(out)}, (name, err)
    code, out, err = finish(cli(server, tmp_path, "vcpus", "nosuch"))
    assert code == 1 and "no such VM or domain: nosuch" in err
    code, out, err = finish(cli(server, tmp_path, "vcpus", "0"))  # every host's dom0, each on its own row
    assert code == 0 and out.splitlines()[0].split()[0] == "host" and {"host0", "host1", "host2"} <= set(out.split())


def test_vm_placement_of_a_running_vm_with_a_bad_stored_policy_still_shows_where_it_is(pool, tmp_path):
    """A policy hand-edited into other_config does not hide the VM: where its memory and
    vCPUs are is answered, and the policy is reported invalid, naming the key to fix."""
    server, session = pool
    ref, uuid = server.add_vm("typo", 2, G)
    session.xenapi.VM.start_on(ref, session.xenapi.host.get_all()[1], False, False)
    for key, value in [("numa_mode", "loose"), ("numa_nodes", "0,0"), ("numa_on_exhaust", "never")]:
        session.xenapi.VM.add_to_other_config(ref, key, value)
        code, out, err = finish(cli(server, tmp_path, "vm-placement", uuid, "--json"))
        assert code == 0, (key, err)
        placed = json.loads(out)
        assert placed["state"] == "Running" and placed["host"] == "host1" and placed["memory"]["total"] == G
        assert len(placed["vcpus"]) == 2
        assert placed["policy"] is None and f"other_config:{key}" in placed["policy_error"], placed
        code, out, err = finish(cli(server, tmp_path, "vm-placement", uuid))  # as text, for people
        assert code == 0 and "policy INVALID (other_config:{}".format(key) in out and "host1" in out, (out, err)
        session.xenapi.VM.remove_from_other_config(ref, key)
    code, out, err = finish(cli(server, tmp_path, "vm-placement", uuid, "--json"))
    placed = json.loads(out)
    assert code == 0 and placed["policy"]["mode"] == "best_effort" and placed["policy_error"] is None


def test_bad_credentials_are_one_clear_line(pool, tmp_path):
    server, _ = pool
    secret = tmp_path / "wrong"
    secret.write_text("nope\n")
    secret.chmod(0o600)
    proc = subprocess.run([XAPI_NUMA, "--insecure", "--pool", server.url, "--user", "root", "--password-file", str(secret),
                           "topology"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "SESSION_AUTHENTICATION_FAILED" in proc.stderr
    secret.chmod(0o644)
    proc = subprocess.run([XAPI_NUMA, "--insecure", "--pool", server.url, "--user", "root", "--password-file", str(secret),
                           "topology"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "readable by others" in proc.stderr


def test_a_host_without_the_plugin_or_where_the_vm_cannot_boot_is_passed_over(pool, tmp_path):
    """Mid-rollout one host has no numa plugin; a VM's local disk is on another host:
    both are passed over with their reasons, and the pool's start and queries go on."""
    server, session = pool
    hosts = list(server.hosts)
    server.without_plugin.add(hosts[0])
    ref, uuid = server.add_vm("local-disk", 2, G)
    server.boot_refusals[(ref, hosts[1])] = ["VM_REQUIRES_SR", ref, "OpaqueRef:local-sr-of-host2"]
    code, out, err = finish(cli(server, tmp_path, "vm-start", uuid, "--json"))
    assert code == 0, err
    assert json.loads(out)["host"] == "host2"
    code, out, err = finish(cli(server, tmp_path, "topology", "--json"))
    report = json.loads(out)
    assert code == 0 and report[server.hosts[hosts[0]]["uuid"]] == {"name_label": "host0",
                                                                     "error": ["XENAPI_MISSING_PLUGIN", "numa"]}
    assert "nodes" in report[server.hosts[hosts[1]]["uuid"]]["answer"]
    code, out, err = finish(cli(server, tmp_path, "vcpus", "--json"))
    assert code == 0 and "host0 did not answer" in err and {r["host"] for r in json.loads(out)} == {"host1", "host2"}
    # a halted VM's candidates name the host that did not answer (it was left out unsaid)
    ref3, uuid3 = server.add_vm("anywhere", 1, G)
    code, out, err = finish(cli(server, tmp_path, "vm-placement", uuid3, "--json"))
    assert code == 0 and json.loads(out)["left_out"] == ["host0: XENAPI_MISSING_PLUGIN numa"]
    code, out, err = finish(cli(server, tmp_path, "vm-placement", uuid3))
    assert "not a candidate: host0: XENAPI_MISSING_PLUGIN numa" in out
    # a domain asked for by name, on no host that answered: the silent host is named
    code, out, err = finish(cli(server, tmp_path, "vcpus", "no-such-vm"))
    assert code == 1 and "on the hosts that answered; host0 did not answer" in err
    # no host answering at all is a failure, not an empty answer
    server.without_plugin.update(hosts)
    for query in ("vcpus", "topology"):
        code, out, err = finish(cli(server, tmp_path, query, "--json"))
        assert code == 1, query
    server.without_plugin.difference_update(hosts[1:])
    ref2, uuid2 = server.add_vm("nowhere", 1, G)
    for host in hosts[1:]:
        server.boot_refusals[(ref2, host)] = ["VM_REQUIRES_NETWORK", ref2, "OpaqueRef:net"]
    code, out, err = finish(cli(server, tmp_path, "vm-start", uuid2))
    assert code == 1 and "NUMA_NO_HOST" not in err and "no host can take the VM" in err
    assert "host0: XENAPI_MISSING_PLUGIN" in err and "host1: VM_REQUIRES_NETWORK" in err
    assert session.xenapi.VM.get_power_state(ref2) == "Halted"


def test_a_start_xapi_refuses_on_the_best_host_goes_to_the_next(pool, tmp_path, monkeypatch):
    server, session = pool
    ref, uuid = server.add_vm("web", 2, G)
    from xapi_loopback import Failure
    refused = []
    real_start_on = server.VM_start_on

    def start_on(self, session_id, vm, host, paused, force):
        if not refused:  # the first host chosen refuses, as for a network it lacks
            refused.append(host)
            raise Failure("VM_REQUIRES_NETWORK", vm, "OpaqueRef:net")
        return real_start_on(session_id, vm, host, paused, force)
    monkeypatch.setattr(server, "VM_start_on", types.MethodType(start_on, server))
    code, out, err = finish(cli(server, tmp_path, "vm-start", uuid, "--json"))
    assert code == 0, err
    report = json.loads(out)
    chosen = next(h for h, rec in server.hosts.items() if rec["name_label"] == report["host"])
    assert chosen != refused[0] and report["attempts"] == 2
    assert Ledger(server.ledgers[refused[0]]).reservations() == []


def test_a_host_that_lacks_a_node_or_cpu_the_vm_names_is_passed_over(tmp_path):
    """Hosts differ: a policy naming node 3, or an admin mask naming CPUs 8-11, fits only
    the 4-node host; the 2-node host's refusal is about itself, so the start goes on."""
    import XenAPI
    from conftest import PLUGIN_DIR
    from xapi_loopback import LoopbackXapi
    from xapi_numa.core.topology import Topology

    d4 = [[10, 16, 16, 22], [16, 10, 22, 16], [16, 22, 10, 16], [22, 16, 16, 10]]
    server = LoopbackXapi(str(tmp_path), [("small", Topology.uniform(2, 4, 4 * G, [[10, 21], [21, 10]])),
                                          ("big", Topology.uniform(4, 4, 4 * G, d4))], PLUGIN_DIR)
    server.start()
    try:
        session = XenAPI.Session(server.url)
        session.xenapi.login_with_password("root", "xenroot", "2.21", "tests")
        server.add_vm("wants-node3", 2, G, other_config={"numa_mode": "preferred", "numa_nodes": "3"})
        server.add_vm("mask-8-11", 2, G, vcpus_params={"mask": "8,9,10,11"})
        for name in ("wants-node3", "mask-8-11"):
            code, out, err = finish(cli(server, tmp_path, "vm-start", name, "--json"))
            assert code == 0, err
            assert json.loads(out)["host"] == "big"
        server.add_vm("bad-policy", 2, G, other_config={"numa_mode": "sideways"})
        code, out, err = finish(cli(server, tmp_path, "vm-start", "bad-policy"))
        assert code != 0 and "other_config:numa_mode" in err  # the VM's own fault: said as such
    finally:
        server.stop()


def test_a_hosts_refusal_is_shown_as_its_message_and_a_bad_argument_exits_2(pool, tmp_path):
    """The plugin's failures were printed raw: the field twice, then the raw parameters,
    and exit 1 where the same mistake made here exits 2; a bad stored node was named
    'nodes', not the other_config key the admin must fix."""
    server, session = pool
    secret = tmp_path / "secret"
    secret.write_text("xenroot\n")
    secret.chmod(0o600)
    ref, uuid = server.add_vm("typo", 2, G, other_config={"numa_mode": "strict", "numa_nodes": "5"})
    proc = subprocess.run([XAPI_NUMA, "--insecure", "--pool", server.url, "--user", "root", "--password-file",
                           str(secret), "vm-start", uuid], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("xapi-numa: error: other_config:numa_nodes: node 5 does not exist on this host, "
                                   "stored in VM {} (allowed: nodes 0..1)".format(uuid))
