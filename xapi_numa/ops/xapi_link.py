"""A xapi session for a long-running process, that survives xapi restarts.

xapi-numad reads VM policies and settles VMs through xapi.  xapi goes away
(``xe-toolstack-restart``, an upgrade) and sessions expire; none of that may
stop the daemon.  Every use goes through :meth:`XapiLink.use`: a failure to
reach xapi, or an invalid session, drops the session and the next login is
tried after a back-off (1 s doubling to 60 s); meanwhile callers get
``None`` and carry on without xapi.

A link answers in its caller's thread, as the plugin and the CLI need (one
answer to give).  xapi-numad reads through it from a thread of its own
(:mod:`.xapi_reader`), so that its cycle never waits on xapi for a read.
"""
import logging
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple, TypeVar

import attrs

from xapi_numa.backends import xapi
from xapi_numa.backends.inventory import local_host_uuid
from xapi_numa.core.policy import Policy, stored_or_default
from xapi_numa.errors import NumaError, UnknownVM, VmBusy
from xapi_numa.ops.executor import log_event
from xapi_numa.ops.place_request import host_mask
from xapi_numa.ops.local_xapi import DAEMON_CALL_TIMEOUT, local_login, xapi_address  # noqa: F401 - re-exported

T = TypeVar("T")
POLICY_REFRESH_S = 30.0
REBALANCE_KEY = "numa_rebalance"  # "false": the rebalancer leaves this VM where it is
BACKEND_AFFINITY_KEY = "numa_backend_affinity"  # "false": leave this VM's backend work alone
MAX_BACKOFF_S = 60.0


def longer(delay: float) -> float:
    """The next back-off after ``delay``: 1 s, doubling to MAX_BACKOFF_S."""
    return min(max(2 * delay, 1.0), MAX_BACKOFF_S)


@attrs.frozen
class VmRecords:
    """What one read of xapi said of the VMs (their ``other_config``) and of this host's
    guest mask.  Replaced whole at each read: a reader in another thread sees one read,
    never half of one.  A VM not listed (started since, or xapi away since before it
    started) has the default policy and is opted out of rebalancing and of backend alignment."""
    policies: Dict[str, Policy] = attrs.Factory(dict)
    errors: Dict[str, str] = attrs.Factory(dict)  # uuid -> why its stored policy cannot be read
    opted_out: Dict[str, bool] = attrs.Factory(dict)
    backend_off: FrozenSet[str] = frozenset()  # VMs with other_config:numa_backend_affinity=false
    guest_cpus: Optional[FrozenSet[int]] = None  # this host's guest_VCPUs_params:mask
    guest_mask_error: Optional[NumaError] = None  # why that mask cannot be read now (guest_cpus: the last read)
    read_at: Optional[float] = None  # when (the link's clock); None: never read

    def policy_of(self, uuid: str) -> Policy:
        return self.policies.get(uuid, Policy())

    def host_guest_cpus(self) -> Optional[FrozenSet[int]]:
        """The host's guest mask; one that cannot be read raises why (never taken for none)."""
        if self.guest_mask_error is not None:
            raise self.guest_mask_error
        return self.guest_cpus

    def rebalance_opted_out(self, uuid: str) -> bool:
        return self.opted_out.get(uuid, True)

    def backend_affinity_off(self, uuid: str) -> bool:
        """Off by ``numa_backend_affinity``, or not known: a VM not listed (started since the
        last read, or xapi away since we started) may have opted out, and aligning it until
        the next read would pin its backend work against the admin's word."""
        return uuid in self.backend_off or uuid not in self.opted_out


