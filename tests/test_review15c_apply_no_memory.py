"""``vnuma VM --apply`` on a domain whose memory is on no node in a meaningful share (a
domain created but not built yet, as xenopsd's domain_create leaves it, or one striped
thin over many nodes) planned vnodes "where its memory is": none, and answered
"--nodes: none: each pnode once, at least one" though no --nodes was given.  It now
says what is wrong with the domain and that --nodes names the pnodes, and changes nothing."""
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main


def test_apply_to_a_domain_with_no_memory_yet_says_so_and_names_the_remedy(tmp_path, capsys, monkeypatch):
    host = str(tmp_path / "h.json")
    assert main(["sim", "init", host, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "4G"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{host}")
    hv = SimHypervisor(host)
    domid = hv.create_shell("shell", 2, 1 << 30, dtype="hvm")
    capsys.readouterr()
    assert main(["vnuma", "shell", "--vcpus", "2", "--memory", "1G", "--apply"]) == 2
    err = capsys.readouterr().err
    assert "--nodes: none" not in err and "shell" in err and "--nodes" in err, err
    assert SimHypervisor(host).vnuma(domid) is None
    # naming the pnodes, the layout is set before the build, as libxl sets it
    assert main(["vnuma", "shell", "--vcpus", "2", "--memory", "1G", "--apply", "--nodes", "0,1"]) == 0
    assert SimHypervisor(host).vnuma(domid).pnodes == (0, 1)
