"""The host queries (``top``, ``memory``, ``vcpus``) while VMs come and go: a VM destroyed
between the domain list and its own reads is left out, never the query's failure."""
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.errors import HypervisorError
from xapi_numa.ops import queries


class DestroyedAfterTheList:
    """The simulated host, with one guest destroyed just after ``domains()`` is read."""

    def __init__(self, hv, domid):
        self.hv, self.domid, self.armed = hv, domid, True

    def __getattr__(self, name):
        return getattr(self.hv, name)

    def domains(self):
        listed = self.hv.domains()
        if self.armed:
            self.armed = False
            self.hv.destroy(self.domid)
        return listed


@pytest.fixture
def host(tmp_path):
    topo = Topology.uniform(2, 2, 2 << 30)
    hv = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit2", 1, dom0_vcpus=1, dom0_memory=128 << 20)
    keep = hv.create("keep", 1, 64 << 20, load="idle")
    gone = hv.create("gone", 1, 64 << 20, load="idle")
    return hv, keep, gone


@pytest.mark.parametrize("query", ["top", "memory", "vcpus"])
def test_a_vm_destroyed_during_the_query_is_left_out(host, query):
    hv, keep, gone = host
    racing = DestroyedAfterTheList(hv, gone)
    if query == "top":
        names = [vm["name"] for vm in queries.top_report(racing)["vms"]]
    elif query == "memory":
        names = [r["name"] for r in queries.memory_rows(racing)]
    else:
        names = [r["name"] for r in queries.vcpu_rows(racing)]
    assert "keep" in names and "gone" not in names


def test_a_vm_asked_for_by_name_that_is_gone_is_still_an_error(host):
    hv, keep, gone = host
    hv.destroy(gone)
    with pytest.raises(HypervisorError):
        queries.vcpu_rows(hv, [gone])
