"""What a cycle reports and logs of the changes it made (ops/cycle_log.py)."""
import logging

from xapi_numa.core import homing
from xapi_numa.core.actions import SetAffinity
from xapi_numa.ops import cycle_log
from xapi_numa.ops.executor import DEFERRED, DONE, Outcome

ALL = frozenset(range(8))


def test_a_credit2_re_pick_is_reported_as_one_and_not_as_a_soft_affinity_move(caplog):
    # a re-pick writes a vCPU's own hard affinity and no soft one: nothing moved
    repicks = [Outcome(SetAffinity(1, "a", v, hard=ALL, reason=homing.REPICK), DONE) for v in (0, 1)]
    fixup = [Outcome(SetAffinity(2, "c", 0, soft=frozenset({4, 5}), reason="memory is on node 1"), DONE)]
    counts = cycle_log.tally(repicks + fixup)
    assert counts["soft_moved"] == 1  # VM c's, not VM a's
    assert counts["repicked"] == 2
    logger = logging.getLogger("test-cycle-log")
    with caplog.at_level(logging.INFO, logger="test-cycle-log"):
        cycle_log.log_changes(logger, repicks + fixup)
    events = [(r.getMessage(), r.fields) for r in caplog.records]
    assert [f["domid"] for m, f in events if m == "soft affinity set"] == [2]
    assert [f["vcpus"] for m, f in events if m == "re-picked displaced vCPUs"] == [["1.0", "1.1"]]


def test_a_vm_is_re_picked_whole_only_when_the_write_budget_let_every_re_pick_through():
    """A VM whose re-picks the budget cut short is not marked: marked, the re-picks left
    out were never made while it lagged (its vCPUs waited for Xen's balancer)."""
    whole = [Outcome(SetAffinity(1, "a", v, hard=ALL, reason=homing.REPICK), DONE) for v in (0, 1)]
    cut = [Outcome(SetAffinity(2, "b", 0, hard=ALL, reason=homing.REPICK), DONE),
           Outcome(SetAffinity(2, "b", 1, hard=ALL, reason=homing.REPICK), DEFERRED, "write budget of this cycle used")]
    soft = [Outcome(SetAffinity(3, "c", 0, soft=frozenset({4, 5}), reason="memory is on node 1"), DONE)]
    assert cycle_log.fully_repicked(whole + cut + soft) == {("a", 1)}
