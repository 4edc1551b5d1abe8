"""A VM's vNUMA plan in XAPI, through the loopback pool: the plugin's ``vnuma_plan``
(planned from the VM's record, stored in other_config only when asked, every refusal
before anything is written), ``xapi-numa vnuma VM --store`` and ``vm-placement``."""
import json
import os
import subprocess
import sys

import pytest
from test_plugin import err, ok, run

from xapi_numa.core import vnuma
from xapi_numa.ops.vnuma_xapi import VNUMA_KEY, guest_of, stored_plan, video_ram_of

G = 1 << 30
XAPI_NUMA = os.path.join(os.path.dirname(sys.executable), "xapi-numa")


def without_meta(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("vm", "stored", "key")}


def test_follow_plan_is_stored_only_when_asked(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("db", 4, 2 * G, other_config={"numa_mode": "best_effort"})
    shown = ok(run(server, host, sid, "vnuma_plan", {"vm": uuid}))
    assert shown["mode"] == "follow" and shown["stored"] is False and shown["key"] == VNUMA_KEY
    assert sum(v["memory"] for v in shown["vnodes"]) == 2 * G
    assert sorted(c for v in shown["vnodes"] for c in v["vcpus"]) == [0, 1, 2, 3]
    assert VNUMA_KEY not in session.xenapi.VM.get_other_config(ref)
    stored = ok(run(server, host, sid, "vnuma_plan", {"vm": uuid, "store": "true"}))
    other = session.xenapi.VM.get_other_config(ref)
    assert json.loads(other[VNUMA_KEY]) == without_meta(stored)
    assert other["numa_mode"] == "best_effort"  # the other keys are left alone
    assert stored_plan(other) == without_meta(stored)


def test_a_running_vm_plans_as_it_would_halted(ctx):
    """The plan is for the VM's next start: its own memory and vCPUs count as
    free, for the placement as for the layout (a 6G VM on 2x4G nodes fits only so)."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("big", 4, 6 * G)
    halted = without_meta(ok(run(server, host, sid, "vnuma_plan", {"vm": uuid})))
    session.xenapi.VM.start_on(ref, host, False, False)
    assert without_meta(ok(run(server, host, sid, "vnuma_plan", {"vm": uuid}))) == halted
    session.xenapi.VM.hard_shutdown(ref)
    ref, uuid = server.add_vm("mid", 2, 3 * G)  # one node's worth: one vnode halted and running
    halted = without_meta(ok(run(server, host, sid, "vnuma_plan", {"vm": uuid})))
    session.xenapi.VM.start_on(ref, host, False, False)
    assert len(halted["vnodes"]) == 1
    assert without_meta(ok(run(server, host, sid, "vnuma_plan", {"vm": uuid}))) == halted


def test_a_follow_plan_lays_memory_out_where_placement_found_room(ctx):
    """3 vCPUs and 6G on 2x4G nodes: placement puts about 3G on each (node 0 a little
    less: Xen's DMA zone there is given last); the vnodes' memory followed their vCPUs
    (4G and 2G) and the plan was refused for want of room."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("odd", 3, 6 * G)
    plan = ok(run(server, host, sid, "vnuma_plan", {"vm": uuid}))
    laid = [(v["pnode"], v["memory"]) for v in plan["vnodes"]]
    assert [p for p, _ in laid] == [0, 1] and sum(m for _, m in laid) == 6 * G
    assert all(2.5 * G < m < 3.5 * G for _, m in laid), laid
    assert sorted(c for v in plan["vnodes"] for c in v["vcpus"]) == [0, 1, 2]


def test_a_plan_leaves_alone_what_starting_vms_reserved(ctx):
    """A split plan on half 1 (node 1) counted memory another VM about to start there
    had reserved: it laid a vnode over it."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("db", 2, 2 * G)
    assert ok(run(server, host, sid, "vnuma_plan", {"vm": uuid, "mode": "split", "half": "1"}))
    _, other = server.add_vm("starting", 2, 3 * G, other_config={"numa_mode": "strict", "numa_nodes": "1"})
    assert ok(run(server, host, sid, "place", {"vm": other}))["nodes"] == [1]
    failure = err(run(server, host, sid, "vnuma_plan", {"vm": uuid, "mode": "split", "half": "1"}))
    assert failure[0] == "NUMA_NO_CAPACITY" and "node 1" in " ".join(failure), failure


def test_a_vm_running_on_another_host_is_planned_where_it_runs(ctx):
    server, session, host, sid = ctx
    other_host = session.xenapi.host.get_all()[1]
    ref, uuid = server.add_vm("app", 2, 1 * G)
    session.xenapi.VM.start_on(ref, host, False, False)
    details = err(run(server, other_host, sid, "vnuma_plan", {"vm": uuid, "store": "true"}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "vm"] and "on another host" in details[2]
    assert VNUMA_KEY not in session.xenapi.VM.get_other_config(ref)
    assert ok(run(server, host, sid, "vnuma_plan", {"vm": uuid}))["vnodes"]


def test_split_plan_uses_one_half(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("web", 2, 1 * G, domain_type="pvh")
    plan = ok(run(server, host, sid, "vnuma_plan", {"vm": uuid, "mode": "split", "half": "1", "store": "true"}))
    assert plan["mode"] == "split" and [v["pnode"] for v in plan["vnodes"]] == [1]
    assert json.loads(session.xenapi.VM.get_other_config(ref)[VNUMA_KEY])["mode"] == "split"


@pytest.mark.parametrize("vm_kwargs, args, field", [
    ({"domain_type": "pv_in_pvh"}, {}, "domain_type"),
    ({}, {"mode": "stretch"}, "mode"),
    ({}, {"mode": "split"}, "half"),
    ({}, {"half": "0"}, "half"),
    ({}, {"mode": "split", "half": "2"}, "half"),
    ({}, {"store": "yes"}, "store"),
    ({"other_config": {"numa_mode": "any"}}, {}, "policy"),
])
def test_refusals_change_nothing(ctx, vm_kwargs, args, field):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("bad", 2, 1 * G, **vm_kwargs)
    before = session.xenapi.VM.get_other_config(ref)
    details = err(run(server, host, sid, "vnuma_plan", dict({"vm": uuid, "store": "true"}, **args)))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", field], details
    assert session.xenapi.VM.get_other_config(ref) == before


def test_populate_on_demand_is_refused(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("pod", 2, 2 * G)
    server.vms[ref]["memory_dynamic_min"] = str(1 * G)
    details = err(run(server, host, sid, "vnuma_plan", {"vm": uuid, "store": "true"}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "memory_dynamic_min"]
    assert VNUMA_KEY not in session.xenapi.VM.get_other_config(ref)


def test_guest_of_reads_the_datamodel_fields():
    record = {"domain_type": "unspecified", "HVM_boot_policy": "BIOS order", "VCPUs_max": "3",
              "memory_static_max": str(G), "memory_dynamic_min": str(G), "other_config": {}}
    assert guest_of(record) == vnuma.GuestSpec("hvm", 3, G, G)
    assert guest_of(dict(record, HVM_boot_policy="")).type == "pv"
    assert stored_plan({VNUMA_KEY: "{not json"})["error"].startswith("other_config:numa_vnuma")
    assert stored_plan({}) is None


def cli(server, tmp_path, *argv):
    secret = tmp_path / "password"
    if not secret.exists():
        secret.write_text("xenroot\n")
        secret.chmod(0o600)
    return subprocess.run([XAPI_NUMA, "--insecure", "--pool", server.url, "--user", "root", "--password-file",
                           str(secret), *argv], capture_output=True, text=True, timeout=300)


def test_cli_store_and_vm_placement(pool, tmp_path):
    server, session = pool
    ref, uuid = server.add_vm("app", 2, 1 * G)
    done = cli(server, tmp_path, "vnuma", "app", "--store", "--split", "0", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["stored"] is True and result["host"].startswith("host")
    assert json.loads(session.xenapi.VM.get_other_config(ref)[VNUMA_KEY]) == without_meta(
        {k: v for k, v in result.items() if k not in ("host", "host_uuid")})
    refused = cli(server, tmp_path, "vnuma", "app", "--store", "--vcpus", "2")
    assert refused.returncode == 2 and "--vcpus" in refused.stderr and "--store" in refused.stderr
    before = session.xenapi.VM.get_other_config(ref)
    for flags in (["--mode", "strict"], ["--type", "pvh"], ["--dynamic-min", "1G"], ["--policy-nodes", "1"],
                  ["--on-exhaust", "fail"], ["--hole-start", "0x1000"], ["--split", "2"]):
        refused = cli(server, tmp_path, "vnuma", "app", "--store", *flags)  # never quietly ignored
        assert refused.returncode == 2 and refused.stderr.startswith("xapi-numa: error: " + flags[0]), refused.stderr
    assert session.xenapi.VM.get_other_config(ref) == before
    shown = cli(server, tmp_path, "vm-placement", "app", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["vnuma_plan"]["vnodes"][0]["pnode"] == 0
    text = cli(server, tmp_path, "vm-placement", "app")
    assert "stored vNUMA plan" in text.stdout and "not applied by xenopsd" in text.stdout
    # running: the stored plan and the layout Xen holds (none: xenopsd set none)
    session.xenapi.VM.start_on(ref, session.xenapi.host.get_all()[0], False, False)
    running = json.loads(cli(server, tmp_path, "vm-placement", uuid, "--json").stdout)
    assert running["vnuma_plan"]["mode"] == "split" and running["memory"]["vnuma"] is None
    elsewhere = cli(server, tmp_path, "vnuma", "app", "--store", "--host", "nosuchhost")
    assert elsewhere.returncode == 2 and "--host: app is running on its host" in elsewhere.stderr
    local = cli(server, tmp_path, "vnuma", "app", "--vcpus", "2", "--memory", "1G")
    assert local.returncode == 2 and "--pool: only with --store" in local.stderr
    # once a layout is set on the domain (what a patched builder would do), it is shown too
    host = session.xenapi.VM.get_resident_on(ref)
    sim, domid = server.sims[host], int(session.xenapi.VM.get_domid(ref))
    plan = vnuma.plan_follow(sim.topology(), vnuma.GuestSpec("hvm", 2, 1 * G), [1, 0], free={0: 2 * G, 1: 2 * G})
    sim.set_vnuma(domid, plan, vnuma.memory_ranges(plan))
    running = json.loads(cli(server, tmp_path, "vm-placement", uuid, "--json").stdout)
    assert [v["pnode"] for v in running["memory"]["vnuma"]["vnodes"]] == [1, 0]
    assert "vNUMA layout Xen holds" in cli(server, tmp_path, "vm-placement", uuid).stdout


@pytest.mark.parametrize("text", ['{"vnodes":[{}]}', '{"vnodes":[1,2]}', '{"vnodes":[]}',
                                  '{"vnodes":[{"vnode":0,"pnode":0,"memory":"1G","vcpus":[0]}]}',
                                  '{"vnodes":[{"vnode":0,"pnode":0,"memory":1,"vcpus":"0"}]}', "[]", "nonsense"])
def test_a_hand_edited_stored_value_is_shown_as_no_plan(text):
    shown = stored_plan({VNUMA_KEY: text}, 1, 1)
    assert shown["error"] == "other_config:numa_vnuma holds no vNUMA plan" and shown["text"] == text


def test_a_plan_made_for_other_figures_says_it_is_stale():
    plan = vnuma.plan_follow(vnuma_topology(), vnuma.GuestSpec("hvm", 4, 2 * G), [0])
    text = json.dumps(plan.to_dict())
    assert "stale" not in stored_plan({VNUMA_KEY: text}, 4, 2 * G)
    stale = stored_plan({VNUMA_KEY: text}, 8, 3 * G)["stale"]
    assert "planned for 4 vCPUs and {} bytes".format(2 * G) in stale and "plan again" in stale


@pytest.mark.parametrize("record, mib", [
    ({"domain_type": "hvm"}, 4),                                          # no key: xapi's default
    ({"domain_type": "hvm", "platform": {"videoram": "8"}}, 8),
    ({"domain_type": "hvm", "platform": {"videoram": "0x10"}}, 16),       # int_of_string reads hex
    ({"domain_type": "hvm", "platform": {"videoram": "8 MiB"}}, 4),       # not a number: the default
    ({"domain_type": "hvm", "platform": {"videoram": "-3"}}, 0),
    ({"domain_type": "pvh", "platform": {"videoram": "8"}}, 0),           # no emulated VGA
])
def test_video_ram_is_worked_out_as_xapi_does(record, mib):
    assert video_ram_of(record, vgpu=False) == mib << 20


def test_a_vgpu_makes_it_16_mib_at_least():
    assert video_ram_of({"domain_type": "hvm", "platform": {"videoram": "8"}}, vgpu=True) == 16 << 20
    assert video_ram_of({"domain_type": "hvm", "platform": {"videoram": "32"}}, vgpu=True) == 32 << 20


@pytest.mark.parametrize("implementations, mib", [
    ([], 4), (["passthrough"], 4), (["nvidia"], 16), (["passthrough", "gvt_g"], 16), (["mxgpu"], 16)])
def test_a_gpu_passed_through_as_a_vgpu_is_no_vgpu_video(ctx, implementations, mib):
    """xapi's builder_of_vm raises the video RAM to 16 MiB for a vGPU as vgpus_of_vm lists
    them, which leaves out a VGPU whose type's implementation is passthrough (a whole GPU,
    handled as a PCI device): such a VM keeps its 4 MiB (was stored and judged as 16)."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("gpu", 2, 2 * G)
    for implementation in implementations:
        server.add_vgpu(ref, implementation)
    stored = ok(run(server, host, sid, "vnuma_plan", {"vm": uuid, "store": "true"}))
    assert stored["video_ram"] == mib << 20
    assert json.loads(session.xenapi.VM.get_other_config(ref)[VNUMA_KEY])["video_ram"] == mib << 20


def test_the_stored_plan_carries_the_video_ram_and_goes_stale_with_it(ctx):
    """A builder laying out the stored plan's ranges needs the video RAM (inside vnode 0's
    memory, no guest RAM): it was not stored, so the layout could not be rebuilt."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vga", 2, 2 * G, platform={"videoram": "16"})
    stored = ok(run(server, host, sid, "vnuma_plan", {"vm": uuid, "store": "true"}))
    assert stored["video_ram"] == 16 << 20
    other = session.xenapi.VM.get_other_config(ref)
    assert json.loads(other[VNUMA_KEY])["video_ram"] == 16 << 20
    assert "stale" not in stored_plan(other, 2, 2 * G, 16 << 20)
    assert "planned for {} bytes of video RAM".format(16 << 20) in stored_plan(other, 2, 2 * G, 8 << 20)["stale"]
    old = json.dumps({k: v for k, v in json.loads(other[VNUMA_KEY]).items() if k != "video_ram"})
    assert "stale" not in stored_plan({VNUMA_KEY: old}, 2, 2 * G, 8 << 20)  # stored before: not judged on it


def vnuma_topology():
    from xapi_numa.core.topology import Topology
    return Topology.uniform(2, 4, 4 * G)


def test_vm_placement_shows_a_bad_or_stale_stored_plan_without_failing(pool, tmp_path):
    server, session = pool
    ref, uuid = server.add_vm("app", 2, 1 * G, other_config={VNUMA_KEY: '{"vnodes":[{}]}'})
    shown = cli(server, tmp_path, "vm-placement", "app")
    assert shown.returncode == 0 and "holds no vNUMA plan" in shown.stdout, shown.stderr
    assert cli(server, tmp_path, "vnuma", "app", "--store").returncode == 0
    with server.lock:  # the admin gives the VM more vCPUs after the plan was stored
        server.vms[ref]["VCPUs_max"] = "4"
    shown = cli(server, tmp_path, "vm-placement", "app")
    assert shown.returncode == 0 and "out of date: planned for 2 vCPUs" in shown.stdout, shown.stdout


def test_plugin_move_memory_moves_whole_vnodes_only(ctx):
    import time

    server, session, host, sid = ctx
    ref, uuid = server.add_vm("numa-app", 2, 1 * G, domain_type="pvh")
    session.xenapi.VM.start_on(ref, host, False, False)
    sim, domid = server.sims[host], int(session.xenapi.VM.get_domid(ref))
    plan = vnuma.plan_follow(sim.topology(), vnuma.GuestSpec("pvh", 2, 1 * G), [0, 1], free={0: 2 * G, 1: 2 * G})
    sim.set_vnuma(domid, plan, vnuma.memory_ranges(plan))
    details = err(run(server, host, sid, "move_memory", {"vm": uuid, "to": "0"}))
    # [code, message, VM, vnode, its pnode, target, the allowed form], as for every error of ours with a message
    assert details[0] == "NUMA_VNODE_SPLIT" and details[2:6] == ["numa-app", "1", "1", "0"]
    assert "--vnode 1 --to 0" in details[6] and "vnode 1 is promised pnode 1" in details[1]
    assert err(run(server, host, sid, "move_memory", {"vm": uuid, "to": "0", "vnode": "2"}))[:2] == [
        "NUMA_INVALID_ARGUMENT", "vnode"]
    started = ok(run(server, host, sid, "move_memory", {"vm": uuid, "to": "0", "vnode": "1"}))
    assert started["state"] == "running" and started["vnode"] == 1
    deadline = time.monotonic() + 120
    status = {}
    while time.monotonic() < deadline:
        status = ok(run(server, host, sid, "memory_move_status", {"vm": uuid}))
        if status["state"] != "running":
            break
        time.sleep(0.5)
    assert status["state"] == "done", status
    assert status["vnode"]["pnodes"] == [0, 0] and sim.vnuma(domid).pnodes == (0, 0)


def test_the_fields_read_are_xapis():
    """guest_of reads datamodel fields by name, and knows every domain_type xapi has."""
    from conftest import SHARED, missing

    from xapi_numa.ops.vnuma_xapi import DOMAIN_TYPES

    path = os.path.join(SHARED, "xenapi.json")
    if not os.path.exists(path):
        missing("shared/xenapi.json not present")
    with open(path) as f:
        vm = next(c for c in json.load(f) if c["name"] == "VM")
    fields = {f["name"] for f in vm["fields"]}
    assert {"domain_type", "HVM_boot_policy", "VCPUs_max", "memory_static_max", "memory_dynamic_min",
            "other_config"} <= fields
    types = {v["name"] for e in vm["enums"] if e["name"] == "domain_type" for v in e["values"]}
    assert types == set(DOMAIN_TYPES) | {"unspecified"}


def test_vm_placement_judges_the_video_ram_by_the_vgpus_xapi_counts(pool, tmp_path):
    """A GPU passed through as a VGPU leaves the video RAM at 4 MiB, so the plan stored for it
    is not out of date; a vGPU removed since the VM's record was read is not counted (xapi's start
    reads the VM's vGPUs afresh), and vm-placement still answers: the place dry run each host makes
    for it asks about the vGPUs too, and failed on the one removed."""
    server, session = pool
    ref, uuid = server.add_vm("gpu", 2, 1 * G)
    vgpu = server.add_vgpu(ref, "passthrough")
    assert cli(server, tmp_path, "vnuma", "gpu", "--store").returncode == 0
    assert json.loads(session.xenapi.VM.get_other_config(ref)[VNUMA_KEY])["video_ram"] == 4 << 20
    shown = cli(server, tmp_path, "vm-placement", "gpu", "--json")
    assert shown.returncode == 0 and "stale" not in json.loads(shown.stdout)["vnuma_plan"], shown.stdout
    with server.lock:
        server.vgpus["OpaqueRef:gone"] = server.vgpus.pop(vgpu)  # the VM's ref now names no VGPU
    shown = cli(server, tmp_path, "vm-placement", "gpu", "--json")
    assert shown.returncode == 0 and "stale" not in json.loads(shown.stdout)["vnuma_plan"], shown.stderr


@pytest.mark.parametrize("video_ram", ['"lots"', "[1]", "-5", "1.5", "true"])
def test_a_hand_edited_video_ram_is_shown_as_no_plan_never_a_traceback(pool, tmp_path, video_ram):
    """vm-placement rendered any truthy video_ram with format_size: a string or a list was a
    TypeError traceback."""
    server, session = pool
    plan = '{"vnodes":[{"vnode":0,"pnode":0,"memory":1073741824,"vcpus":[0,1]}],"video_ram":%s}' % video_ram
    server.add_vm("app", 2, 1 * G, other_config={VNUMA_KEY: plan})
    shown = cli(server, tmp_path, "vm-placement", "app")
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert "holds no vNUMA plan" in shown.stdout, shown.stdout
    assert stored_plan({VNUMA_KEY: plan})["error"].endswith("holds no vNUMA plan")


def test_a_plan_made_on_another_hosts_nodes_is_out_of_date_where_the_vm_runs(pool, tmp_path):
    """The plan's pnodes are the nodes of the host it was made on: for a VM running on
    another host, vm-placement says the plan is out of date (it named no host before)."""
    server, session = pool
    ref, uuid = server.add_vm("app", 2, 1 * G)
    first, second = sorted(session.xenapi.host.get_all(), key=session.xenapi.host.get_name_label)[:2]
    done = cli(server, tmp_path, "vnuma", "app", "--store", "--host", session.xenapi.host.get_name_label(first))
    assert done.returncode == 0, done.stderr
    planned_on = session.xenapi.host.get_uuid(first)
    assert json.loads(session.xenapi.VM.get_other_config(ref)[VNUMA_KEY])["planned_on"] == planned_on
    session.xenapi.VM.start_on(ref, second, False, False)
    shown = json.loads(cli(server, tmp_path, "vm-placement", uuid, "--json").stdout)["vnuma_plan"]
    assert "planned on the nodes of host {}; the VM runs on host {}".format(
        planned_on, session.xenapi.host.get_uuid(second)) in shown["stale"]
    assert "out of date: planned on the nodes of host" in cli(server, tmp_path, "vm-placement", "app").stdout
    session.xenapi.VM.hard_shutdown(ref)
    session.xenapi.VM.start_on(ref, first, False, False)
    shown = json.loads(cli(server, tmp_path, "vm-placement", uuid, "--json").stdout)["vnuma_plan"]
    assert "stale" not in shown, shown


@pytest.mark.parametrize("flag, kind", [("is_a_template", "template"), ("is_a_snapshot", "snapshot")])
def test_a_plan_is_stored_only_on_a_vm_that_starts(ctx, flag, kind):
    """xapi never starts a template or a snapshot: a plan stored there (planned on this
    host's nodes) was only copied into its clones, as place's pin would be.  It was stored;
    now refused as place refuses them, nothing written; shown (store=false) as a what-if."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("golden", 2, 1 * G)
    server.vms[ref][flag] = True
    details = err(run(server, host, sid, "vnuma_plan", {"vm": uuid, "store": "true"}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "vm"] and kind in details[2], details
    assert VNUMA_KEY not in session.xenapi.VM.get_other_config(ref)
    assert ok(run(server, host, sid, "vnuma_plan", {"vm": uuid}))["stored"] is False


def test_the_control_domain_is_refused_as_such(ctx):
    """dom0 was refused as "PV guests cannot have vNUMA" (field type): a PVH dom0 is no
    guest to plan either; it is named as the control domain, as set_policy does."""
    server, session, host, sid = ctx
    dom0 = server.control_domains[host]
    details = err(run(server, host, sid, "vnuma_plan", {"vm": server.vms[dom0]["uuid"], "store": "true"}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "vm"] and "control domain" in details[2], details
    assert VNUMA_KEY not in session.xenapi.VM.get_other_config(dom0)


@pytest.mark.parametrize("field, value", [("VCPUs_max", "0"), ("VCPUs_max", "5000"),
                                          ("memory_static_max", str(1 * G + 1000)), ("memory_static_max", "0"),
                                          ("memory_static_max", str(1 << 60))])
def test_a_refused_record_names_xapis_field(ctx, field, value):
    """The VM's own figures refused were named by the planner's words (vcpus, memory, type:
    no argument of vnuma_plan, no field of xapi's VM); now by the datamodel's, as
    memory_dynamic_min and domain_type already were, and nothing is written."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("odd", 2, 1 * G)
    server.vms[ref][field] = value
    if field == "memory_static_max":  # (dynamic-min below it would be refused first, as populate-on-demand)
        server.vms[ref]["memory_dynamic_min"] = value
    details = err(run(server, host, sid, "vnuma_plan", {"vm": uuid, "store": "true"}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", field], details
    assert VNUMA_KEY not in session.xenapi.VM.get_other_config(ref)


def test_a_pv_vm_is_planned_and_a_pv_in_pvh_one_refused_for_its_own_reason(ctx):
    """A PV VM was refused ("Xen 4.17 builds vNUMA only for translated guests"), but Xen holds a
    layout for any guest (xen/common/domctl.c, vnuma_init) and libxc builds a PV guest's ranges
    each from its pnode (tools/libs/guest/xg_dom_x86.c, meminit_pv): it is planned now, with no
    video RAM.  A pv_in_pvh VM stays refused, for the reason that holds: Xen builds the PV shim,
    which builds the PV guest inside it with no layout."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("legacy", 2, 2 * G, domain_type="pv")
    stored = ok(run(server, host, sid, "vnuma_plan", {"vm": uuid, "store": "true"}))
    assert sum(v["memory"] for v in stored["vnodes"]) == 2 * G and stored["video_ram"] == 0
    assert json.loads(session.xenapi.VM.get_other_config(ref)[VNUMA_KEY]) == without_meta(stored)
    ref, uuid = server.add_vm("shimmed", 2, 2 * G, domain_type="pv_in_pvh")
    details = err(run(server, host, sid, "vnuma_plan", {"vm": uuid, "store": "true"}))
    assert details[:2] == ["NUMA_INVALID_ARGUMENT", "domain_type"] and "shim" in details[2], details
    assert VNUMA_KEY not in session.xenapi.VM.get_other_config(ref)
