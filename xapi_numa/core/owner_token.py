"""The owner token a caller holds a VM with (the owner key,
:mod:`xapi_numa.backends.xapi_owner_key`): its text, read and judged.

``<uuid4>+<VM uuid>/<boot id>:<pid>:<start time>/<expiry>``: unique to the
caller (the uuid4), and the VM it was written for; the process that holds it (the
boot id of its machine, its pid, and its start time in clock ticks after boot,
field 22 of ``/proc/<pid>/stat``: a pid used again later belongs to a process that
started at another time); and the time its hold ends (seconds since the epoch on
the pool master's clock).  A caller may add its machine's name to the first field
(``<uuid4>+<VM uuid>@<machine>``, :mod:`xapi_numa.ops.start_hold` does).

xapi copies a VM's ``other_config`` whole into a clone, a copy and a snapshot (and from
a snapshot into a VM made of it, or back into its VM by a revert): a token written for
another VM is such a copy and holds nothing (:func:`stale`; the VM it was copied to never
had a caller holding it).  A revert puts back a token written for the same VM: that one
is judged as any other, by its time and its process (left by a caller that died).

A token is stale (left by a caller that died) once its time is up, or at once
when the caller judging it sees that the holder's process is gone (``gone``):
only a caller on the holder's own machine, in the same boot, can.  Everyone
else (another host, the same host after a reboot, a holder whose process is
alive but slow) goes by the time.  A token of an older version,
``<uuid4>/<expiry>``, names no holder and goes by the time too; one naming no VM
(``<uuid4>/<holder>/<expiry>``, before 2026-12-06) is judged as before, on whichever
VM it is; one without a readable time (set by hand) counts as stale: nothing would
ever remove it.
Older versions read the expiry after the last ``/`` as well, so they judge
these tokens by their time.
"""
import math
from typing import Callable, Optional

import attrs

from xapi_numa.core.numbers import is_decimal


@attrs.frozen
class Holder:
    """The process holding a token: ``start`` is its start time, clock ticks after boot."""

    boot_id: str
    pid: int
    start: int


Gone = Callable[[Holder], bool]  # is this holder's process known to be gone?


def make(unique: str, expires: float, holder: Optional[Holder], vm: Optional[str] = None,
         machine: Optional[str] = None) -> str:
    """A token: ``unique`` (a fresh uuid4), for the VM of UUID ``vm`` (None: names none, as an
    older version's), on ``machine`` (None: unnamed), its holder if known, its ``expires`` time."""
    first = unique + ("+" + vm.lower() if vm else "") + ("@" + machine if machine else "")
    who = "{}:{}:{}/".format(holder.boot_id, holder.pid, holder.start) if holder is not None else ""
    return "{}/{}{:.0f}".format(first, who, expires)


def vm_of(token: str) -> Optional[str]:
    """The UUID of the VM a token was written for (lower case), or None: it names none."""
    return token.split("/")[0].partition("@")[0].partition("+")[2].lower() or None


def machine_of(token: str) -> Optional[str]:
    """The name of the machine a token says it was written on, or None."""
    return token.split("/")[0].partition("@")[2] or None


def for_another_vm(token: str, vm: Optional[str]) -> bool:
    """Was ``token`` written for a VM other than the one of UUID ``vm`` (copied with its
    ``other_config``)?  A token naming no VM, or no ``vm`` to judge by, is not."""
    written_for = vm_of(token)
    return written_for is not None and vm is not None and written_for != vm.lower()


def holder_of(token: str) -> Optional[Holder]:
    """The process a token names, or None (an older version's token, or one set by hand)."""
    parts = token.split("/")
    if len(parts) != 3:
        return None
    fields = parts[1].split(":")
    if len(fields) != 3 or not fields[0] or not is_decimal(fields[1]) or not is_decimal(fields[2]) \
            or len(fields[1]) > 10 or len(fields[2]) > 20:
        return None
    pid = int(fields[1])
    return Holder(fields[0], pid, int(fields[2])) if pid > 0 else None


def out_of_time(token: str, now: float, ttl: float) -> bool:
    """Is ``token``'s time up at ``now``?  One without a readable time counts as such,
    and so does a time that never comes (nan, inf) or lies further ahead than any
    caller's (``2 * ttl``: a clock far ahead, or a hand edit): it would hold the VM for good.
    So a judging clock stepped back (the pool master's, by NTP) never lets a key written
    before the step hold the VM for the size of the step: at most ``2 * ttl`` from any
    instant; a live holder's key may then be taken over, which its holder sees at its
    next check (as one slow past its time does)."""
    _, sep, expires = token.rpartition("/")
    try:
        end = float(expires)
    except ValueError:
        return True
    return not sep or not math.isfinite(end) or end < now or end > now + 2 * ttl


def stale(token: str, now: float, ttl: float, gone: Gone, vm: Optional[str] = None) -> bool:
    """Does ``token``, found on the VM of UUID ``vm``, hold it no more?  It was written for
    another VM (a copy's), or left by a caller that died: its time is up, or its holder's
    process is gone (``gone``, asked only of a token whose time is not up)."""
    if for_another_vm(token, vm) or out_of_time(token, now, ttl):
        return True
    holder = holder_of(token)
    return holder is not None and gone(holder)
