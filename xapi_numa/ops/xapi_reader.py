"""xapi-numad's reads of xapi, off its cycle: a thread of their own.

A wedged xapi (it takes the connection and never answers) holds a call for its
whole deadline (20 s); made in the cycle, that held up homing, pin restores and
the recovery of dead page movers.  :class:`XapiReader` owns, for xapi-numad
only (the plugin and the CLI read through :class:`.xapi_link.XapiLink` in
their own thread: they have one answer to give):

* one daemon thread, started by the first read the cycle makes (a ``--hand-back``
  makes none, and asks nothing of xapi), which refreshes the VMs' records and the
  host's guest mask through the link every 30 s (its back-offs, its log lines,
  the last records and mask kept on a failed read), and looks up auto-settle's
  new domains (:func:`.xapi_link.placed_state`) as the cycle asks;
* what it read, published whole (:class:`.xapi_link.VmRecords`, one reference
  swapped at once), which the cycle reads without waiting on xapi;
* the lock that keeps the session to one thread at a time: the thread's reads,
  and the settles the cycle still makes itself (:meth:`use`).

Stopping (:meth:`close`) waits at most ``STOP_JOIN_S`` for the thread; one still
in a call to a wedged xapi is left to die with the process, and its session to
expire in xapi (no logout over it).
"""
import logging
import threading
from typing import Callable, Dict, FrozenSet, List, Optional, Set, Tuple, TypeVar

from xapi_numa.core.policy import Policy
from xapi_numa.ops.executor import log_event
from xapi_numa.ops.xapi_link import PENDING, VmRecords, XapiLink, longer, placed_state

T = TypeVar("T")
Dom = Tuple[str, int]  # (VM uuid, domid)
POLL_S = 1.0        # seconds between the thread's looks at whether a refresh is due (a lookup wakes it)
FIRST_READ_S = 5.0  # seconds the first read of the cycle waits for the thread's first records
STOP_JOIN_S = 1.0   # seconds a stop waits for the thread (one in a wedged call is not waited for)