class XapiLink:
    def __init__(self, login: Callable[[], object], clock: Callable[[], float],
                 logger: Optional[logging.Logger] = None, raises: bool = False) -> None:
        """``raises``: xapi's failures reach the caller (the plugin, with one answer to give and
        no next cycle: a view without xapi would be the default policy for every VM)."""
        self._login = login
        self._raises = raises
        self._clock = clock
        self._logger = logger or logging.getLogger("xapi-numad")
        self._session = None
        self.reached = False  # has a call through this link been answered?
        self._retry_at = 0.0
        self._delay = 0.0
        self._down_said: Optional[str] = None  # what the log last said of an outage: "unreachable", "refused"
        self.refusal: Optional[str] = None  # why xapi refused the last login (it names the user and where)
        self.records_refusal: Optional[str] = None  # why xapi refused the last read of the VMs' records
        self.records = VmRecords()  # as last read (replaced whole)
        self._switch_errors: Dict[Tuple[str, str], str] = {}  # (uuid, key) -> a value neither on nor off
        self._records_retry: Tuple[float, float] = (0.0, 0.0)  # after xapi refused them: (when, back-off)

    def use(self, fn: Callable[[object], T]) -> Optional[T]:
        """``fn(session)``, or None while xapi cannot be reached."""
        now = self._clock()
        if self._session is None:
            if now < self._retry_at:
                return None
            try:
                self._session = self._login()
            except Exception as err:  # noqa: BLE001 - any failure to log in means "not now"
                if self._raises:
                    raise
                self._down(now, err)
                return None
        try:
            result = fn(self._session)
        except (OSError, xapi.XapiError) as err:
            if self._raises or isinstance(err, xapi.XapiError) and err.code != xapi.SESSION_INVALID:
                raise
            if isinstance(err, xapi.XapiTimeout):
                self._session = None  # wedged: a logout would wait a second deadline (xapi expires it)
            else:
                self.close()  # xapi may be back before it notices: never leave a session behind
            self._down(now, err)
            return None
        self.reached = True
        # back once a call works, not at a login: one xapi lets through before failing every
        # call was logged in again every second, and said gone and back each time
        if self._down_said:
            log_event(self._logger, logging.INFO, "xapi reachable again")
        self._delay, self._down_said, self.refusal = 0.0, None, None
        return result

    @property
    def read(self) -> bool:
        """Have the VMs' records been read (xapi reached)?"""
        return self.records.read_at is not None

    def close(self) -> None:
        """Log the session out (at stop, and before a new login); never raises."""
        session, self._session = self._session, None
        xapi.logout(session)

    def _down(self, now: float, err: Exception) -> None:
        # a refused login is refused again until an admin changes something: the longest wait at
        # once (each try is one more failed login in xapi's log), said as what it is
        refused = isinstance(err, xapi.LoginRefused)
        self._delay = MAX_BACKOFF_S if refused else longer(self._delay)
        self._retry_at = now + self._delay
        self.refusal = err.message if refused else None
        said = "refused" if refused else "unreachable"
        if self._down_said == said:
            return  # once per outage, and again when it changes: xapi back, refusing the login
        self._down_said = said
        if refused:
            log_event(self._logger, logging.WARNING, "xapi refused the login: running without it",
                      error=err.message, user=err.username, xapi=xapi_address(), retry_in=self._delay)
        else:
            log_event(self._logger, logging.WARNING, "xapi unreachable: running without it",
                      error="{}: {}".format(type(err).__name__, err), xapi=xapi_address(), retry_in=self._delay)

    # --- what the daemon asks of xapi ------------------------------------------------------------------
    def policy_of(self, uuid: str) -> Policy:
        """The VM's NUMA policy (VM.other_config), refreshed every 30 s; the default
        policy while xapi is away, and for a stored policy that cannot be read
        (:meth:`policy_error` says which)."""
        self.refresh()
        return self.records.policy_of(uuid)

    def refresh(self) -> None:
        """Read the VMs' records and the host's guest mask again if 30 s have passed since the
        last read (and no back-off holds it); a read that fails keeps the last ones."""
        now = self._clock()
        at = self.records.read_at
        if (at is not None and now - at < POLICY_REFRESH_S) or now < self._records_retry[0]:
            return
        records = self._read_records(now)
        if records is None:
            return
        stored = {r["uuid"]: stored_or_default(r.get("other_config", {})) for r in records.values()}
        errors = {uuid: error for uuid, (_, error) in stored.items() if error is not None}
        self.records = VmRecords(
            policies={uuid: policy for uuid, (policy, _) in stored.items()}, errors=errors,
            opted_out={r["uuid"]: _off(r.get("other_config", {}), REBALANCE_KEY) or r["uuid"] in errors
                       for r in records.values()},
            backend_off=frozenset(r["uuid"] for r in records.values()
                                  if _off(r.get("other_config", {}), BACKEND_AFFINITY_KEY)),
            guest_cpus=self.records.guest_cpus, guest_mask_error=self.records.guest_mask_error, read_at=now)
        self._say_unreadable_switches(records)
        self.records = self._read_guest_mask(self.records)

    def _say_unreadable_switches(self, records: dict) -> None:
        """Log each unreadable on/off key once (again if its value changes)."""
        found = unreadable_switches(records)
        for (uuid, key), value in sorted(found.items()):
            if self._switch_errors.get((uuid, key)) != value:
                log_event(self._logger, logging.WARNING, "a VM's on/off key is neither: taken as false",
                          vm=uuid, key="other_config:" + key, value=value, allowed="true, false")
        self._switch_errors = found

    def _read_records(self, now: float) -> Optional[dict]:
        """Every VM's record, or None: xapi away, or answering with an error (a pool
        member whose master is gone, xapi in emergency mode).  Either way the last
        records stand and the next read waits a back-off (1 s doubling to 60 s): an
        error here once failed every cycle, and temporary pins were never undone."""
        try:
            records = self.use(lambda s: xapi.call(s.xenapi.VM.get_all_records))
        except xapi.XapiError as err:
            if self._raises:
                raise
            delay = longer(self._records_retry[1])
            if not self._records_retry[1]:
                log_event(self._logger, logging.WARNING, "xapi refused the VMs' records: keeping the last ones",
                          error=err.message, retry_in=delay)
            self._records_retry = (now + delay, delay)
            self.records_refusal = err.message
            return None
        self._records_retry = (0.0, 0.0)
        if records is not None:
            self.records_refusal = None
        return records

    def guest_cpus(self) -> Optional[FrozenSet[int]]:
        """This host's guest mask (``guest_VCPUs_params:mask``), read with the records: a
        VM settled inside it is not pinned by an admin.  One that cannot be read raises
        InvalidArgument (xapi-numad then leaves every VM alone: :mod:`.left_alone`)."""
        self.refresh()  # with the records, at most every 30 s
        return self.records.host_guest_cpus()

    def host_guest_cpus(self) -> Optional[FrozenSet[int]]:
        """This host's guest mask read now, alone (no VM record is read); None while xapi is
        away; one that cannot be read is refused (:func:`.place_request.host_mask`)."""
        return self.use(self._read_guest_cpus)

    @staticmethod
    def _read_guest_cpus(session) -> Optional[FrozenSet[int]]:
        return host_mask(session, local_host_uuid())

    def _read_guest_mask(self, last: VmRecords) -> VmRecords:
        """Read it again; a read that fails (xapi gone or refusing since the records came) keeps
        ``last``'s (dropped, every VM settled inside it looked pinned by its admin for 30 s).
        One that cannot be read is kept as the error (raised for a link that ``raises``)."""
        try:
            got = self.use(lambda session: (self._read_guest_cpus(session),))
        except xapi.XapiError:  # (SESSION_INVALID is use's: the link is down)
            got = None
        except NumaError as err:  # (InvalidArgument, naming the field and the syntax)
            if self._raises:
                raise
            return attrs.evolve(last, guest_mask_error=err)
        return last if got is None else attrs.evolve(last, guest_cpus=got[0], guest_mask_error=None)

    def rebalance_opted_out(self, uuid: str) -> bool:
        """``other_config:numa_rebalance=false`` keeps the rebalancer away from a VM, and
        so does not knowing: a VM xapi has not listed yet (started since the last read,
        or xapi away since before it started) may have opted out, or have a ``preferred``
        list its home must stay in; so does a stored policy that cannot be read (it may
        say ``strict``)."""
        self.refresh()
        return self.records.rebalance_opted_out(uuid)

    def policy_error(self, uuid: str) -> Optional[str]:
        """Why the VM's stored policy cannot be read (None: it can, or xapi has not listed
        the VM): xapi-numad leaves such a VM alone, as :meth:`rebalance_opted_out` does."""
        self.refresh()
        return self.records.errors.get(uuid)

    def backend_affinity_off(self, uuid: str) -> bool:
        """Has the VM opted out of backend alignment (``numa_backend_affinity=false``)?"""
        self.refresh()
        return self.records.backend_affinity_off(uuid)


