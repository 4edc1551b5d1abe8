"""A pool start's hold of its VM: one pool ``vm-start`` of a VM at a time.

A pool start releases "an earlier place" of the VM (one a failed start left behind),
places it afresh, then asks xapi to start it there (``VM.start_on``).  Until that call
reaches xapi (it then shows among the VM's current operations, and a release keeps the
place), a second start of the same VM cannot tell the first one's place from one left
behind: it released it, and the first start's VM booted without its reservation and boot
pin.  So a pool start holds the VM from before that release until it is done, with a key
of its own in the VM's ``other_config`` (START_KEY, claimed and let go as the owner key of
:mod:`xapi_numa.backends.xapi_owner_key`: one caller at a time, a dead one's taken over),
and a second start is refused with NUMA_VM_BUSY naming the holder (its machine, its
process, until when), changing nothing.  It is not waited for: a start may take its whole
deadline (VM.start_on alone up to 30 minutes), and the admin decides whether to wait.

The token (:mod:`xapi_numa.core.owner_token`) names the VM, the holding process, and its
machine (``<uuid4>+<VM uuid>@<machine>``, for the refusal); its hold ends at the start's
deadline and HOLD_MARGIN_S more (the undoing after the deadline), on the pool master's
clock.  A hold left by a start that died is passed over once its time is up, or at once by
a start on the same machine, which sees the process gone; one copied with the VM's
other_config into a clone or snapshot holds nothing there.

A ``place`` or ``release`` made by hand meanwhile would undo or overwrite the start's place
(the start then builds the VM on no reservation, its memory wherever it falls): the plugin
refuses them too (:func:`refuse_by_hand`), a release with ``force=true`` excepted, and the CLI's own
``release`` and ``place --vm`` by the same rules (:func:`release_checked`, ``--force``), all holding
the VM while they apply them (``start_placement.releasing`` and ``placing``).  The
start's own calls carry its token (START_OWNER_ARG) and pass; a plugin of a version before
this argument refuses it as unknown, and is asked again without it (:func:`older_plugin`).
"""
import contextlib
import os
import re
import socket
import time
from typing import Callable, Dict, Iterator, Optional

from xapi_numa.backends import process_identity, xapi, xapi_owner_key, xapi_time
from xapi_numa.core import owner_token
from xapi_numa.core.host import uuid4_text
from xapi_numa.core.numbers import shown
from xapi_numa.errors import VmBusy
from xapi_numa.ops.plugin_words import FORCE_SAID
from xapi_numa.ops.start_deadline import UNDO_S, StartDeadline, waiting

START_KEY = "numa_start_owner"  # other_config: the token of the pool vm-start holding the VM
START_OWNER_ARG = "start_owner"  # place and release: the token of the pool vm-start making the call
HOLD_MARGIN_S = 2 * UNDO_S  # past the start's deadline: its release of a place, then of this key
# the longest hold judged live: the CLI's longest --deadline (a day) and the margin (a token further ahead
# than twice this is a hand edit's, stale); a longer deadline (the API's) holds the VM this long only
MAX_HOLD_S = 86400 + HOLD_MARGIN_S
MACHINE_CHARS = 64  # of a machine's name in a token (most often its FQDN: said whole, so machines are told apart)


def machine_name() -> str:
    """This machine's name as a token carries it: no ``/`` or ``@`` (the token's separators)."""
    return re.sub(r"[^A-Za-z0-9._-]", "", socket.gethostname())[:MACHINE_CHARS] or "unnamed"


def start_token(now: float, seconds: float, vm: Optional[str] = None) -> str:
    """The token of a start of the VM of UUID ``vm`` with a deadline of ``seconds``, begun at
    ``now`` (the pool master's clock)."""
    hold = min(seconds + HOLD_MARGIN_S, MAX_HOLD_S)
    return owner_token.make(uuid4_text(os.urandom(16)), now + hold, process_identity.this_process(), vm=vm,
                            machine=machine_name())


def stale(token: str, now: float, vm: Optional[str] = None) -> bool:
    """Does ``token``, on the VM of UUID ``vm``, hold it no more: written for another VM (a
    clone's or snapshot's copy), or left by a start that died (its time is up, or its
    process here is gone)?"""
    return owner_token.stale(token, now, MAX_HOLD_S, process_identity.gone, vm)


@contextlib.contextmanager
def holding(session, vm: str, uuid: str, budget: StartDeadline) -> Iterator[str]:
    """Hold the VM for this start (yields the token), or refuse with NUMA_VM_BUSY if another
    start holds it; let go on the way out, whatever happened (best effort: a hold not let go
    ends with its time)."""
    with budget.within(session, xapi.CALL_TIMEOUT, "holding the VM for its start"):
        now = xapi_time.pool_time(session)
        token = start_token(now, budget.seconds, uuid)
        try:
            claimed = xapi_owner_key.claim_other_config_key(session, vm, START_KEY, token,
                                                            stale=lambda held: stale(held, now, uuid))
        except xapi.XapiTimeout:
            raise  # the master is wedged: a removal would wait for it too (the hold ends with its time)
        except BaseException:  # our key may be in, with the claim's read back failed: it must not stay
            _let_go(session, vm, token, budget)
            raise
        if not claimed:
            holder = xapi_owner_key.owner_of(xapi.call(session.xenapi.VM.get_other_config, vm), START_KEY)
            raise busy(uuid, holder, now)
    try:
        yield token
    finally:
        _let_go(session, vm, token, budget)


