"""``place``'s answer named the chosen nodes' whole CPU lists where the host's guest mask
(``guest_VCPUs_params:mask``) or the VM's own mask (``VCPUs_params:mask``) covers part of a
node (review 20): with a host mask 1,2 on node 0 (CPUs 0-3) it said soft 0-3 while the boot
pin it wrote was 1,2.  The answer's ``soft``/``hard`` now say the boot pin's CPUs (the union
over vCPUs where they differ), for a VM's dry run, a real place, the what-if and the CLI;
with no mask, nothing changes."""
import json

import pytest
from test_plugin import ok, run
from test_review19_what_if_guest_mask import cli_env, what_if_and_dry_run

from xapi_numa.cli.main import main
from xapi_numa.core.cpuset import parse_ids


def pinned_cpus(session, ref) -> frozenset:
    """The CPUs of the boot pin place wrote (every vCPU's, ';' between per-vCPU masks)."""
    mask = session.xenapi.VM.get_VCPUs_params(ref)["mask"]
    return frozenset().union(*(parse_ids(part) for part in mask.split(";")))


def placed(answer: dict) -> frozenset:
    """The CPUs the answer says (soft for best_effort, hard for strict: the other is null)."""
    said = [answer[field] for field in ("soft", "hard") if answer[field] is not None]
    assert len(said) == 1, answer
    return parse_ids(said[0])


@pytest.mark.parametrize("mode", ["best_effort", "strict"])
def test_a_host_mask_on_part_of_a_node_is_what_every_place_answer_says(ctx, mode):
    server, session, host, sid = ctx
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "1,2"})
    what_if, dry_run = (ok(r) for r in what_if_and_dry_run(server, host, sid, 2, 1 << 30, mode))
    ref = session.xenapi.VM.get_by_name_label("vm-{}".format(mode))[0]
    real = ok(run(server, host, sid, "place", {"vm": session.xenapi.VM.get_uuid(ref)}))
    assert pinned_cpus(session, ref) == frozenset({1, 2}), session.xenapi.VM.get_VCPUs_params(ref)
    for answer in (what_if, dry_run, real):
        assert answer["nodes"] == [0], answer
        assert placed(answer) == pinned_cpus(session, ref), (mode, answer)
        assert (answer["soft"] is None) == (mode == "strict"), answer  # the shape is unchanged


def test_a_vms_own_mask_on_part_of_a_node_is_what_its_place_answer_says(ctx):
    """Per-vCPU masks that differ: the answer says the union of the pin's vCPUs' CPUs."""
    server, session, host, sid = ctx
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "0,1,2"})
    ref, uuid = server.add_vm("own-mask", 2, 1 << 30, vcpus_params={"mask": "0,1,5;1,2,6"},
                              other_config={"numa_mode": "best_effort", "numa_nodes": "0"})
    dry_run = ok(run(server, host, sid, "place", {"vm": uuid, "dry_run": "true"}))
    real = ok(run(server, host, sid, "place", {"vm": uuid}))
    assert session.xenapi.VM.get_VCPUs_params(ref)["mask"] == "0,1;1,2"
    for answer in (dry_run, real):
        assert answer["nodes"] == [0] and answer["hard"] is None, answer
        assert parse_ids(answer["soft"]) == pinned_cpus(session, ref) == frozenset({0, 1, 2}), answer


@pytest.mark.parametrize("mode", ["best_effort", "strict"])
def test_with_no_mask_the_answer_names_the_whole_nodes_as_before(ctx, mode):
    server, session, host, sid = ctx
    what_if, dry_run = (ok(r) for r in what_if_and_dry_run(server, host, sid, 2, 1 << 30, mode))
    ref = session.xenapi.VM.get_by_name_label("vm-{}".format(mode))[0]
    real = ok(run(server, host, sid, "place", {"vm": session.xenapi.VM.get_uuid(ref)}))
    for answer in (what_if, dry_run, real):
        assert answer["nodes"] == [1] and answer["soft" if mode == "best_effort" else "hard"] == "4-7", answer
        assert placed(answer) == pinned_cpus(session, ref), answer


def test_the_cli_place_says_the_cpus_inside_the_hosts_guest_mask(ctx, monkeypatch, capsys):
    server, session, host, sid = ctx
    cli_env(server, host, monkeypatch)
    session.xenapi.host.set_guest_VCPUs_params(host, {"mask": "1,2"})
    capsys.readouterr()
    assert main(["place", "--vcpus", "2", "--memory", "1G", "--dry-run", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["nodes"] == [0] and answer["soft"] == "1-2" and answer["xapi"] == "consulted", answer
    assert main(["place", "--vcpus", "2", "--memory", "1G", "--dry-run", "--no-xapi", "--json"]) == 0
    unbounded = json.loads(capsys.readouterr().out)
    assert unbounded["nodes"] == [1] and unbounded["soft"] == "4-7", unbounded
