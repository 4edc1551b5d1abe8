"""xapi-numad's cycle under credit2 when a node stays busier than another: homing holds
a VM pushed out again after its pins were undone for longer (core/homing.py,
``holds_longer``), instead of undoing its pins after ``HOLD_MAX`` for the balancer to
push it out again.

A 2x4 host, credit2: node 0 homes two busy 2-vCPU guests (4 runnable vCPUs on 4
pCPUs), node 1 one (2 on 4): credit2's balancer keeps pushing node 0's vCPUs to node 1,
away from their memory, though node 0 has room for them.
"""
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.homing import BOUNCED_HOLD_MAX, HOLD_MAX
from xapi_numa.core.topology import Topology
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database


def uneven_host(path, seed):
    topo = Topology.uniform(2, 4, 4 << 30)
    sim = SimHypervisor.init(path, topo, "credit2", seed, dom0_vcpus=1, dom0_memory=128 << 20)
    for name, node in (("A", 0), ("B", 0), ("C", 1)):
        sim.create(name, 2, 256 << 20, soft=topo.cpus_of_nodes([node]), load="busy", dtype="pvh")
    return sim


def test_a_vm_pushed_out_again_is_held_past_hold_max_and_let_go_in_time(tmp_path):
    sim = uneven_host(str(tmp_path / "host.json"), 1)
    rt = Runtime(sim, Database(str(tmp_path / "db")), Settings(rebalancing=False))
    oldest = []
    for _ in range(90):
        sim.run(1.0)
        rt.cycle()
        pins = rt.pins.entries()
        oldest.append(max((sim.clock() - p.pinned_at for p in pins), default=0.0))
    assert rt.restored_at, "homing never undid a pin: the scenario shows no bounce"
    assert max(oldest) > HOLD_MAX + 1, "no VM was held past HOLD_MAX"
    assert max(oldest) <= BOUNCED_HOLD_MAX + 1, "a pin outlived BOUNCED_HOLD_MAX"


def test_what_homing_remembers_of_a_vm_goes_with_it(tmp_path):
    sim = uneven_host(str(tmp_path / "host.json"), 1)
    rt = Runtime(sim, Database(str(tmp_path / "db")), Settings(rebalancing=False))
    for _ in range(40):
        sim.run(1.0)
        rt.cycle()
    remembered = set(rt.restored_at) | rt.bounced_vms
    assert remembered, "homing never undid a pin: nothing to forget"
    for d in sim.domains():
        if d.domid != 0:
            sim.destroy(d.domid)
    sim.run(1.0)
    rt.cycle()
    assert not rt.restored_at and not rt.bounced_vms
