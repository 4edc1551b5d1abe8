"""xapi-numa-rrdd's time outside soft affinity: a VM whose vCPUs could not be read at one
sample lost its running total.

``numa_node_nonaffine_vcpus`` is a derive: xcp-rrdd publishes its rate.  A VM left out of
one snapshot's domains because its vCPUs could not be read (``HostSnapshot.unread``: not
gone) was dropped from the tally as if gone, and came back at 0: its counter went back
from 5.0 to 0.0 (a counter reset to xcp-rrdd) after one failed read.  A VM not read keeps
its total, as every other cache keeps what is known of an unread domain."""
import attrs
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.ops import metrics, observe


def test_a_vm_not_read_at_one_sample_keeps_its_time_outside_soft_affinity(tmp_path):
    topo = Topology.uniform(2, 4, 4 << 30)
    sim = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit", 1, dom0_vcpus=1, dom0_memory=128 << 20)
    domid = sim.create("A", 2, 256 << 20, soft=topo.parse_cpus("node:1"), load="idle")
    snap = observe.take(sim)
    a = next(d for d in snap.domains if d.domid == domid)
    vcpus = dict(snap.vcpus)
    vcpus[domid] = tuple(attrs.evolve(v, cpu=0, state="running") for v in snap.vcpus[domid])  # both away
    first = attrs.evolve(snap, vcpus=vcpus)
    caps = sim.capabilities()
    _, tally = metrics.collect(first, caps, metrics.NonaffineTally(), "all")
    _, tally = metrics.collect(attrs.evolve(first, time=first.time + 5.0), caps, tally, "all")
    assert tally.seconds[a.uuid] == pytest.approx(5.0)
    unread = attrs.evolve(first, time=first.time + 6.0, domains=tuple(d for d in snap.domains if d.domid != domid),
                          unread={a.uuid: domid})
    _, tally = metrics.collect(unread, caps, tally, "all")
    assert tally.seconds.get(a.uuid) == pytest.approx(5.0)  # not read: nothing charged, nothing lost
    sources, tally = metrics.collect(attrs.evolve(first, time=first.time + 8.0), caps, tally, "all")
    got = metrics.by_name(sources)[("vm " + a.uuid, "numa_node_nonaffine_vcpus")].value
    assert got >= 5.0  # a counter never goes back while its VM runs
    gone = attrs.evolve(first, time=first.time + 9.0, domains=tuple(d for d in snap.domains if d.domid != domid))
    _, tally = metrics.collect(gone, caps, tally, "all")
    assert a.uuid not in tally.seconds  # gone: dropped
