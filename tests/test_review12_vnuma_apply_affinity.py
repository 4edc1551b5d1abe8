"""Review 12 (vNUMA): ``vnuma --apply`` set Xen's layout but left every vCPU's soft
affinity as the builder had it (every CPU here), so vnode 1's vCPU ran on node 0 while
the guest took it for one of vnode 1's, and the affinity fix-up leaves such a wide soft
affinity alone.  libxl's ``set_vnuma_affinity`` gives each vnode's vCPUs their pnode's
CPUs; ``--apply`` now does the same (and the domain's node affinity its pnodes)."""
from test_cli import run_json

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main


def test_apply_points_each_vnodes_vcpus_at_its_pnode(tmp_path, capsys, monkeypatch):
    host = str(tmp_path / "big.json")
    assert main(["sim", "init", host, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "4G"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    assert main(["sim", "create", host, "g", "--vcpus", "4", "--memory", "6G", "--type", "pvh", "--paused"]) == 0
    domid = int(capsys.readouterr().out)
    hv = SimHypervisor(host)
    assert all(v.soft == frozenset(range(4)) for v in hv.vcpus(domid))  # as built: anywhere
    out = run_json(capsys, "vnuma", "g", "--vcpus", "4", "--memory", "6G", "--nodes", "0,1", "--type", "pvh",
                   "--apply", "--json")
    assert out["affinity"] == "set", out
    topo = hv.topology()
    soft = {v.vcpu: v.soft for v in SimHypervisor(host).vcpus(domid)}
    for vnode in out["vnodes"]:
        for vcpu in vnode["vcpus"]:
            assert soft[vcpu] == topo.nodes[vnode["pnode"]].cpus, (vcpu, soft)
    assert SimHypervisor(host).node_affinity(domid) == frozenset({0, 1})
    # the plan alone (no --apply) sets nothing and says nothing of affinity (g's build left node 1
    # about 100 MiB: its GiBs alternate between the nodes, 1 GiB extents, meminit_hvm, and it took
    # node 1's memory before node 0's DMA zone)
    out = run_json(capsys, "vnuma", "h", "--vcpus", "2", "--memory", "128M", "--nodes", "0,1", "--json")
    assert "affinity" not in out
