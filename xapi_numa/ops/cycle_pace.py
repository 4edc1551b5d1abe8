"""How long xapi-numad rests after a cycle, and what it says when its cycles overrun the period.

A cycle shorter than ``--period`` is followed by the rest of the period, as always.  One
that takes longer (a host of a thousand VMs, a slow xapi, a period set short) used to be
followed at once by the next: the daemon then held a dom0 CPU for good and said nothing.
Now it rests REST_SHARE of the cycle's time after such a cycle, so that it takes at most
1 / (1 + REST_SHARE) of one dom0 CPU however slow its cycles, and it says so in the log:
the first overrun at once, then at most once every SAY_EVERY seconds with how many there
were and the longest (the cure is the admin's: a longer ``--period``)."""
import logging
from typing import Optional

from xapi_numa.ops.executor import log_event

REST_SHARE = 0.25  # of an overrunning cycle's time: at most 80 % of a CPU
SAY_EVERY = 600.0  # seconds between two lines about overruns


def rest_after(took: float, period: float) -> float:
    """Seconds to rest after a cycle that took ``took`` seconds."""
    return max(period - took, REST_SHARE * took) if took > period else period - took


class Overruns:
    """The cycles that took longer than the period, said without flooding the log."""

    def __init__(self, logger: logging.Logger, period: float) -> None:
        self.logger, self.period = logger, period
        self.said_at: Optional[float] = None  # when the last line was said
        self.count, self.longest = 0, 0.0     # overruns since then

    def cycle(self, took: float, now: float) -> None:
        """A cycle of ``took`` seconds ended at ``now`` (a monotonic clock)."""
        if took <= self.period:
            return
        self.count, self.longest = self.count + 1, max(self.longest, took)
        if self.said_at is not None and now - self.said_at < SAY_EVERY:
            return
        log_event(self.logger, logging.WARNING, "cycles take longer than the period", period=self.period,
                  overruns=self.count, longest="{:.2f} s".format(self.longest),
                  rest="{:.0f} % of a cycle's time after each (at most {:.0f} % of a CPU); a longer --period "
                       "ends this".format(100 * REST_SHARE, 100 / (1 + REST_SHARE)))
        self.said_at, self.count, self.longest = now, 0, 0.0
