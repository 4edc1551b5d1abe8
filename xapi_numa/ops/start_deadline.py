"""The overall deadline of a pool's ``vm-start``: what is left, how long each step may wait.

Each call a pool start makes has a deadline of its own (xapi's CALL_TIMEOUT, a host's
QUERY_TIMEOUT for a dry run or PLACE_TIMEOUT for a place, VM.start_on's LONG_CALL_TIMEOUT),
but a start makes many: a dry run on every host, for up to MAX_ATTEMPTS rounds.  A slow
host answering each call just in time held the caller for the sum of them all.  A
:class:`StartDeadline` gives the whole start one budget: each step waits the shorter of
its own deadline and what is left, and a step begun with nothing left fails the start
with :class:`StartTimeout`, naming the step that ran into the deadline.  Undoing a place
after that (its release) still gets UNDO_S, so that nothing is left reserved.
"""
import contextlib
import time
from typing import Callable, Iterator, Optional

from xapi_numa.backends.rpc_transport import exactly
from xapi_numa.errors import InvalidArgument, StartTimeout

DEFAULT_S = 2400.0  # VM.start_on's own 30 minutes (a big VM's memory is scrubbed), and 10 to choose and place
UNDO_S = 30.0  # a release once the deadline is gone: bounded, not skipped
SECONDS_ALLOWED = "a number of seconds above 0 (default {:g})".format(DEFAULT_S)


class StartDeadline:
    def __init__(self, vm: str, seconds: float, clock: Optional[Callable[[], float]] = None) -> None:
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds < float("inf"):
            raise InvalidArgument("deadline", "{!r} is not a deadline".format(seconds), SECONDS_ALLOWED)
        self.vm, self.seconds, self.clock = vm, float(seconds), clock or time.monotonic
        self.end = self.clock() + self.seconds
        self.step: Optional[str] = None  # the step under way (or the last one begun)

    def left(self) -> float:
        return self.end - self.clock()

    def wait(self, seconds: float, step: str) -> float:
        """How long ``step`` may wait: ``seconds`` (its own deadline) or what is left of the
        start's, the shorter; StartTimeout if nothing is left."""
        left = self.left()
        if left <= 0:
            raise self.timeout()
        self.step = step
        return min(seconds, left)

    def undo_wait(self, seconds: float) -> float:
        """How long undoing a place may wait: its own deadline, cut to what is left of the
        start's, but never below UNDO_S."""
        return min(seconds, max(self.left(), UNDO_S))

    def timeout(self, what_now: str = "nothing it placed is kept") -> StartTimeout:
        return StartTimeout("vm-start of {} did not finish within its deadline of {:g} s (--deadline): {} ran "
                            "into it; {}".format(self.vm, self.seconds, self.step or "the start", what_now),
                            [self.vm, "{:g}".format(self.seconds), self.step or ""])

    @contextlib.contextmanager
    def within(self, session, seconds: float, step: str) -> Iterator[None]:
        """Plain XenAPI calls of ``step`` wait the shorter of ``seconds`` and what is left."""
        with waiting(session, self.wait(seconds, step)):
            try:
                yield
            except ConnectionError:  # (XapiTimeout) cut short by the start's deadline, not xapi's silence
                if self.left() <= 0:
                    raise self.timeout() from None
                raise


# calls made through a session wait exactly that many seconds for their answer
waiting = exactly