def vm_view(link) -> dict:
    """xapi-numad's view of the VMs through ``link`` (a :class:`XapiLink`, or the daemon's
    :class:`~xapi_numa.ops.xapi_reader.XapiReader`), as
    :class:`~xapi_numa.ops.runtime.Runtime`'s keyword arguments: their policies (and which
    cannot be read), rebalance opt-outs and the host's guest mask.  The daemon and its dry
    runs (the CLI's, the plugin's) see the same."""
    return dict(policy_of=link.policy_of, policy_error=link.policy_error, opted_out=link.rebalance_opted_out,
                guest_cpus=link.guest_cpus)


SWITCH_ON, SWITCH_OFF = ("", "true", "1", "yes", "on"), ("false", "0", "no", "off")


def _off(other_config: dict, key: str) -> bool:
    """Is ``key`` (``numa_rebalance``, ``numa_backend_affinity``) off in other_config?  A value
    that is neither on nor off (a typo of false) counts as off: leaving the VM alone is
    what the admin most likely asked (:func:`unreadable_switches` names it)."""
    return other_config.get(key, "").strip().lower() not in SWITCH_ON


def unreadable_switches(records: dict) -> Dict[Tuple[str, str], str]:
    """(VM uuid, key) -> the value of each on/off key that is neither on nor off."""
    return {(r["uuid"], key): r.get("other_config", {})[key] for r in records.values()
            for key in (REBALANCE_KEY, BACKEND_AFFINITY_KEY)
            if r.get("other_config", {}).get(key, "").strip().lower() not in SWITCH_ON + SWITCH_OFF}


