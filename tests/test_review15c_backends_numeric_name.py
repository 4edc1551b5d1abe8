"""``xapi-numa backends VM`` shows that VM's backend work only.  The command resolved
VM to a domain and then filtered the report by the text of its domid, matched against
every domain's domid, name and UUID: a VM named "1" (xapi allows such names; `find_domain`
reaches it by UUID) had its threads and IRQs listed under domain 1's report too."""
import json

import attrs

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli import backends as cli_backends
from xapi_numa.cli.main import main
from xapi_numa.core.topology import Topology
from xapi_numa.ops import observe


def test_the_report_of_one_vm_leaves_out_a_vm_whose_name_is_its_domid(tmp_path, capsys, monkeypatch):
    host = str(tmp_path / "host")
    hv = SimHypervisor.init(host, Topology.uniform(2, 2, 4 << 30), "credit2", seed=1, dom0_vcpus=2)
    a = hv.create("a", 1, 256 << 20, dtype="pvh")
    b = hv.create("b", 1, 256 << 20, dtype="pvh")

    real_take = observe.take

    def take(hv, *args, **kw):  # domain b is the VM xapi calls "<a's domid>"
        snap = real_take(hv, *args, **kw)
        return attrs.evolve(snap, domains=tuple(attrs.evolve(d, name=str(a)) if d.domid == b else d
                                                for d in snap.domains))

    monkeypatch.setattr(cli_backends.observe, "take", take)
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + host)
    capsys.readouterr()
    assert main(["backends", "a", "--json"]) == 0
    assert [vm["domid"] for vm in json.loads(capsys.readouterr().out)["vms"]] == [a]
