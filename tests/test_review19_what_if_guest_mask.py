"""The plugin's what-if ``place`` (vcpus=, memory=; no vm) ignored the host's guest mask
(``guest_VCPUs_params:mask``, the CPUs guests may use there) that a VM's ``place``, dry run
or not, keeps to (review 19): with the mask on node 0's CPUs a what-if said node 1, soft
4-7, where the VM's dry run said node 0, soft 0-3.  Both now read and apply it the same
way: the same nodes and masks, the same refusals (a mask that leaves no room, or no CPU,
or that cannot be read), and nothing reserved.  ``xapi-numa place`` reads it from this
host's xapi as the other local commands do (not with ``--no-xapi``), and says so."""
import json

import pytest
from test_plugin import err, ok, run

from xapi_numa.cli.main import main
from xapi_numa.core.cpuset import parse_ids

HOST_MASK = "host guest_VCPUs_params:mask"
NODE0 = frozenset({0, 1, 2, 3})  # unmasked, a small VM goes to node 1 (dom0 is on node 0)


def nothing_reserved(server, host, sid) -> bool:
    return all(n["memory_reserved"] == 0 for n in ok(run(server, host, sid, "host_topology", {}))["nodes"])


def what_if_and_dry_run(server, host, sid, vcpus: int, memory: int, mode: str = "best_effort"):
    """The plugin's answers (or refusals) for a what-if and for a VM of that size's dry run."""
    _, uuid = server.add_vm("vm-{}".format(mode), vcpus, memory, domain_type="pvh",
                            other_config={"numa_mode": mode})
    what_if = run(server, host, sid, "place", {"vcpus": str(vcpus), "memory": "{}M".format(memory >> 20),
                                               "mode": mode})
    return what_if, run(server, host, sid, "place", {"vm": uuid, "dry_run": "true"})


@pytest.mark.parametrize("mode", ["best_effort", "strict"])
def test_a_what_if_keeps_to_the_hosts_guest_mask_as_a_vms_dry_run_does(ctx, mode):
    server, session, host, sid = ctx
    assert ok(run(server, host, sid, "place", {"vcpus": "2", "memory": "1G", "mode": mode}))["nodes"] == [1]
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "0,1,2,3"})  # node 0's CPUs
    what_if, dry_run = (ok(r) for r in what_if_and_dry_run(server, host, sid, 2, 1 << 30, mode))
    assert what_if["nodes"] == dry_run["nodes"] == [0], (what_if, dry_run)
    for field in ("soft", "hard"):
        assert what_if[field] == dry_run[field], field
        assert what_if[field] is None or parse_ids(what_if[field]) <= NODE0, (field, what_if)
    assert what_if["soft" if mode == "best_effort" else "hard"] == "0-3", what_if
    assert what_if["reserved"] is False and what_if["vm"] is None and nothing_reserved(server, host, sid)


def test_a_what_if_inside_part_of_a_node_goes_where_a_vms_dry_run_goes(ctx):
    server, session, host, sid = ctx
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "1,2"})
    what_if, dry_run = (ok(r) for r in what_if_and_dry_run(server, host, sid, 2, 1 << 30))
    assert what_if["nodes"] == dry_run["nodes"] == [0], (what_if, dry_run)
    assert (what_if["soft"], what_if["hard"]) == (dry_run["soft"], dry_run["hard"])


@pytest.mark.parametrize("mask, code, said", [
    # node 0 alone is too small for 4 GiB and more; the mask named is the host's (it said "the CPU mask's")
    ("0,1,2,3", "NUMA_NO_CAPACITY", "nodes 0 (those the host's guest mask (guest_VCPUs_params:mask) reaches) have"),
    ("64,65", "NUMA_INVALID_ARGUMENT", "leaves this VM no CPU"),  # no CPU of this host
    ("0,x", "NUMA_INVALID_ARGUMENT", "is not a CPU number"),  # a mask that cannot be read
])
def test_a_what_if_is_refused_where_a_vms_place_is(ctx, mask, code, said):
    server, session, host, sid = ctx
    assert len(ok(run(server, host, sid, "place", {"vcpus": "2", "memory": "4G"}))["nodes"]) == 2  # fits unmasked
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": mask})
    what_if, dry_run = (err(r) for r in what_if_and_dry_run(server, host, sid, 2, 4 << 30))
    assert what_if[0] == dry_run[0] == code, (what_if, dry_run)
    assert said in " ".join(what_if), what_if
    if code == "NUMA_INVALID_ARGUMENT":
        assert what_if[1] == dry_run[1] == HOST_MASK, (what_if, dry_run)
        assert "allowed" in what_if[2], what_if
    assert nothing_reserved(server, host, sid)


