"""Review 15a: a shut-down domain's vCPUs want no CPU.

Between a guest's shutdown (a crash, a poweroff) and its destruction, Xen keeps the
domain with every vCPU paused for the shutdown (``paused_for_shutdown``): neither
running nor blocked, and XEN_DOMINF_paused (a controller's pause) is not set.  The
adapter read such a vCPU as runnable: the rebalancer counted a whole pCPU of demand
per vCPU of a guest being core-dumped (xenopsd's coredump_and_restart, minutes for a
large one) and moved other VMs away from its node for it."""
import pytest

xen = pytest.importorskip("xapi_numa.backends.xen")

from xapi_numa.core.host import DomainInfo  # noqa: E402
from xapi_numa.core.snapshot import HostSnapshot  # noqa: E402
from xapi_numa.ops.rebalancing import Rebalancer  # noqa: E402
from xapi_numa.state.db import Database  # noqa: E402
from tests.test_review10_offline_cpus import TwoNodeHost  # noqa: E402



class ShutDownGuest(TwoNodeHost):
    """Domain 1 shut down, not yet destroyed: its vCPU neither running nor blocked."""

    def xn_domains(self, h, first, count, out):
        got = super().xn_domains(h, first, count, out)
        for i in range(got):
            if out[i].domid == 1:
                out[i].flags = self.XN_DOM_SHUTDOWN
        return got

    def xn_vcpu_info(self, h, domid, vcpu, info):
        super().xn_vcpu_info(h, domid, vcpu, info)
        if domid == 1:
            info.running, info.blocked, info.cpu_time_ns = 0, 0, 5 * 10 ** 9
        return 0


def test_a_shut_down_domains_vcpus_are_paused_and_want_no_cpu(monkeypatch, tmp_path):
    monkeypatch.setattr(xen, "lib", ShutDownGuest())
    hv = xen.XenHypervisor()
    assert [v.state for v in hv.vcpus(1)] == ["paused"]
    topo = hv.topology()
    rb = Rebalancer(Database(str(tmp_path / "db")))
    dom = DomainInfo(1, "crashed", "uuid-1", 1, 1 << 30, 1 << 30, False, "hvm")
    for t in (10.0, 12.0):
        rb.observe_demand(HostSnapshot(topo, t, (dom,), {1: tuple(hv.vcpus(1))}))
    assert rb.demand == {"uuid-1": 0.0}