class PlacedSettler:
    """xapi-numad's auto-settle: a VM started after ``place`` with a plain start (its
    boot pin still in its record) is settled once it runs here.

    Only domains new on this host are looked up, one VM record each: the pool's
    records are never read per cycle (every host of a pool runs this, and a pool's
    records are many).  A domain is looked at until its VM is seen running (then
    settled if pinned) or gone; one whose VM is still starting, or whose settle
    failed, is looked at again after a back-off (1 s doubling to 60 s), and one
    VM's failure never keeps the others waiting.
    """

    def __init__(self, link, settle_one: Callable[[object, str], dict],
                 running: Callable[[], Iterable[Tuple[str, int]]], clock: Callable[[], float],
                 logger: Optional[logging.Logger] = None, lookups=None) -> None:
        """``link``: an :class:`XapiLink`, or anything with its ``use`` (xapi-numad's reader).
        ``lookups``: where a due domain's :func:`placed_state` comes from (``keep(due)``,
        ``state(dom)``): by default read now through ``link``, in the caller's thread;
        xapi-numad's reader (:mod:`.xapi_reader`) reads it in its own and says PENDING until
        it has.  The settle itself goes through ``link.use`` in the caller's thread."""
        self._link, self._settle_one, self._running, self._clock = link, settle_one, running, clock
        self._lookups = ReadNow(link) if lookups is None else lookups
        self._logger = logger or logging.getLogger("xapi-numad")
        self._done: Set[Tuple[str, int]] = set()  # (uuid, domid) looked at for good
        self._later: Dict[Tuple[str, int], Tuple[float, float]] = {}  # -> (when, back-off)

    def __call__(self) -> List[str]:
        """Settle what is due; the settled UUIDs."""
        here = set(self._running())
        self._done &= here
        self._later = {d: v for d, v in self._later.items() if d in here}
        now = self._clock()
        due = sorted(d for d in here - self._done if d not in self._later or self._later[d][0] <= now)
        self._lookups.keep(due)
        settled = []
        for dom in due:
            try:
                state = self._lookups.state(dom)
                if state == PENDING:
                    continue  # asked: looked at again next time, with no back-off
                if state is None:
                    return settled  # xapi away: everything is looked at again once it is back
                answer = self._link.use(lambda s, uuid=dom[0]: self._settle_one(s, uuid)) if state == "settle" \
                    else {}
                if answer is None:
                    return settled
            except Exception as err:  # noqa: BLE001 - one VM's failure, whatever it is, holds up no other
                if dom not in self._later:  # said once, not at every retry
                    # another caller holding the VM (a pool start's own settle, a release) is no
                    # failure: the settle waits for it, and an admin is not warned
                    busy = isinstance(err, VmBusy)
                    log_event(self._logger, logging.INFO if busy else logging.WARNING,
                              "settle deferred: the VM is busy" if busy else "settle failed", vm=dom[0],
                              error=getattr(err, "message", None) or "{}: {}".format(type(err).__name__, err))
                self._again(dom, now)
                continue
            if answer.get("policy_error"):
                log_event(self._logger, logging.WARNING, "settled with the default policy: the stored one is invalid",
                          vm=dom[0], error=answer["policy_error"])
            if state == "later":
                self._again(dom, now)
                continue
            self._done.add(dom)
            self._later.pop(dom, None)
            if state == "settle":
                settled.append(dom[0])
        return settled

    def _again(self, dom: Tuple[str, int], now: float) -> None:
        backoff = longer(self._later.get(dom, (0.0, 0.0))[1])
        self._later[dom] = (now + backoff, backoff)