def _let_go(session, vm: str, token: str, budget: StartDeadline) -> None:
    try:
        with waiting(session, budget.undo_wait(xapi.CALL_TIMEOUT)):
            xapi_owner_key.release_other_config_key(session, vm, START_KEY, token)
    except Exception:  # noqa: BLE001 - the start's own outcome is the news; the hold ends with its time
        pass


def busy(uuid: str, holder: Optional[str], now: float) -> VmBusy:
    """The refusal of a second start while ``holder`` (a token, None if it let go meanwhile) holds the VM."""
    return VmBusy("VM {} is being started by another vm-start ({}): this one is refused rather than undo that "
                  "one's place; wait for it to end; if that process is gone, try again {}, or remove "
                  "other-config:{} by hand".format(uuid, holder_said(holder), _until(holder, now), START_KEY),
                  ("vm", uuid, "vm-start " + holder_said(holder)))


def holder_said(token: Optional[str]) -> str:
    """Who holds a start token, as an admin finds it: its process and machine, or what is known of them."""
    if token is None:
        return "it ended a moment ago"
    machine = owner_token.machine_of(token) or "an unnamed machine"
    holder = owner_token.holder_of(token)
    process = "process {}".format(holder.pid) if holder is not None else "a process"
    return "{} on machine {}".format(process, shown(machine, MACHINE_CHARS + 2))  # (its quotes)


def _until(token: Optional[str], now: float) -> str:
    """When the hold of ``token`` ends, as the refusal says it."""
    if token is None or owner_token.out_of_time(token, now, MAX_HOLD_S):
        return "now"
    end = float(token.rpartition("/")[2])
    return "after {} UTC (the pool master's clock, in {:.0f} s)".format(
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(end)), end - now)


def plugin_args(uuid: str, token: str) -> Dict[str, str]:
    """A ``place`` or ``release`` of the VM by the start holding it with ``token``."""
    return {"vm": uuid, START_OWNER_ARG: token}


def older_plugin(err: xapi.XapiError, args: Dict[str, str]) -> bool:
    """Did a plugin of an earlier version refuse ``args`` for START_OWNER_ARG, unknown to it?"""
    return START_OWNER_ARG in args and err.code == "NUMA_INVALID_ARGUMENT" and list(err.params[:1]) == [START_OWNER_ARG]


def other_start(other_config: Dict[str, str], uuid: str, now: Callable[[], float],
                caller: Optional[str]) -> Optional[str]:
    """The token of the pool vm-start holding the VM of UUID ``uuid``, unless it is ``caller``'s
    (the start's own place or release) or none does; ``now()``: the pool master's clock."""
    held = xapi_owner_key.owner_of(other_config, START_KEY)
    if held is None or held == caller or stale(held, now(), uuid):
        return None
    return held


def release_checked(other_config: Dict[str, str], uuid: str, now: Callable[[], float], caller: Optional[str],
                    force: bool, force_said: str = FORCE_SAID) -> Optional[str]:
    """The one rule of a ``release`` of the VM of UUID ``uuid`` (its ``other_config`` as read) while a
    pool vm-start holds it: refused with NUMA_VM_BUSY unless it is the start's own (``caller``, its
    token) or ``force`` (``force_said``: how the caller's user asks for that, the plugin's
    ``force=true`` or the CLI's ``--force``); answers the token of the start whose place it undoes
    (None: no start holds the VM), for :func:`overridden`."""
    starting = other_start(other_config, uuid, now, caller)
    if starting is not None and not force:  # a pool vm-start's place: undone, it would start on none
        raise refuse_by_hand(uuid, "release", starting, now(), force_said)
    return starting


def refuse_by_hand(uuid: str, fn: str, held: str, now: float, force_said: str = FORCE_SAID) -> VmBusy:
    """The refusal of a ``place`` or ``release`` (``fn``) made while another start holds the VM (``held``);
    ``force_said``: how a release is forced where it was asked (the plugin's ``force=true``, the CLI's ``--force``)."""
    force = "; or release with {}, which undoes that start's place (it then starts the VM on no " \
            "reservation)".format(force_said) if fn == "release" else ""
    undo = "undo" if fn == "release" else "overwrite"
    return VmBusy("VM {} is being started by a pool vm-start ({}): a {} now would {} that start's place, and it "
                  "would build the VM without it; this {} is refused, changing nothing; try again once that start has "
                  "ended, at the latest {}{}".format(uuid, holder_said(held), fn, undo, fn, _until(held, now), force),
                  ("vm", uuid, "vm-start " + holder_said(held)))


def overridden(held: str, undone: str = "its place here is undone") -> str:
    """What a forced ``release`` answers when it undid the place of a start holding the VM (``held``):
    ``undone``, what of that place it undid."""
    return "overridden: a pool vm-start ({}) holds the VM; {}".format(holder_said(held), undone)
