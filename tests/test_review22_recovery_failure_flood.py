"""xapi-numad's mover recovery: a recovery that kept failing was logged every cycle.

A dead mover's row whose recovery the hypervisor refuses (its batch record unreadable,
the unpause refused) stays, and every cycle tries it again, as it should; but each try's
"could not recover" note was a WARNING line: one a second, for as long as it lasted
(100 cycles, 100 lines).  It is now said once while it lasts, again if it comes back,
and a recovery that works is still said every time."""
import errno
import logging

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.errors import HypervisorError
from xapi_numa.ops.runtime import LOG, Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.moves import INTERRUPTED, MoveJournal


def _recoveries(caplog):
    return [r.fields["what"] for r in caplog.records if r.getMessage() == "page move recovered"]


def test_a_recovery_that_keeps_failing_is_said_once_while_it_lasts(tmp_path, monkeypatch, caplog):
    topo = Topology.uniform(2, 4, 4 << 30)
    sim = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit", 1, dom0_vcpus=1, dom0_memory=128 << 20)
    domid = sim.create("vm", 2, 128 << 20, soft=topo.cpus_of_nodes([0]), load="idle")
    db = Database(str(tmp_path / "l.db"))
    rt = Runtime(sim, db, Settings())
    journal = MoveJournal(db)
    d = next(x for x in sim.domains() if x.domid == domid)
    journal.begin(d, 1, {"vm": "vm"}).release()  # a mover that died: its row says running, nobody holds its lock
    errors = [errno.EIO]

    def refused(dom):
        if errors:
            raise HypervisorError(errors[0], "recovering domain {}: {}".format(dom, errno.errorcode[errors[0]]))
        return "domain {} unpaused".format(dom)

    monkeypatch.setattr(sim, "recover_move", refused)
    caplog.set_level(logging.INFO, logger=LOG.name)
    for _ in range(30):
        rt.cycle()
    said = _recoveries(caplog)
    assert len(said) == 1 and said[0].startswith("could not recover domain {}".format(domid))
    assert journal.status(d.uuid).state != INTERRUPTED  # still tried every cycle: the row stays for the next
    errors[0] = errno.EBADF  # another failure: said
    rt.cycle()
    rt.cycle()
    assert len(_recoveries(caplog)) == 2 and "EBADF" in _recoveries(caplog)[1]
    errors.clear()  # it works at last: said, and the row ends
    rt.cycle()
    said = _recoveries(caplog)
    assert len(said) == 4 and said[2] == "domain {} unpaused".format(domid) and "marked interrupted" in said[3]
    assert journal.status(d.uuid).state == INTERRUPTED
    for _ in range(3):
        rt.cycle()
    assert len(_recoveries(caplog)) == 4  # nothing left to recover, nothing said