def test_a_mask_xapi_reads_as_none_bounds_neither(ctx):
    """xapi reads a host mask with a ';' as nothing: neither place keeps to it."""
    server, session, host, sid = ctx
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "0,1;2,3"})
    what_if, dry_run = (ok(r) for r in what_if_and_dry_run(server, host, sid, 2, 1 << 30))
    assert what_if["nodes"] == dry_run["nodes"] == [1], (what_if, dry_run)


def test_a_binding_node_list_the_guest_mask_keeps_out_is_refused_naming_the_host_mask(ctx):
    """strict nodes=1 with guests kept to node 0: refused, naming the host's mask (it named
    the VM's own VCPUs_params:mask, which the VM does not have) and the list to change."""
    server, session, host, sid = ctx
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "0,1,2,3"})
    details = err(run(server, host, sid, "place", {"vcpus": "2", "memory": "1G", "mode": "strict", "nodes": "1"}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", HOST_MASK] and "allowed" in details[2], details
    assert "none of the policy's nodes 1" in details[2] and "a node of nodes" in details[2], details
    ref, uuid = server.add_vm("strict", 2, 1 << 30, other_config={"numa_mode": "strict", "numa_nodes": "1"})
    for dry_run in ("true", "false"):
        details = err(run(server, host, sid, "place", {"vm": uuid, "dry_run": dry_run}))
        assert details[:2] == ["NUMA_INVALID_ARGUMENT", HOST_MASK], details
        assert "a node of other_config:numa_nodes" in details[2], details
    assert session.xenapi.VM.get_VCPUs_params(ref) == {} and nothing_reserved(server, host, sid)


def cli_env(server, host, monkeypatch) -> None:
    """The CLI on this host: its simulator, state database and xapi, as the plugin has them."""
    for key, value in server.plugin_env(host).items():
        if key.startswith("XAPI_NUMA_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("XAPI_NUMA_POOL_PASSWORD", "xenroot")


def test_the_cli_place_keeps_to_the_hosts_guest_mask_read_from_its_xapi(ctx, monkeypatch, capsys):
    """``xapi-numa place`` reserves on this host for real: it read no xapi and put a VM on
    nodes its vCPUs could not use.  It reads the mask as move-memory does (--no-xapi: not)."""
    server, session, host, sid = ctx
    cli_env(server, host, monkeypatch)
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "0,1,2,3"})
    place = ["place", "--vcpus", "2", "--memory", "1G", "--json"]
    capsys.readouterr()
    assert main(place + ["--dry-run", "--no-xapi"]) == 0
    unbounded = json.loads(capsys.readouterr().out)
    assert unbounded["nodes"] == [1] and unbounded["xapi"].startswith("not consulted"), unbounded
    assert main(place + ["--dry-run"]) == 0
    what_if = json.loads(capsys.readouterr().out)
    assert what_if["nodes"] == [0] and what_if["soft"] == "0-3" and what_if["xapi"] == "consulted", what_if
    assert main(place) == 0
    placed = json.loads(capsys.readouterr().out)
    # the RAM on node 0; node 1, outside the mask, only the half of the build's overhead Xen takes there
    # before the vCPUs' affinity is set (xenopsd's build_pre)
    held = {int(n): b for n, b in placed["reservation"]["nodes"].items()}
    assert placed["reserved"] and set(held) == {0, 1} and held[0] >= 1 << 30 > 64 * held[1] > 0, placed
    assert main(["place", "--vcpus", "2", "--memory", "1G", "--dry-run"]) == 0  # text: no xapi line when consulted
    assert capsys.readouterr().out.startswith("nodes:    0")
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", "http://127.0.0.1:9")  # a xapi that is not there
    assert main(["place", "--vcpus", "2", "--memory", "1G", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("xapi:     unreachable")


def test_the_cli_place_refuses_what_the_plugins_place_refuses(ctx, monkeypatch, capsys):
    server, session, host, sid = ctx
    cli_env(server, host, monkeypatch)
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "0,x"})
    capsys.readouterr()
    assert main(["place", "--vcpus", "2", "--memory", "1G"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and HOST_MASK in out.err and "allowed" in out.err and "Traceback" not in out.err, out
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "0,1,2,3"})
    assert main(["place", "--vcpus", "2", "--memory", "1G", "--mode", "strict", "--nodes", "1"]) == 2
    out = capsys.readouterr()
    assert HOST_MASK in out.err and "a node of --nodes" in out.err, out
    assert main(["reservations", "--json"]) == 0 and json.loads(capsys.readouterr().out) == []
