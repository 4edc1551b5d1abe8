"""Xen 4.17 keeps a domain's vNUMA distances in one page (vnuma_alloc in
xen/common/domctl.c, XSA-77): nr_vnodes * nr_vnodes * 4 bytes at most 4096, so at
most 32 vnodes; XEN_DOMCTL_setvnumainfo answers EINVAL above that, and xl fails to
build such a guest.  The planner said it refuses every layout Xen cannot honour, yet
printed (and --apply tried, ending in a bare errno) a 33-vnode plan on a host with
more nodes; the simulator, said to check as Xen does, took it."""
import errno

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core import vnuma
from xapi_numa.core.topology import Topology
from xapi_numa.errors import HypervisorError, InvalidArgument

GiB = 1 << 30
TOPO = Topology.uniform(40, 1, 4 * GiB)


def guest(vcpus):
    return vnuma.GuestSpec("hvm", vcpus, 40 * GiB)


def test_at_most_32_vnodes_are_planned_with_a_message_naming_the_limit():
    assert len(vnuma.plan_follow(TOPO, guest(32), range(32)).vnodes) == 32
    with pytest.raises(InvalidArgument) as e:
        vnuma.plan_follow(TOPO, guest(40), range(33))
    assert e.value.field == "nodes" and "32" in e.value.allowed and "33" in e.value.detail


def test_a_split_half_of_more_than_32_nodes_is_refused_too():
    topo = Topology.uniform(66, 1, 4 * GiB)
    with pytest.raises(InvalidArgument) as e:
        vnuma.plan_split(topo, guest(40), 0)
    assert e.value.field == "half"


def test_the_simulator_refuses_33_vnodes_as_xen_does(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "h"), TOPO, "credit2", seed=1, dom0_vcpus=1)
    d = hv.create("g", 33, 33 * 64 << 20, dtype="hvm", paused=True)
    ok = vnuma.plan_follow(TOPO, vnuma.GuestSpec("hvm", 33, 33 * 64 << 20), range(32))
    bad = vnuma.VnumaPlan("follow", tuple(
        vnuma.VNode(i, i, 64 << 20, (i,), tuple(10 if i == j else 20 for j in range(33))) for i in range(33)), {})
    hv.set_vnuma(d, ok, vnuma.memory_ranges(ok))
    with pytest.raises(HypervisorError) as e:
        hv.set_vnuma(d, bad, vnuma.memory_ranges(bad))
    assert e.value.errno == errno.EINVAL
