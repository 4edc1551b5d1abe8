"""A dry run and a status query change nothing, not even a dead page mover's leftovers.

``move-memory --dry-run`` and the plugin's read-only ``memory_move_status`` ran page-move
recovery: a guest a dead mover left paused was unpaused, the raise of max_pages given back,
the batch record deleted and the journal row rewritten.  They now say what recovery would
do, and who does it; ``memory-moves`` lists it too, and ``memory-moves --recover`` (with
xapi-numad and every real move) is what recovers."""
import json

import pytest
from test_plugin import ok, run

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.core.topology import Topology
from xapi_numa.ops import move_memory
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import MoveJournal

MiB = 1 << 20


def _die_mid_batch(sim, db, vm):
    """A mover killed inside a batch's pause window: gfns released, guest paused, its journal
    row still running and nobody holding its lock."""
    plan = move_memory.prepare(sim, vm, 1)
    assert sim.move_pages(plan.domain.domid, plan.batches[1], 1, fault="die-after-release").stage == "died"
    MoveJournal(db).begin(plan.domain, 1, {"vm": vm}).release()
    return plan.domain


def _left_as_it_was(sim, db, d):
    assert next(x for x in sim.domains() if x.domid == d.domid).paused
    assert sim.batch_records() == [d.domid]
    assert MoveJournal(db).status(d.uuid).state == "running"


@pytest.fixture
def host(tmp_path):
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 2 << 30), "credit2", 1,
                             dom0_vcpus=1, dom0_memory=128 * MiB)
    sim.create("vm", 2, 256 * MiB, soft=frozenset({0, 1, 2, 3}), dtype="pvh", load="busy")
    ledger = Ledger(str(tmp_path / "l.db"))
    return sim, ledger.db, (sim.path, ledger.db.path)


def _cli(capsys, paths, *words):
    """The CLI's standard output, run on the host's simulator and state database."""
    assert main(["--backend", "sim:" + paths[0]] + list(words) + ["--ledger", paths[1]]) == 0
    return capsys.readouterr().out


def test_a_dry_run_says_what_recovery_would_do_and_does_none_of_it(host, capsys):
    sim, db, paths = host
    d = _die_mid_batch(sim, db, "vm")
    before = open(sim.path).read()
    answer = json.loads(_cli(capsys, paths, "move-memory", "vm", "--to", "1", "--dry-run", "--no-xapi", "--json"))
    _left_as_it_was(sim, db, d)
    assert open(sim.path).read() == before  # the simulated host: not a byte changed
    [note] = answer["recovery_pending"]
    assert "the mover of VM vm" in note and "died" in note and "stays paused" in note, note
    assert "`xapi-numa memory-moves --recover` or xapi-numad" in note, note
    text = _cli(capsys, paths, "move-memory", "vm", "--to", "1", "--dry-run", "--no-xapi")
    assert "recovery: " + note in text.splitlines()
    _left_as_it_was(sim, db, d)


def test_the_listing_says_what_recovery_would_do_and_recover_does_it(host, capsys):
    sim, db, paths = host
    d = _die_mid_batch(sim, db, "vm")
    listed = json.loads(_cli(capsys, paths, "memory-moves", "--json"))
    assert listed["recovered"] == [] and len(listed["recovery_pending"]) == 1
    assert "died" in listed["recovery_pending"][0]
    assert "recovery: the mover of VM vm" in _cli(capsys, paths, "memory-moves")
    _left_as_it_was(sim, db, d)
    done = json.loads(_cli(capsys, paths, "memory-moves", "--recover", "--json"))
    assert any("unpaused" in n for n in done["recovered"]) and done["recovery_pending"] == []
    assert not next(x for x in sim.domains() if x.domid == d.domid).paused and sim.batch_records() == []
    assert MoveJournal(db).status(d.uuid).state == "interrupted"
    assert json.loads(_cli(capsys, paths, "memory-moves", "--json"))["recovery_pending"] == []


def test_a_record_no_journal_row_names_is_listed_not_recovered(host, capsys):
    """A probe scan killed in its pause writes no row: the record alone says recovery is due."""
    sim, db, paths = host
    domid = next(x.domid for x in sim.domains() if x.name == "vm")
    sim.move_pages(domid, list(range(0x200, 0x240)), 1, fault="die-after-release")
    [note] = json.loads(_cli(capsys, paths, "memory-moves", "--json"))["recovery_pending"]
    assert note.startswith("domain {} has a page-move batch record".format(domid)), note
    assert sim.batch_records() == [domid] and next(x for x in sim.domains() if x.domid == domid).paused


def test_a_live_movers_row_is_not_pending(host, capsys):
    sim, db, paths = host
    d = next(x for x in sim.domains() if x.name == "vm")
    lock = MoveJournal(db).begin(d, 1, {"vm": "vm"})  # this process moves it, and lives
    try:
        assert json.loads(_cli(capsys, paths, "memory-moves", "--json"))["recovery_pending"] == []
    finally:
        lock.release()


def test_the_plugins_status_query_says_what_recovery_would_do_and_does_none_of_it(ctx):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("mover", 2, 512 * MiB, domain_type="pvh")
    session.xenapi.VM.start_on(ref, host, False, False)
    sim, db = server.sims[host], Ledger(server.ledgers[host]).db
    d = _die_mid_batch(sim, db, "mover")
    answer = ok(run(server, host, sid, "memory_move_status", {"vm": uuid}))
    _left_as_it_was(sim, db, d)
    assert answer["state"] == "running" and "recovered" not in answer
    [note] = answer["recovery_pending"]
    assert "the mover of VM mover" in note and "memory-moves --recover" in note, note
