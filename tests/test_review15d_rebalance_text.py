"""Review 15d: ``rebalance --dry-run`` without --json showed a home move's actions as
``node affinity [2]`` (a Python list) and ``vCPU 0 soft affinity 4 CPUs`` (a count): the
admin could not see which CPUs the vCPUs would be moved to, which the JSON gives, and
homing --dry-run shows in Xen's syntax (``cpus 0-27``)."""
import json

from xapi_numa.backends.sim import scenarios
from xapi_numa.cli.main import main


def test_the_dry_run_text_names_the_cpus_and_nodes_in_xens_syntax(tmp_path, capsys, monkeypatch):
    path = str(tmp_path / "asym.json")
    sim = scenarios.build("asymmetric", path, 1)
    sim.run(4)
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + path)
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    assert main(["rebalance", "--dry-run", "--samples", "1", "--json"]) == 0
    actions = json.loads(capsys.readouterr().out)["actions"]
    soft = next(a for a in actions if a["action"] == "SetAffinity")
    node = next(a for a in actions if a["action"] == "SetNodeAffinity" and a["uuid"] == soft["uuid"])
    cpus = sim.topology().format_cpus(soft["soft"])
    assert main(["rebalance", "--dry-run", "--samples", "1"]) == 0
    text = capsys.readouterr().out
    rows = [line.split(None, 2) for line in text.splitlines() if soft["uuid"] in line]
    assert ["SetNodeAffinity", soft["uuid"], "node affinity {}".format(node["nodes"][0])] in rows, text
    assert ["SetAffinity", soft["uuid"], "vCPU {} soft affinity {}".format(soft["vcpu"], cpus)] in rows, text
    assert "-" in cpus or "," in cpus  # a CPU list, not a count


def test_an_automatic_node_affinity_and_a_hard_affinity_are_said_in_words():
    from xapi_numa.cli.rebalance import _what
    from xapi_numa.core.topology import Topology

    topo = Topology.uniform(2, 4, 1 << 30)
    assert _what({"action": "SetNodeAffinity", "nodes": None}, topo) == "node affinity automatic"
    assert _what({"action": "SetNodeAffinity", "nodes": [0, 1]}, topo) == "node affinity 0-1"
    assert _what({"action": "SetAffinity", "vcpu": 3, "hard": list(range(8)), "soft": [4, 5, 6, 7]},
                 topo) == "vCPU 3 hard affinity all, soft affinity 4-7"
