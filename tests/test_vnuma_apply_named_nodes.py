"""``vnuma --apply`` with the pnodes named (``--nodes``, ``--split``): the vnodes' memory
followed their vCPUs, not where the built domain's memory is.  A 10G HVM domain built
with 5632M on node 0 and 4608M on node 1 got vnodes of 5G each with ``--nodes 0,1``: Xen
was told vnode 1 holds 5G on pnode 1, which holds 4608M of it (512M of vnode 1's range
on node 0), while the same command without ``--nodes`` laid them as the memory is.  Now
named nodes only order the vnodes; their memory is the bytes each node holds, as the
docs/vnuma.md says (``--apply``: "bytes as they hold them")."""
import pytest
from test_cli import run_json

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main

MiB = 1 << 20


@pytest.mark.parametrize("named", [[], ["--nodes", "0,1"], ["--split", "0"]])
def test_named_pnodes_take_the_bytes_each_node_holds(tmp_path, capsys, monkeypatch, named):
    host = str(tmp_path / "host.json")
    # (4 nodes, two sockets: half 0 of the split host is nodes 0 and 1)
    assert main(["sim", "init", host, "--nodes", "4", "--cpus-per-node", "2", "--memory-per-node", "8G",
                 "--distances", "10,20,30,30;20,10,30,30;30,30,10,20;30,30,20,10"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    assert main(["sim", "create", host, "s", "--vcpus", "2", "--memory", "9G", "--type", "hvm", "--paused",
                 "--soft", "node:0"]) == 0
    domid = int(capsys.readouterr().out)
    held = SimHypervisor(host).node_pages(domid)
    # (node 0 filled first, then its neighbour: 5G and 4G.  A 10G one now lands 5G and 5G, its build's overhead
    # taken from node 0 first, where a split of equal halves would not show which rule laid the vnodes)
    assert held[0] != held[1] and not held[2] and not held[3]
    out = run_json(capsys, "vnuma", "s", "--vcpus", "2", "--memory", "9G", "--apply", "--no-xapi", "--json", *named)
    assert [(v["pnode"], v["memory"]) for v in out["vnodes"]] == [(0, held[0] * 4096), (1, held[1] * 4096)], out
    layout = SimHypervisor(host).vnuma(domid)
    assert [(v.pnode, v.memory + (4 * MiB if v.index == 0 else 0)) for v in layout.vnodes] == \
        [(0, held[0] * 4096), (1, held[1] * 4096)]
