"""xapi-numad's memory following: a step the mover refused was a WARNING every period.

A VM whose home the rebalancer moved gets a follow step every period until its memory is
local or a hold-down (300 s) passes without one made.  A mover that refuses the VM each
time was said each time: on the asymmetric scenario with every mover refused, 1493
"memory move" warnings in 20 simulated minutes (150 per VM per home move, one every 2 s).
The first refusal of a home move's following is said; the next ones are not, until a step
of it starts or the following ends (the next home move's are said again)."""
import collections
import logging

from xapi_numa.backends.sim import scenarios
from xapi_numa.errors import NotMovable
from xapi_numa.ops.runtime import LOG, Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HomeMoves


def test_a_refused_follow_step_is_said_once_per_home_move_not_every_period(tmp_path, caplog):
    path = str(tmp_path / "f.json")
    sim = scenarios.build("asymmetric", path, seed=2)
    rt = Runtime(sim, Database(path + ".db"), Settings())

    def refuse(hv, db, action):
        raise NotMovable(action.uuid, "its memory cannot move now (for the test)", "vm")

    rt.executor.start_mover = refuse
    caplog.set_level(logging.INFO, logger=LOG.name)
    for _ in range(200):  # 400 s: longer than a hold-down
        sim.run(2.0)
        rt.cycle()
    said = collections.Counter(r.fields["domid"] for r in caplog.records
                               if r.getMessage() == "memory move" and r.fields["status"] != "done")
    domid = {d.uuid: d.domid for d in sim.domains()}
    moved = collections.Counter(domid[m.uuid] for m in HomeMoves(rt.db).recent())
    assert said and moved
    assert all(n <= moved[uuid] for uuid, n in said.items()), (said, moved)
