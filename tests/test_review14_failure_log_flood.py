"""xapi-numad's cycle failures: the rate limit held only while every cycle failed.

A failure every other cycle (a state database another process keeps busy, a flaky
hypervisor read) reset it at each good cycle: "cycle failed" and "cycles work again"
were logged every second, for as long as it lasted (600 lines in 10 minutes).  Two
failures taking turns were each logged every time too."""
import logging

from xapi_numa.daemon import FailureLog
from xapi_numa.ops.runtime import LOG


def lines(caplog):
    return [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records if r.name == LOG.name]


def test_a_failure_every_other_cycle_is_logged_at_most_once_a_minute(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    log = FailureLog(every=60.0)
    for second in range(600):  # ten minutes, one cycle a second, every other one failing
        if second % 2:
            log.succeeded()
        else:
            log.failed("StateError: database is locked", float(second))
    said = lines(caplog)
    failed = [f for m, f in said if m == "cycle failed"]
    assert len(failed) == 10  # once a minute
    assert len([m for m, _ in said if m == "cycles work again"]) <= 10
    assert failed[1]["repeated"] == 30  # and how many there were meanwhile
    assert len(said) <= 20


def test_two_failures_taking_turns_are_each_logged_at_most_once_a_minute(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    log = FailureLog(every=60.0)
    for second in range(120):
        log.failed("first" if second % 2 else "second", float(second))
    assert len(lines(caplog)) == 4


def test_a_recovery_is_still_said_once_and_a_new_failure_at_once(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    log = FailureLog(every=60.0)
    log.failed("A", 0.0)
    log.succeeded()
    log.succeeded()
    log.failed("B", 1.0)  # another failure: said at once
    assert [m for m, _ in lines(caplog)] == ["cycle failed", "cycles work again", "cycle failed"]
