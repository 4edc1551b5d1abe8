"""This machine's processes as holders of an owner token (:mod:`xapi_numa.core.owner_token`):
who the caller is, and whether a holder's process is gone.

A process is its machine's boot id (:mod:`.boot`), its pid and its start time
(field 22 of ``/proc/<pid>/stat``): a pid used again later belongs to a process
that started at another time.  A holder is gone only when it is of this boot
and ``/proc`` has no such process (no pid, or one that started at another
time), or has it only as a zombie with no thread left running (exited, not yet
reaped by its parent: it has run its last instruction, whenever it is reaped).
Whatever cannot be told for sure (another boot id, this boot's id unreadable,
``/proc`` unreadable) is not gone: the token then goes by its time.
The readers are arguments, so that tests can stand in for ``/proc``.
"""
import os
from typing import Callable, Optional

from xapi_numa.backends import boot
from xapi_numa.core.numbers import is_decimal
from xapi_numa.core.owner_token import Holder

STAT_PATH = "/proc/{}/stat"
STATE_FIELD = 3  # state, in stat(5)'s numbering (comm is field 2)
THREADS_FIELD = 20  # num_threads
START_FIELD = 22  # starttime
EXITED = ("Z", "X")  # zombie, dead

Reader = Callable[[str], Optional[str]]  # a file's text; None if it is not there; OSError if it cannot tell
BootId = Callable[[], str]  # this boot's id, "" if unknown (:func:`.boot.boot_id`)
Signal0 = Callable[[int], None]  # os.kill(pid, 0): ProcessLookupError if no process has that pid


def signal_0(pid: int) -> None:
    """Ask the kernel whether ``pid`` is a process (it sends nothing)."""
    os.kill(pid, 0)


def no_such_pid(pid: int, signal0: Signal0 = signal_0) -> bool:
    """True only when the kernel says no process has ``pid`` (ESRCH).  ``/proc`` mounted with
    ``hidepid`` hides other users' processes from a caller that is not root: absent there, one
    may still run, and a signal 0 sees it (it answers EPERM for another user's)."""
    try:
        signal0(pid)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def read_proc(path: str) -> Optional[str]:
    """A ``/proc`` file's text, or None if it is not there (its process is gone); any
    other failure (no procfs, no permission) raises OSError: it says nothing of the process."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):  # (ESRCH: it went while we read)
        return None


def _field(stat: str, number: int) -> Optional[str]:
    """Field ``number`` (stat(5)'s numbering, from 3) of a ``/proc/<pid>/stat`` text, or None if
    it has none.  The fields are read after the last ``)``: comm, in parentheses, may hold
    spaces and ``)``."""
    _, paren, rest = stat.rpartition(")")
    fields = rest.split()  # fields 3 (state) onwards
    index = number - STATE_FIELD
    return fields[index] if paren and len(fields) > index else None


def start_time(stat: str) -> Optional[int]:
    """The start time in a ``/proc/<pid>/stat`` text, or None if it has none."""
    value = _field(stat, START_FIELD)
    return int(value) if value is not None and is_decimal(value) else None


def exited(stat: str) -> bool:
    """Has the process of a ``/proc/<pid>/stat`` text run its last instruction: dead, or a
    zombie with no thread left running?  A leader thread that ended before the others shows as
    a zombie too, while they run: its process counts more than one thread then."""
    state, threads = _field(stat, STATE_FIELD), _field(stat, THREADS_FIELD)
    if state == "X":
        return True
    return state == "Z" and threads is not None and is_decimal(threads) and int(threads) <= 1


def this_process(read: Reader = read_proc, this_boot: BootId = boot.boot_id,
                 pid: Optional[int] = None) -> Optional[Holder]:
    """The calling process (or ``pid``) as a token's holder; None if it cannot be read
    (its token then names no holder and goes by its time alone)."""
    pid = os.getpid() if pid is None else pid
    boot_id = this_boot()
    try:
        stat = read(STAT_PATH.format(pid))
    except OSError:
        return None
    start = start_time(stat) if stat is not None else None
    return Holder(boot_id, pid, start) if boot_id and start is not None else None


def gone(holder: Holder, read: Reader = read_proc, this_boot: BootId = boot.boot_id,
         signal0: Signal0 = signal_0) -> bool:
    """Is ``holder``'s process known to be gone?  Only for a holder of this boot."""
    boot_id = this_boot()
    if not boot_id or holder.boot_id != boot_id:
        return False  # another machine's, or this one's before a reboot: its time says
    try:
        stat = read(STAT_PATH.format(holder.pid))
    except OSError:
        return False
    if stat is None:
        return no_such_pid(holder.pid, signal0)
    start = start_time(stat)
    return start is not None and (start != holder.start or exited(stat))
