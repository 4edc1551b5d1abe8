"""Review 15a: a home the affinity fix-up moves in a cycle is not in that cycle's snapshot.

The rebalancer looked in the same cycle on the snapshot taken before the fix-up's
writes: it counted the VM on the node it had just left, and sent another busy VM
to the node it had just been homed on (then moved a third back: two moves, and
their memory, where a fresh look makes none)."""
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core import locality
from xapi_numa.core.topology import Topology
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMoves


def test_a_home_the_fixup_moves_is_seen_before_the_rebalancer_moves_another(tmp_path):
    path = str(tmp_path / "h.json")
    sim = SimHypervisor.init(path, Topology.uniform(2, 4, 8 << 30), "credit2", 1)
    topo = sim.topology()
    n0, n1 = topo.cpus_of_nodes([0]), topo.cpus_of_nodes([1])
    dom = {name: sim.create(name, 2, 1 << 30, soft=soft, load="idle" if name == "Y" else "busy", dtype="pvh")
           for name, soft in (("B", n0), ("C", n0), ("Y", n0), ("Z", n1), ("X", n1))}
    x_uuid = next(d.uuid for d in sim.domains() if d.domid == dom["X"])
    # X is not the rebalancer's (numa_rebalance=false): only the fix-up homes it; its cycles are 1, 4, 7
    rt = Runtime(sim, Database(path + ".db"), Settings(fixup_every=3), opted_out=lambda uuid: uuid == x_uuid)
    for cycle in range(1, 9):
        if cycle == 3:  # Y gets busy, and X's soft affinity is pointed away from its memory (node 1)
            sim.set_load(dom["Y"], "busy")
            for v in range(2):
                sim.set_vcpu_affinity(dom["X"], v, soft=n0)
        sim.run(2.0)
        rt.cycle()
    assert locality.home_nodes(sim.vcpus(dom["X"]), topo) == {1}  # the fix-up homed it with its memory
    # node 0: B, C, Y (6 busy vCPUs), node 1: Z, X (4): any move only trades one overload for another
    assert HomeMoves(rt.db).recent() == []
