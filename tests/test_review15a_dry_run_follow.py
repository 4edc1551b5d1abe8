"""Review 15a: ``rebalance --dry-run`` lists what xapi-numad then does in that period.

The daemon starts a moved VM's memory following its new home in the period the home
moves (its first page move, as the writes are made); the dry run listed the home's
writes only, so its actions left out the page move that came with them."""
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.actions import MoveMemory, SetNodeAffinity
from xapi_numa.core.topology import Topology
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.moves import MoveJournal


def _host(tmp_path):
    path = str(tmp_path / "h.json")
    sim = SimHypervisor.init(path, Topology.uniform(2, 4, 8 << 30), "credit2", 1)
    n0 = sim.topology().cpus_of_nodes([0])
    for name in "ABC":
        sim.create(name, 2, 1 << 30, soft=n0, load="busy", dtype="pvh")
    sim.run(4.0)
    return sim, path


def test_the_dry_run_lists_the_page_move_the_daemon_starts_with_the_home(tmp_path):
    sim, path = _host(tmp_path)
    dry = Runtime(sim, Database(path + ".dry.db"), Settings(fixup_every=0)).rebalance_dry_run(samples=1)
    homes = [(a.uuid, a.nodes) for a in dry.actions if isinstance(a, SetNodeAffinity)]
    assert len(homes) == 1
    uuid, (to,) = homes[0][0], tuple(homes[0][1])
    follows = [a for a in dry.actions if isinstance(a, MoveMemory)]
    assert [(a.uuid, a.to) for a in follows] == [(uuid, to)] and follows[0].max_pages > 0

    rt = Runtime(sim, Database(path + ".db"), Settings())
    for _ in range(3):
        rt.cycle()
        if MoveJournal(rt.db).status(uuid) is not None:
            break
        sim.run(2.0)
    row = MoveJournal(rt.db).status(uuid)  # the daemon: the same home, its memory following from that period
    assert row is not None and row.to == to
