"""What xapi-numad logs of its upkeep steps' failures: each said once while it lasts,
and "works again" once after, but a step that fails and works by turns is not two
lines a cycle: a failure said less than ``every`` seconds ago is not said again when
it comes back (nor its end), unless it then lasts past ``every`` seconds."""
import logging
import time
from typing import Callable, Dict, Set

from xapi_numa.ops.executor import log_event


class StepLog:
    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic,
                 every: float = 60.0) -> None:
        self.logger, self.clock, self.every = logger, clock, every
        self.failing: Set[str] = set()        # steps (and notes) failing now, said or not
        self._said_at: Dict[str, float] = {}  # step -> when its failure was last said
        self._quiet: Set[str] = set()         # failing now, not said (said less than ``every`` ago)

    def failed(self, name: str, message: str) -> None:
        if name in self.failing and name not in self._quiet:
            return  # said, and still failing
        self.failing.add(name)
        now = self.clock()
        at = self._said_at.get(name)
        if at is not None and now - at < self.every:
            self._quiet.add(name)
            return
        self._quiet.discard(name)
        self._said_at[name] = now
        log_event(self.logger, logging.WARNING, "upkeep step failed", step=name, error=message)

    def worked(self, name: str) -> None:
        if name not in self.failing:
            return
        self.failing.discard(name)
        if name in self._quiet:
            self._quiet.discard(name)  # its failure was not said: nor is its end
            return
        log_event(self.logger, logging.INFO, "upkeep step works again", step=name)

    def note_once(self, key: str, level: int, event: str, **fields) -> None:
        """Log ``event`` the first time only (a condition that does not end)."""
        if key not in self.failing:
            self.failing.add(key)
            log_event(self.logger, level, event, **fields)
