"""What both scheduler models do the same way: run ``schedule()`` on every pCPU asked
to reschedule, until none is (a schedule can tickle another pCPU), as Xen's
softirq does.  Each model keeps its own ``resched`` mask and ``_schedule``."""
from typing import Optional, Sequence

from xapi_numa.backends.sim.masks import has, iter_bits

MAX_ROUNDS = 64  # a tickle storm would be a model bug


class Rescheduling:
    name = "scheduler"
    resched = 0

    def _schedule(self, cpu: int) -> None:
        raise NotImplementedError

    def _run_resched(self, order: Optional[Sequence[int]] = None) -> None:
        rounds = 0
        while self.resched:
            pending = self.resched
            self.resched = 0
            cpus = [c for c in order if has(pending, c)] if order else list(iter_bits(pending))
            for cpu in cpus:
                self._schedule(cpu)
            rounds += 1
            if rounds > MAX_ROUNDS:
                raise RuntimeError("{} model: rescheduling does not settle".format(self.name))
