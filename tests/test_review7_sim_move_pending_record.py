"""Review 7: the simulated mover moves memory of a domain whose dead mover's batch record
awaits recovery; on Xen that move is refused, and in the simulator the record can be lost.

ef2b554 made ``guestmem.move`` leave out the gfns a dead mover left with no frame, "counted
with the granted ones, as the C counts an XTAB gfn".  But libxenuma never gets that far on
Xen: ``xn_mig_move`` creates the batch record first (libxenuma/src/pagemove.c:427,
xn_rec_create -> publish in batchrecord.c:183-205), and a record left by a dead mover that
still needs recovery (the record path is per domid, backends/xen_records.py record_path)
makes it return -EEXIST before any map or pause; the Xen backend says so
(backends/xen.py:320 "a batch record a dead mover left awaits recovery ... --recover").
(Even without the record, xn_batch_map before the pause fails on a gfn with no frame: XTAB
is counted as granted only for a gfn given back between the map and the pause.)

The simulator instead moves the batch, and when that second batch keeps its own record
(a lost copy-back, a failed unpause, a second death) ``d.record = list(released)`` replaces
the dead mover's: recovery then backs nothing of the first batch, the first mover's gfns
stay without a frame for good (``recover_move`` returns None afterwards), and the guest
stays paused (pause_count 2 -> 1).
"""
import errno

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.guestmem import UNBACKED, node_lookup
from xapi_numa.core.topology import Topology
from xapi_numa.errors import HypervisorError

MiB = 1 << 20
FIRST = list(range(0x200, 0x240))
SECOND = list(range(0x300, 0x340))


def _host(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "host.json"), Topology.uniform(2, 2, 1 << 30), "credit2", 3,
                            dom0_vcpus=2, dom0_memory=64 * MiB)
    return hv, hv.create("a", 2, 32 * MiB, dtype="pvh", load="busy")


@pytest.mark.parametrize("gfns", [FIRST, SECOND], ids=["the-dead-movers-gfns", "other-gfns"])
def test_a_move_while_a_dead_movers_record_awaits_recovery_is_refused_as_on_xen(tmp_path, gfns):
    hv, a = _host(tmp_path)
    hv.move_pages(a, FIRST, 1, fault="die-after-release")
    with pytest.raises(HypervisorError) as info:
        hv.move_pages(a, gfns, 0)
    assert info.value.errno == errno.EEXIST


@pytest.mark.parametrize("fault", ["copy-back", "unpause", "die-after-release"])
def test_recovery_after_a_second_batch_restores_the_dead_movers_gfns(tmp_path, fault):
    hv, a = _host(tmp_path)
    hv.move_pages(a, FIRST, 1, fault="die-after-release")
    try:
        hv.move_pages(a, SECOND, 0, fault=fault)
    except HypervisorError:
        pass  # refused (EEXIST, as on Xen): fine
    while hv.recover_move(a):
        pass
    with hv.store.snapshot() as host:
        d = host.domain(a)
        look = node_lookup(d.gfn_runs or [])
        unbacked = [g for g in FIRST + SECOND if look(g) == UNBACKED]
        assert not unbacked, "{} gfns left with no frame and no record".format(len(unbacked))
        assert d.pause_count == 0


def test_a_dead_movers_record_no_journal_row_names_is_recovered_by_the_sweep(tmp_path, capsys):
    """Recovery's sweep for records no journal row names (a foreground scan killed in its
    probe pause) found none on the simulator, whose batch_records() was the port's default:
    `memory-moves --recover` recovered nothing and the guest stayed paused."""
    from xapi_numa.cli.main import main
    hv, domid = _host(tmp_path)
    hv.move_pages(domid, FIRST, 1, fault="die-after-release")  # no journal row: the port called directly
    assert hv.batch_records() == [domid]
    assert main(["--backend", "sim:" + str(tmp_path / "host.json"), "memory-moves", "--recover", "--ledger",
                 str(tmp_path / "l.db")]) == 0
    assert "recovered: " in capsys.readouterr().out
    assert hv.batch_records() == [] and not next(d for d in hv.domains() if d.domid == domid).paused
