"""The xapi-numa command: queries with --json, sim scripting, clear errors."""
import json
import os
import subprocess
import sys

import pytest

from xapi_numa.cli.main import main


@pytest.fixture
def host(tmp_path):
    path = str(tmp_path / "host.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "2G",
                 "--distances", "10,21;21,10", "--scheduler", "credit", "--seed", "5"]) == 0
    return path


def run_json(capsys, *argv):
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_topology_json(host, capsys):
    data = run_json(capsys, "--backend", f"sim:{host}", "topology", "--json")
    assert [n["cpus"] for n in data["nodes"]] == ["0-3", "4-7"]
    assert data["distances"] == [[10, 21], [21, 10]]
    assert data["nodes"][0]["memory_total"] == 2 << 30
    assert data["nodes"][0]["memory_free"] < 2 << 30  # dom0 took some
    # what this Xen offers, as docs/install.md's install check reads it
    assert data["scheduler"] == "credit" and data["features"]["node_claims"] in ("native", "fallback", "none")


def test_vcpus_and_memory_json(host, capsys, monkeypatch):
    assert main(["sim", "create", host, "web", "--vcpus", "3", "--memory", "512M", "--soft", "node:1"]) == 0
    assert main(["sim", "run", host, "--seconds", "0.5"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    rows = run_json(capsys, "vcpus", "web", "--json")
    assert len(rows) == 3
    for r in rows:
        assert set(r) >= {"domid", "name", "vcpu", "cpu", "node", "hard", "soft", "outside_soft"}
        assert r["soft"] == "4-7" and r["hard"] == "all" and r["node"] == 1 and r["outside_soft"] is False
    mem = run_json(capsys, "memory", "--json")
    web = [m for m in mem if m["name"] == "web"][0]
    assert web["nodes"] == {"0": 0, "1": 512 << 20}


def test_tables(host, capsys, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    for cmd in ("topology", "vcpus", "memory"):
        capsys.readouterr()
        assert main([cmd]) == 0
        out = capsys.readouterr().out
        assert out.strip() and "{" not in out


def test_sim_lifecycle(host, capsys):
    assert main(["sim", "create", host, "g", "--vcpus", "2", "--memory", "256M", "--paused",
                 "--load", "bursty:200ms:50%", "--type", "pvh"]) == 0
    domid = int(capsys.readouterr().out)
    assert main(["sim", "unpause", host, "g"]) == 0
    assert main(["sim", "pause", host, str(domid)]) == 0
    assert main(["sim", "destroy", host, "g"]) == 0
    rows = run_json(capsys, "--backend", f"sim:{host}", "memory", "--json")
    assert [r["name"] for r in rows] == ["Domain-0"]


@pytest.mark.parametrize("argv, fragment", [
    (["sim", "create", "{host}", "x", "--vcpus", "2", "--memory", "lots"], "--memory: 'lots' is not a size"),
    (["sim", "create", "{host}", "x", "--vcpus", "2", "--memory", "1G", "--soft", "node:7"],
     "--soft: node 7"),
    (["sim", "create", "{host}", "x", "--vcpus", "2", "--memory", "1G", "--hard", "^all"], "--hard"),
    (["sim", "create", "{host}", "x", "--vcpus", "0", "--memory", "1G"], "--vcpus: 0 (allowed: 1..512)"),
    (["sim", "create", "{host}", "x", "--vcpus", "1", "--memory", "1G", "--load", "spiky"], "--load: unknown"),
    (["sim", "init", "{host}", "--force", "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "1G",
      "--distances", "11,21;21,10"], "--distances: "),
    (["sim", "create", "{host}", "x", "--vcpus", "1", "--memory", "100G"],
     "--memory: '100G' is too large: more than 3686.25M (allowed: 1M .. 3686.25M (the host's free memory after "),
    (["sim", "pause", "{host}", "nobody"], "no such VM or domain: nobody"),
    (["sim", "unpause", "{host}", "Domain-0"], "VM: dom0 cannot be unpaused (allowed: a guest's domid, name or UUID)"),
    (["sim", "init", "{host}", "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "1G",
      "--distances", "10,21"], "distances"),
    (["sim", "init", "{host}", "--nodes", "64", "--cpus-per-node", "512", "--memory-per-node", "1G"],
     "at most 4096 pCPUs"),
    (["sim", "init", "{host}", "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "1024P"],
     "--memory-per-node: '1024P' is too large: more than 64T (allowed: 64M .. 64T (one node), as "),
    (["sim", "init", "{host}", "--force", "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "1G",
      "--dom0-memory", "2G"],
     "--dom0-memory: '2G' is too large: more than 1G (allowed: 64M .. 1G (half the host), as "),
    (["sim", "init", "{host}", "--force", "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "1G",
      "--dom0-vcpus", "100"], "--dom0-vcpus: 100 (allowed: 1..4"),
    (["sim", "create", "{host}", "", "--vcpus", "1", "--memory", "64M"], "name: ''"),
    (["sim", "create", "{host}", "5", "--vcpus", "1", "--memory", "64M"], "not all digits"),
    (["sim", "create", "{host}", "x", "--vcpus", "1", "--memory", "64M", "--soft", "^0"], "--soft: '^0' leaves no"),
    (["sim", "create", "{host}", "x", "--vcpus", "1", "--memory", "64M", "--hard", ""], "--hard: empty"),
    (["sim", "create", "{host}", "x", "--vcpus", "1", "--memory", "64M", "--soft", ""], "--soft: empty"),
    (["--backend", "sim:{host}", "vcpus", ""], "VM: '' is blank (allowed: a domid, name or UUID)"),
    (["--backend", "sim:{host}", "memory-moves", " "], "VM: ' ' is blank"),
    (["--backend", "sim:{host}", "memory-moves", "nosuch"], "no such VM or domain: nosuch"),
    # a node as typed in Xen's syntax is quoted as typed
    (["--backend", "sim:{host}", "vnuma", "x", "--vcpus", "2", "--memory", "1G", "--nodes", "node:9"],
     "--nodes: node 9 in 'node:9' does not exist on this host"),
    # an unknown VM: the field, and what may be given instead
    (["--backend", "sim:{host}", "vcpus", "nosuch"],
     "VM: no such VM or domain: nosuch (allowed: the domid, name or UUID of a domain on this host)"),
    (["--backend", "sim:{host}", "reservations", "--ledger", ""], "argument --ledger: blank"),
    (["--backend", "bogus", "topology"], "backend: unknown backend 'bogus'"),
    (["--backend", "xen", "topology"], "Xen"),
])
def test_errors_are_one_clear_line(host, capsys, argv, fragment):
    before = open(host).read()
    capsys.readouterr()
    code = main([a.replace("{host}", host) for a in argv])
    err = capsys.readouterr().err
    assert code != 0
    assert fragment in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert open(host).read() == before  # nothing changed


def test_console_script_never_shows_a_traceback(tmp_path):
    env = dict(os.environ, XAPI_NUMA_BACKEND=f"sim:{tmp_path}/missing.json")
    bindir = os.path.dirname(sys.executable)
    proc = subprocess.run([os.path.join(bindir, "xapi-numa"), "vcpus", "--json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2  # a backend that names no simulated host is bad input
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr and "no simulated host" in proc.stderr


VM1, VM2 = "0b2a7e6e-0000-4000-8000-000000000001", "0b2a7e6e-0000-4000-8000-000000000002"


def test_place_reserve_list_release(host, capsys, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    out = run_json(capsys, "place", "--vcpus", "2", "--memory", "1G", "--vm", VM1, "--json")
    assert len(out["nodes"]) == 1 and out["reservation"]["vm"] == VM1 and out["reserved"] is True  # (as the plugin)
    assert out["soft"] in ("0-3", "4-7") and out["hard"] is None
    rows = run_json(capsys, "reservations", "--json")
    assert [r["vm"] for r in rows] == [VM1] and rows[0]["total"] == (1 << 30) + out["overhead"]
    # the host's own topology counts it as reserved, not claimable (as the plugin's does)
    nodes = run_json(capsys, "topology", "--json")["nodes"]
    assert sum(n["memory_reserved"] for n in nodes) == rows[0]["total"]
    assert all(n["memory_claimable"] == n["memory_free"] - n["memory_claimed"] - n["memory_reserved"] for n in nodes)
    # the reservation steers the next start to the other node
    other = run_json(capsys, "place", "--vcpus", "2", "--memory", "1G", "--vm", VM2, "--json")
    assert other["nodes"] != out["nodes"]
    dry = run_json(capsys, "place", "--vcpus", "2", "--memory", "1G", "--dry-run", "--json")
    assert dry["reservation"] is None and dry["reserved"] is False
    assert main(["release", VM1]) == 0
    assert [r["vm"] for r in run_json(capsys, "reservations", "--json")] == [VM2]
    assert main(["release", VM1]) == 1
    # --vm is a VM's UUID, as its help says: a blank or a name is refused, nothing reserved
    for typed in ("   ", "D", VM1 + "x"):
        assert main(["place", "--vcpus", "2", "--memory", "1G", "--vm", typed]) == 2
        assert "--vm: " in capsys.readouterr().err
    assert [r["vm"] for r in run_json(capsys, "reservations", "--json")] == [VM2]


@pytest.mark.parametrize("argv, fragment", [
    (["place", "--vcpus", "2", "--memory", "1G", "--mode", "loose"], "mode: unknown mode 'loose'"),
    (["place", "--vcpus", "2", "--memory", "1G", "--nodes", "9", "--mode", "strict"], "--nodes: node 9 does not exist"),
    (["place", "--vcpus", "2", "--memory", "1G", "--on-exhaust", "maybe"], "--on-exhaust: unknown value"),
    (["place", "--vcpus", "2", "--memory", "1G", "--mode", "strict", "--nodes", "x"], "--nodes: bad entry 'x'"),
    (["place", "--vcpus", "0", "--memory", "1G"], "--vcpus: 0"),
    (["place", "--vcpus", "1", "--memory", "3G", "--mode", "strict", "--nodes", "0", "--on-exhaust", "fail"],
     "node 0 has"),
    (["place", "--vcpus", "1", "--memory", "1G", "--ttl", "-1"], "--ttl"),
    (["place", "--vcpus", "1", "--memory", "1G", "--ttl", "123456789"], "--ttl: 123456789 (allowed"),
    (["place", "--vcpus", "1", "--memory", "2P"],
     "--memory: '2P' is too large: more than 1P (allowed: 1B .. 1P (one VM)"),
])
def test_place_errors(host, capsys, monkeypatch, argv, fragment):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    capsys.readouterr()
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert run_json(capsys, "reservations", "--json") == []


def test_top_once_and_homing_dry_run(host, capsys, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    assert main(["sim", "create", host, "A", "--vcpus", "2", "--memory", "256M", "--soft", "node:0"]) == 0
    assert main(["sim", "run", host, "--seconds", "0.3"]) == 0
    report = run_json(capsys, "top", "--once", "--json")
    assert [n["busy_cpus"] for n in report["nodes"]] == [2, 0]
    assert report["vms"][0]["home_nodes"] == [0] and report["vms"][0]["local_share"] == 1.0
    # top's "time outside" is of its own samples: --once has one, and says so
    assert report["outside_over"]["refreshes"] == 1
    capsys.readouterr()
    assert main(["top", "--once"]) == 0
    text = capsys.readouterr().out
    assert "local" in text and "outside soft affinity at this one moment" in text
    plan = run_json(capsys, "homing", "--dry-run", "--json")
    assert plan["pins"] == [] and plan["scheduler"] == "credit"
    capsys.readouterr()
    assert main(["homing"]) == 2 and "--dry-run" in capsys.readouterr().err
    assert main(["top", "--interval", "0"]) == 2


def test_sim_init_onto_a_directory_is_refused(tmp_path, capsys):
    assert main(["sim", "init", str(tmp_path), "--force", "--nodes", "1", "--cpus-per-node", "1",
                 "--memory-per-node", "1G"]) == 2
    assert "PATH: {} is a directory".format(tmp_path) in capsys.readouterr().err


def test_sim_init_force_never_replaces_another_programs_json(tmp_path, capsys):
    """Any file beginning with '{' was taken for a simulated host's state and replaced."""
    for name, text in (("package.json", '{\n "name": "my-app",\n "version": "1.0.0"\n}\n'),
                       ("tasks.json", '{"version": "2.0.0", "tasks": []}\n')):
        other = tmp_path / name
        other.write_text(text)
        assert main(["sim", "init", str(other), "--force", "--nodes", "1", "--cpus-per-node", "1",
                     "--memory-per-node", "1G"]) != 0
        assert "not a simulated host's state" in capsys.readouterr().err
        assert other.read_text() == text
    assert sorted(os.listdir(tmp_path)) == ["package.json", "tasks.json"]
    ours = tmp_path / "h.json"
    for _ in range(2):  # a state of ours is replaced
        assert main(["sim", "init", str(ours), "--force", "--nodes", "1", "--cpus-per-node", "1",
                     "--memory-per-node", "1G"]) == 0


@pytest.mark.parametrize("path", ["", " "])
def test_sim_init_onto_a_blank_path_is_refused(tmp_path, capsys, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    assert main(["sim", "init", path, "--force", "--nodes", "1", "--cpus-per-node", "1",
                 "--memory-per-node", "1G"]) == 2
    assert "PATH: {!r}".format(path) in capsys.readouterr().err and os.listdir(tmp_path) == []


def test_a_missing_simulated_host_is_said_so_and_nothing_is_made_beside_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    for argv in (["reservations"], ["topology"], ["vcpus"]):
        assert main(["--backend", "sim:nonexist.json", *argv]) != 0
        assert "no simulated host at" in capsys.readouterr().err
    assert main(["--backend", "sim:.", "reservations"]) != 0
    assert "it is a directory" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_policy_nodes_take_xens_node_spelling(host, capsys, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    out = run_json(capsys, "place", "--vcpus", "1", "--memory", "256M", "--mode", "strict", "--nodes", "node:1",
                   "--dry-run", "--json")
    assert out["nodes"] == [1]


def test_a_digit_reference_is_a_domid_and_a_shared_name_is_refused(host, capsys):
    """As xl reads it: digits are a domid when one exists; a name two domains share names neither."""
    from xapi_numa.core.host import DomainInfo, find_domain
    from xapi_numa.errors import InvalidArgument, UnknownVM

    def dom(domid, name, uuid):
        return DomainInfo(domid, name, uuid, 1, 1, 1, False)
    doms = [dom(4, "5", "aaaa"), dom(5, "web", "bbbb"), dom(6, "web", "cccc")]
    assert find_domain(doms, "5").domid == 5 and find_domain(doms, "4").domid == 4
    assert find_domain(doms, "AAAA").domid == 4
    with pytest.raises(InvalidArgument) as err:
        find_domain(doms, "web")
    assert "2 domains are named 'web' (domids 5, 6)" in str(err.value)
    with pytest.raises(UnknownVM):
        find_domain(doms, "7")


@pytest.mark.parametrize("argv, fragment", [
    (["--xl", "--json"], "--xl: not with --json"),
    (["--xl", "--apply"], "--xl: not with --apply"),
    (["--dynamic-min", "4G"], "--dynamic-min: '4G' is too large: more than 512M (allowed: 512M .. 512M (--memory: "),
    (["--mode", "strict", "--policy-nodes", "x"], "--policy-nodes: bad entry 'x'"),
    (["--split", "2"], "--split: 2 is no half of a split host (allowed: 0 or 1)"),
    (["--nodes", "0,0"], "--nodes: node 0 is listed twice in '0,0'"),
    (["--mode", "strict", "--policy-nodes", "5"], "--policy-nodes: node 5 does not exist"),
    (["--nodes", "0-"], "--nodes: bad entry '0-' in '0-'"),
    (["--nodes", ""], "--nodes: '' has an empty entry"),
    (["--nodes", "0,nearest"], "--nodes: '0,nearest': 'nearest' is a policy's word"),
    (["--nodes", "1", "--type", "pvh", "--apply", "--hole-start", "\u0661\u0660\u0660"], "--hole-start:"),
    # the typed address is echoed as typed, not as the layout's hex
    (["--nodes", "1", "--type", "pvh", "--apply", "--hole-start", "12345"],
     "--hole-start: '12345' (allowed: a 4 KiB-aligned address above 0, at most 0x100000000"),
    (["--nodes", "1", "--type", "pvh", "--apply", "--hole-start", "0x200000000"], "--hole-start: '0x200000000' (allowed"),
    (["--nodes", "1", "--type", "pvh", "--apply"], "VM: domain {domid} (g) has already run"),
    (["--nodes", "1", "--apply"], "--type: hvm, but domain g is pvh"),
    (["--nodes", "1", "--type", "pvh", "--apply", "--memory", "1G"], "--memory: 1G, but domain g's static max is 512M"),
])
def test_vnuma_refusals_name_the_flag_and_change_nothing(host, capsys, monkeypatch, argv, fragment):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    assert main(["sim", "create", host, "g", "--vcpus", "2", "--memory", "512M", "--type", "pvh"]) == 0
    domid = int(capsys.readouterr().out)
    assert main(["sim", "run", host, "--seconds", "0.5"]) == 0
    before = open(host).read()
    assert main(["vnuma", "g", "--vcpus", "2", "--memory", "512M", *argv]) == 2
    err = capsys.readouterr().err
    assert fragment.format(domid=domid) in err and len(err.strip().splitlines()) == 1
    assert open(host).read() == before


def test_vnuma_split_is_refused_in_the_same_words_with_store(capsys):
    """--store checks --split before any xapi session, and says what the local plan says."""
    assert main(["vnuma", "g", "--store", "--split", "2"]) == 2
    assert "--split: 2 is no half of a split host (allowed: 0 or 1)" in capsys.readouterr().err


def test_vnuma_apply_refuses_pvh_on_an_hvm_domain(host, capsys, monkeypatch):
    """Accepted before (Xen's flags say HVM for both, so only pvh-on-hvm was let through):
    the PVH builder's end of RAM below 4 GiB would have given the HVM guest wrong ranges."""
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    assert main(["sim", "create", host, "g", "--vcpus", "2", "--memory", "512M", "--type", "hvm", "--paused"]) == 0
    capsys.readouterr()
    before = open(host).read()
    assert main(["vnuma", "g", "--vcpus", "2", "--memory", "512M", "--nodes", "0", "--type", "pvh", "--apply"]) == 2
    err = capsys.readouterr().err
    assert "--type: pvh, but domain g is hvm" in err and "(allowed: hvm)" in err, err
    assert open(host).read() == before


def test_vnuma_apply_sets_a_layout_where_the_built_domains_memory_is(host, capsys, monkeypatch):
    """The vnodes of a built domain follow its memory: they came from a placement dry run
    (which counted the domain's own memory as free), and a layout saying pnode 1 was set
    on a domain with all its memory on node 0; a --nodes that disagrees is refused."""
    from xapi_numa.backends.sim.backend import SimHypervisor
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    assert main(["sim", "create", host, "g", "--vcpus", "2", "--memory", "512M", "--type", "pvh", "--paused",
                 "--soft", "node:0"]) == 0
    domid = int(capsys.readouterr().out)
    assert SimHypervisor(host).node_pages(domid)[1] == 0
    before = open(host).read()
    assert main(["vnuma", "g", "--vcpus", "2", "--memory", "512M", "--nodes", "1", "--type", "pvh", "--apply"]) == 2
    assert "--nodes: vnodes on nodes 1, but domain g's memory is on nodes 0" in capsys.readouterr().err
    assert open(host).read() == before
    out = run_json(capsys, "vnuma", "g", "--vcpus", "2", "--memory", "512M", "--type", "pvh", "--apply", "--json")
    assert [v["pnode"] for v in out["vnodes"]] == [0]
    assert [v.pnode for v in SimHypervisor(host).vnuma(domid).vnodes] == [0]


# an HVM guest's video RAM (xenopsd's default 4 MiB) is in its static max, not its RAM: vnode 0 leaves it out;
# both types' RAM below 4 GiB ends where xenopsd's xenguest leaves the hole
@pytest.mark.parametrize("guest_type, hole, video", [("pvh", 0xF0000000, 0), ("hvm", 0xF0000000, 4 << 20)])
def test_vnuma_apply_lays_memory_around_the_hole_xenopsd_leaves_for_the_type(tmp_path, capsys, monkeypatch,
                                                                           guest_type, hole, video):
    host = str(tmp_path / "big.json")
    assert main(["sim", "init", host, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "4G"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    assert main(["sim", "create", host, "g", "--vcpus", "2", "--memory", "6G", "--type", guest_type, "--paused"]) == 0
    domid = int(capsys.readouterr().out)
    out = run_json(capsys, "vnuma", "g", "--vcpus", "2", "--memory", "6G", "--nodes", "0,1", "--type", guest_type,
                   "--apply", "--json")
    from xapi_numa.backends.sim.backend import SimHypervisor
    ranges = [(r.start, r.end, r.vnode) for r in SimHypervisor(host).vnuma(domid).ranges]
    first = out["vnodes"][0]["memory"]  # what node 0 holds (test_vnuma_apply_named_nodes)
    assert first < hole and ranges == [(0, first - video, 0), (first - video, hole, 1),
                                       (4 << 30, (4 << 30) + (6 << 30) - video - hole, 1)]


def test_move_memory_errors_name_the_flag(host, capsys, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    assert main(["sim", "create", host, "p", "--vcpus", "1", "--memory", "256M", "--type", "pvh"]) == 0
    for argv, fragment in ((["--to", "5"], "--to: no node 5"), (["--to", "1", "--batch", "0"], "--batch: 0 pages")):
        capsys.readouterr()
        assert main(["move-memory", "p", *argv, "--dry-run"]) == 2
        assert fragment in capsys.readouterr().err


def test_placing_a_vm_again_does_not_count_its_own_reservation(host, capsys, monkeypatch):
    # after a failed VM.start the admin places it again: its own reservation is replaced,
    # not counted against it (node 0 has room for it once, not twice)
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    argv = ["place", "--vcpus", "1", "--memory", "1200M", "--mode", "strict", "--nodes", "0",
            "--on-exhaust", "fail", "--vm", VM1, "--json"]
    first = run_json(capsys, *argv)
    assert run_json(capsys, *argv, "--dry-run")["nodes"] == [0]
    again = run_json(capsys, *argv)
    assert first["nodes"] == again["nodes"] == [0]
    assert [r["vm"] for r in run_json(capsys, "reservations", "--json")] == [VM1]


def test_top_json_without_once_is_one_document_per_line(host, capsys, monkeypatch):
    import xapi_numa.cli.queries as queries_cli
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    naps = []

    def nap(seconds):
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(queries_cli.time, "sleep", nap)
    capsys.readouterr()
    main(["top", "--json", "--interval", "0.1"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and [json.loads(line)["outside_over"]["refreshes"] for line in lines] == [1, 2]


def test_the_simulated_dom0_cannot_pause_itself_as_on_xen(host, capsys):
    from xapi_numa.backends.sim.backend import SimHypervisor
    from xapi_numa.errors import HypervisorError
    with pytest.raises(HypervisorError, match="domain 0 cannot pause or unpause itself"):
        SimHypervisor(host).pause(0)
    # the CLI refuses it as it refuses destroying dom0: a bad argument (exit 2), not a failed hypercall
    capsys.readouterr()
    assert main(["sim", "pause", host, "0"]) == 2
    assert "VM: dom0 cannot be paused (allowed: a guest's domid, name or UUID)" in capsys.readouterr().err
    assert not next(d for d in SimHypervisor(host).domains() if d.domid == 0).paused


@pytest.mark.parametrize("argv, fragment", [
    (["--plot", "/nonexistent/dir/x.svg"], "--plot: /nonexistent/dir/x.svg: its directory does not exist"),
    (["--plot", ""], "--plot: ''"),
    (["--plot", "/tmp"], "--plot: /tmp: a directory"),
    (["--schedulers", "credit,credit"], "--schedulers: 'credit' is listed twice"),
])
def test_demo_refuses_a_bad_plot_path_or_scheduler_list_before_it_runs(capsys, argv, fragment):
    capsys.readouterr()
    assert main(["demo", "--schedulers", "credit", *argv]) == 2
    captured = capsys.readouterr()
    assert fragment in captured.err and captured.out == ""


def test_place_refuses_a_running_vm_and_release_of_an_ended_lease_says_so(host, capsys, monkeypatch):
    """place --vm took a running VM (its memory long built) and reserved 40G more; the
    next release reconciled it away first, then said only "no reservation"."""
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    assert main(["sim", "create", host, "B", "--vcpus", "1", "--memory", "256M"]) == 0
    from xapi_numa.backends.sim.backend import SimHypervisor
    uuid = next(d.uuid for d in SimHypervisor(host).domains() if d.name == "B")
    capsys.readouterr()
    assert main(["place", "--vcpus", "1", "--memory", "1G", "--vm", uuid]) == 2
    assert "--vm: {} has a domain here".format(uuid) in capsys.readouterr().err
    assert run_json(capsys, "reservations", "--json") == []
    assert main(["place", "--vcpus", "1", "--memory", "1G", "--vm", uuid, "--dry-run"]) == 0
    # a reservation listed, then ended by the release's own reconcile (its VM started since):
    # said so (it was "no reservation", beside a listing that showed one)
    assert main(["place", "--vcpus", "1", "--memory", "256M", "--vm", VM1]) == 0
    SimHypervisor(host).create("started", 1, 256 << 20, uuid=VM1, auto_numa=False)
    capsys.readouterr()
    assert main(["release", VM1]) == 1
    assert "the one listed had ended" in capsys.readouterr().err


def test_release_reads_the_vm_as_place_does(host, capsys, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    assert main(["place", "--vcpus", "1", "--memory", "256M", "--vm", VM1.upper()]) == 0
    capsys.readouterr()
    assert main(["release", ""]) == 2 and "VM: '' is not a UUID" in capsys.readouterr().err
    assert main(["release", " " + VM1.upper()]) == 0
    assert run_json(capsys, "reservations", "--json") == []
    adhoc = run_json(capsys, "place", "--vcpus", "1", "--memory", "256M", "--json")["reservation"]["vm"]
    assert adhoc.startswith("adhoc-") and main(["release", adhoc]) == 0


@pytest.mark.parametrize("command", [["reservations"], ["release", VM1], ["homing", "--dry-run"],
                                     ["rebalance", "--dry-run"], ["memory-moves"], ["top", "--once"],
                                     ["place", "--vcpus", "1", "--memory", "1G"]])
def test_a_command_of_this_host_refuses_pool_rather_than_act_here(host, capsys, monkeypatch, command):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    capsys.readouterr()
    assert main(["--pool", "https://master", *command]) == 2
    assert "--pool: {} works on this host only".format(command[0]) in capsys.readouterr().err
    assert run_json(capsys, "reservations", "--json") == []


def test_a_small_host_takes_the_default_dom0_and_moves_are_found_as_vms_are(tmp_path, capsys, monkeypatch):
    """sim init on a 2-pCPU host does not blame --dom0-vcpus nobody typed; memory-moves
    finds a VM's moves by domid (any spelling), UUID in any case, or name."""
    path = str(tmp_path / "small.json")
    assert main(["sim", "init", path, "--nodes", "1", "--cpus-per-node", "2", "--memory-per-node", "1G"]) == 0
    path = str(tmp_path / "h.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "2G"]) == 0
    assert main(["sim", "create", path, "g", "--vcpus", "1", "--memory", "64M", "--type", "pvh",
                 "--soft", "node:0"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{path}")
    assert main(["move-memory", "g", "--to", "1", "--max", "8M"]) == 0
    uuid = run_json(capsys, "memory-moves", "--json")["moves"][0]["uuid"]
    domid = str(run_json(capsys, "memory-moves", "--json")["moves"][0]["domid"])
    for spelled in ("g", domid, "0" + domid, uuid.upper()):
        assert [m["uuid"] for m in run_json(capsys, "memory-moves", spelled, "--json")["moves"]] == [uuid], spelled


def test_release_after_a_failed_build_whose_reservation_became_claims(host, capsys, monkeypatch):
    """The CLI's release, as the plugin's: the claimed row of a build whose domain is gone
    is no obstacle (it was refused with NUMA_VM_BUSY)."""
    from xapi_numa.backends.sim.backend import SimHypervisor
    from xapi_numa.ops import upkeep
    from xapi_numa.ops.executor import Executor
    from xapi_numa.state.ledger import Ledger
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    assert main(["place", "--vcpus", "1", "--memory", "512M", "--vm", VM1]) == 0
    sim = SimHypervisor(host)
    ledger = Ledger(host + ".ledger.db")
    domid = sim.create("vm", 1, 256 << 20, uuid=VM1, paused=True, auto_numa=False)
    sim.set_max_memory(domid, 512 << 20)  # the build half way: at its maximum it would be over
    assert upkeep.reservation_changes(upkeep.reconcile(sim, ledger, Executor(sim, ledger.db))) == {VM1: "claimed"}
    sim.destroy(domid)
    capsys.readouterr()
    assert main(["release", VM1]) == 1 and "no reservation" in capsys.readouterr().err  # reconcile ended it
    assert run_json(capsys, "reservations", "--json") == []


def test_a_memory_move_leaves_the_memory_a_starting_vm_reserved(tmp_path, capsys, monkeypatch):
    """move-memory took claimable memory as room: it moved a guest into memory that a
    strict start had reserved on the node, which could then no longer be built there."""
    path = str(tmp_path / "h.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "2G"]) == 0
    assert main(["sim", "create", path, "a", "--vcpus", "1", "--memory", "1G", "--type", "pvh",
                 "--soft", "node:0"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{path}")
    assert main(["place", "--vcpus", "1", "--memory", "1536M", "--mode", "strict", "--nodes", "1",
                 "--on-exhaust", "fail"]) == 0
    capsys.readouterr()
    before = run_json(capsys, "memory", "--json")
    assert main(["move-memory", "a", "--to", "1"]) == 1
    assert "node 1 can take" in capsys.readouterr().err
    assert run_json(capsys, "memory", "--json") == before
    assert main(["move-memory", "a", "--to", "1", "--max", "64M"]) == 0  # what the node can spare moves


def test_the_room_for_a_move_counts_a_started_vms_build_once(tmp_path, capsys, monkeypatch):
    """Until a reconcile ran, a VM started after place had its memory counted twice (its
    build in the free figure, its reservation in the ledger): moves to its node were
    refused though the node had room."""
    from xapi_numa.backends.sim.backend import SimHypervisor

    path = str(tmp_path / "h.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "2G"]) == 0
    assert main(["sim", "create", path, "a", "--vcpus", "1", "--memory", "256M", "--type", "pvh",
                 "--soft", "node:0"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{path}")
    vm = "0b2a7e6e-0000-4000-8000-0000000000aa"
    assert main(["place", "--vm", vm, "--vcpus", "1", "--memory", "1G", "--mode", "strict", "--nodes", "1"]) == 0
    sim = SimHypervisor(path)
    sim.create("started", 1, 1 << 30, hard=sim.topology().cpus_of_nodes([1]), uuid=vm, auto_numa=False)
    capsys.readouterr()
    assert main(["move-memory", "a", "--to", "1"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("module, argv, flag", [
    ("xapi_numa.cli.main", ["--pool", "", "topology"], "--pool"),  # an unset $URL: acted on this host
    ("xapi_numa.cli.main", ["--backend", " ", "topology"], "--backend"),  # opened Xen
    ("xapi_numa.cli.main", ["memory-moves", "--ledger", ""], "--ledger"),
    ("xapi_numa.daemon", ["--ledger", ""], "--ledger"),  # the default database
    ("xapi_numa.daemon", ["--period", "1x"], "--period"),  # seven lines of usage
    ("xapi_numa.rrdd_plugin", ["--file", ""], "--file"),
])
def test_a_blank_or_bad_flag_is_one_line_naming_it_in_every_entry_point(module, argv, flag, tmp_path):
    env = dict(os.environ, XAPI_NUMA_BACKEND="sim:" + str(tmp_path / "none.json"))
    done = subprocess.run([sys.executable, "-m", module] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60, env=env, cwd=str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "argument " + flag in done.stderr, done.stderr
    assert os.listdir(str(tmp_path)) == []
