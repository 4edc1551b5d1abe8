"""Review 15j: a hand move (CLI, plugin) took the memory of a domain its toolstack was
still building or restoring: paused and never run, or with its claim outstanding.
xenguest (a build, a resume, an incoming migration) writes the guest's pages through
its own foreign mappings then, so a batch released frames it was writing (its writes
lost in freed frames), and repopulating ate the build's claim.  xapi-numad leaves such
a domain to its toolstack; every mover now refuses it, before anything changes."""
import pytest

from test_hvm_moves import M, _state, sim  # noqa: F401 (sim: the simulated host, a fixture)
from xapi_numa.errors import NotMovable
from xapi_numa.ops import move_memory


def test_a_domain_never_run_is_refused(sim):
    domid = sim.create("booting", 2, 256 * M, soft=frozenset({0, 1}), dtype="pvh", paused=True)
    before = _state(sim, domid)
    for step in (lambda: move_memory.check(sim, "booting", 1), lambda: move_memory.prepare(sim, "booting", 1)):
        with pytest.raises(NotMovable) as info:
            step()
        assert "not run yet" in info.value.message and "toolstack" in info.value.message
    assert _state(sim, domid) == before


def test_a_domain_with_its_claim_outstanding_is_refused(sim):
    domid = sim.create_shell("building", 2, 256 * M, dtype="pvh")
    sim.claim(domid, (256 * M) >> 12)
    with sim.store.transaction() as host:  # half built, and run (a claim outlives the unpause: still building)
        host.allocate(host.domain(domid), (128 * M) >> 12, 0)
        host.unpause(domid)
    assert next(d for d in sim.domains() if d.domid == domid).claimed
    with pytest.raises(NotMovable) as info:
        move_memory.check(sim, "building", 1)
    assert "claim" in info.value.message


def test_a_domain_that_ran_and_was_paused_still_moves(sim):
    domid = sim.create("running", 2, 256 * M, soft=frozenset({0, 1}), dtype="pvh")
    assert move_memory.check(sim, "running", 1).domid == domid
