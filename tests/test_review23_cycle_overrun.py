"""xapi-numad's cycles that take longer than the period: a rest after each, and a line that says so.

A cycle longer than ``--period`` was followed at once by the next, the daemon holding a dom0
CPU for good without a word in the log (review 22, left alone there).  Now a quarter of the
cycle's time is rested after it (at most 80 % of a CPU), and the overruns are said at once,
then at most every ten minutes with their count.  On a fake clock: no wall time."""
import logging
import types

from xapi_numa import daemon
from xapi_numa.ops import cycle_pace


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def _runtime(clock: Clock, takes):
    rt = types.SimpleNamespace(cycles=0, db=types.SimpleNamespace(refused=None))

    def cycle():
        clock.now += takes[rt.cycles]
        rt.cycles += 1
        return {}
    rt.cycle = cycle
    return rt


def _run(monkeypatch, takes, period):
    clock = Clock()
    monkeypatch.setattr(daemon.time, "sleep", clock.sleep)
    rests = []
    real = cycle_pace.rest_after
    monkeypatch.setattr(cycle_pace, "rest_after", lambda took, p: rests.append(real(took, p)) or rests[-1])
    daemon.run_loop(_runtime(clock, takes), period, len(takes), {"now": False}, clock=clock)
    return clock, rests


def test_an_overrunning_cycle_is_followed_by_a_rest_and_said_once(monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="xapi-numa")
    takes = [4.0] * 20  # 4 s cycles, a 1 s period
    clock, rests = _run(monkeypatch, takes, 1.0)
    # rested a quarter of each cycle (the last one ends the loop before its rest)
    assert clock.slept >= 0.25 * 4.0 * (len(takes) - 1) - 0.05 * len(takes), clock.slept
    assert rests[:3] == [1.0, 1.0, 1.0]
    said = [r for r in caplog.records if "longer than the period" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]  # 20 cycles in 100 s: one line


def test_overruns_are_said_again_after_ten_minutes_with_their_count(monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="xapi-numa")
    takes = [200.0] * 5  # each cycle 200 s (+50 s rest): lines at 0, then past 600 s
    _run(monkeypatch, takes, 1.0)
    said = [r.fields for r in caplog.records if "longer than the period" in r.getMessage()]
    assert len(said) == 2 and said[0]["overruns"] == 1 and said[1]["overruns"] == 3, said
    assert said[1]["longest"] == "200.00 s" and said[1]["period"] == 1.0


def test_a_cycle_within_the_period_rests_the_rest_of_it_and_says_nothing(monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="xapi-numa")
    clock, rests = _run(monkeypatch, [0.3] * 10, 1.0)
    assert all(abs(r - 0.7) < 1e-9 for r in rests)
    assert not [r for r in caplog.records if "longer than the period" in r.getMessage()]