class _Failed:
    """A lookup that raised: raised again in the cycle, where the settler logs it."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class XapiReader:
    """xapi-numad's view of the VMs and auto-settle's lookups, read by a thread of its own."""

    def __init__(self, link: XapiLink, clock: Callable[[], float], logger: Optional[logging.Logger] = None,
                 first_read: Optional[float] = None) -> None:
        """``clock``: the link's (back-offs of the thread's own failures are on it); ``first_read``:
        seconds the first read waits for the thread's first records (FIRST_READ_S)."""
        self._link, self._clock, self._first_read = link, clock, first_read
        self._logger = logger or logging.getLogger("xapi-numad")
        self._view = link.records  # what the cycle reads: one reference, replaced whole
        self._xapi = threading.Lock()  # held while the session is in use
        self._state = threading.Condition()  # guards what follows, and says when a round ended
        self._asked: Set[Dom] = set()  # domains the settler waits on
        self._answers: Dict[Dom, object] = {}  # -> placed_state, None (xapi away) or _Failed
        self._started = self._ended = 0  # rounds of the thread
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._retry: Tuple[float, float] = (0.0, 0.0)  # after a refresh raised: (when, back-off)

    # --- what the cycle reads (never waiting on xapi, but at the first read) --------------------
    def records(self) -> VmRecords:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="xapi-numad-xapi", daemon=True)
            self._thread.start()
            # a wedged xapi holds up the first cycle this long, no more
            self.next_round(FIRST_READ_S if self._first_read is None else self._first_read)
        return self._view

    def policy_of(self, uuid: str) -> Policy:
        return self.records().policy_of(uuid)

    def policy_error(self, uuid: str) -> Optional[str]:
        return self.records().errors.get(uuid)

    def rebalance_opted_out(self, uuid: str) -> bool:
        return self.records().rebalance_opted_out(uuid)

    def backend_affinity_off(self, uuid: str) -> bool:
        return self.records().backend_affinity_off(uuid)

    def guest_cpus(self) -> Optional[FrozenSet[int]]:
        return self.records().host_guest_cpus()  # (raises why it cannot be read)

    # --- auto-settle's lookups (PlacedSettler's ``lookups``) --------------------------------------
    def keep(self, due: List[Dom]) -> None:
        """Only these domains are waited on: lookups and answers of others are dropped."""
        with self._state:
            self._asked &= set(due)
            self._answers = {d: a for d, a in self._answers.items() if d in self._asked}

    def state(self, dom: Dom) -> Optional[str]:
        """The thread's answer for ``dom`` (taken: the next call asks again), or PENDING
        (asked now, or still being looked up); raises what the lookup raised."""
        self.records()  # (the thread runs)
        with self._state:
            if dom in self._answers:
                self._asked.discard(dom)
                answer = self._answers.pop(dom)
            else:
                self._asked.add(dom)
                answer = PENDING
        if answer is PENDING:
            self._wake.set()
        if isinstance(answer, _Failed):
            raise answer.error
        return answer  # type: ignore[return-value]

    def use(self, fn: Callable[[object], T]) -> Optional[T]:
        """``fn(session)`` in the caller's thread, for the settles the cycle makes: they write
        the hypervisor and the state database (whose connection is the cycle thread's), so a
        settle can still wait on xapi, up to its deadline; only the reads moved.  None while
        xapi is away, or while the thread is in a call (the settle is tried again next cycle)."""
        if not self._xapi.acquire(blocking=False):
            return None
        try:
            return self._link.use(fn)
        finally:
            self._xapi.release()

    # --- the thread --------------------------------------------------------------------------------
    def next_round(self, timeout: float) -> bool:
        """Wait until a round of the thread that starts after this call has ended (False after
        ``timeout`` seconds): its reads are then published."""
        with self._state:
            target = self._started + 1
        self._wake.set()
        with self._state:
            return self._state.wait_for(lambda: self._ended >= target, timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            with self._state:
                self._started += 1
            self._refresh()
            self._look_up()
            with self._state:
                self._ended += 1
                self._state.notify_all()
            self._wake.wait(POLL_S)

    def _refresh(self) -> None:
        """The records and the mask, when due (the link says); a failure of any kind is logged
        once (until a refresh works) and waits a back-off: it never ends the thread."""
        if self._clock() < self._retry[0]:
            return
        try:
            with self._xapi:
                if self._stop.is_set():
                    return
                self._link.refresh()
        except Exception as err:  # noqa: BLE001 - a bad record, a bug: the thread must outlive it
            delay = longer(self._retry[1])
            if not self._retry[1]:
                log_event(self._logger, logging.WARNING, "reading xapi failed: keeping the last records",
                          error="{}: {}".format(type(err).__name__, err), retry_in=delay)
            self._retry = (self._clock() + delay, delay)
            return
        if self._retry[1]:
            log_event(self._logger, logging.INFO, "reading xapi works again")
        self._retry = (0.0, 0.0)
        self._view = self._link.records

    def _look_up(self) -> None:
        with self._state:
            asked = sorted(self._asked - set(self._answers))
        for dom in asked:
            try:
                with self._xapi:
                    if self._stop.is_set():
                        return
                    answer: object = self._link.use(lambda s, uuid=dom[0]: placed_state(s, uuid))
            except Exception as err:  # noqa: BLE001 - one VM's failure: the settler logs it and backs off
                answer = _Failed(err)
            with self._state:
                if dom in self._asked:
                    self._answers[dom] = answer
            if answer is None:
                return  # xapi away: the others wait for it

    def close(self) -> None:
        """Stop the thread and log out; never waits on a wedged xapi (see the module)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(STOP_JOIN_S)
        if self._xapi.acquire(blocking=False):  # not: the thread is in a call, the session is its
            try:
                self._link.close()
            finally:
                self._xapi.release()