PENDING = "pending"  # a lookup asked of xapi-numad's reader thread, not answered yet


class ReadNow:
    """Auto-settle's lookups read now, through the link, in the caller's thread."""

    def __init__(self, link: XapiLink) -> None:
        self._link = link

    def keep(self, due: List[Tuple[str, int]]) -> None:
        """Nothing is kept between calls."""

    def state(self, dom: Tuple[str, int]) -> Optional[str]:
        """:func:`placed_state` of the domain's VM, or None while xapi is away."""
        return self._link.use(lambda s: placed_state(s, dom[0]))


def placed_state(session, uuid: str) -> str:
    """What auto-settle does with a domain here: "settle" (its VM runs here with a boot
    pin from ``place``), "later" (its VM is not running yet, e.g. still starting, or
    xapi says it runs on another host: migrating in) or "done" (not pinned, or not a
    VM xapi knows)."""
    try:
        record = xapi.vm_record(session, xapi.vm_ref(session, uuid))
    except UnknownVM:
        return "done"  # a domain xapi did not make (xl), or a VM destroyed since
    if record["power_state"] != "Running":
        return "later"
    if xapi.PLACED_KEY not in record["other_config"]:
        return "done"
    here = local_host_uuid()
    if here is not None and record.get("resident_on") != xapi.call(session.xenapi.host.get_by_uuid, here):
        # xapi says it runs on another host: a live migration into this one, whose domain is
        # here before xapi moves the VM (settled now, a failed migration would leave the VM
        # pinned over there); once it is this host's, it is settled here
        return "later"
    return "settle"
