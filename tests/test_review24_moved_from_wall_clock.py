"""A step of the wall clock dropped the masks our backend writes moved threads off.

The masks a look's writes moved dom0 backend threads off count for the next look, and no
more once :data:`MOVED_FROM_KEPT_S` (600 s) old: xapi-numad stopped that long, an admin may
have set such a mask since.  Their age was told by the wall clock: an NTP step (or an admin's
``date -s``) of more than 600 s forward between the write and the next look, a second later,
made them too old, and the thread born mid-write was taken for an admin's and left on the
guest's old home for good; a step back kept a mask of long ago counting.  Their age is the
host's clock's now (dom0's monotonic clock, which no step moves), of this boot."""
import time

from test_backend_moved_from_restart import _moved_with_a_thread_born_mid_write
from test_review_backend_inherited import allowed_list

from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.backend_pins import MOVED_FROM_KEPT_S
from xapi_numa.state.db import Database


def _wall_clock_stepped(seconds: float):
    return lambda: time.time() + seconds


def test_a_wall_clock_stepped_forward_drops_no_mask(tmp_path):
    hv, fake, dom0, path = _moved_with_a_thread_born_mid_write(tmp_path)
    # restarted (an upgrade) as NTP steps the wall clock 20 minutes forward; a second of the host's clock
    stepped = Database(path, clock=_wall_clock_stepped(2 * MOVED_FROM_KEPT_S))
    restarted = Runtime(hv, stepped, Settings(rebalancing=False), dom0=dom0)
    hv.run(1.0)
    restarted.cycle()
    assert allowed_list(fake, "312/status") == "0", "the thread born mid-write is left on the old home's dom0 vCPU"


def test_a_wall_clock_stepped_back_keeps_no_mask_of_long_ago(tmp_path, monkeypatch):
    hv, fake, dom0, path = _moved_with_a_thread_born_mid_write(tmp_path)
    # xapi-numad stopped for longer than the masks count (the host's clock says so), the wall clock set back
    monkeypatch.setattr(type(hv), "clock", lambda self, real=type(hv).clock: real(self) + MOVED_FROM_KEPT_S + 1)
    stepped = Database(path, clock=_wall_clock_stepped(-2 * MOVED_FROM_KEPT_S))
    restarted = Runtime(hv, stepped, Settings(rebalancing=False), dom0=dom0)
    restarted.cycle()
    assert allowed_list(fake, "312/status") == "1", "a mask of long ago was counted ours"


def test_a_mask_an_older_version_wrote_is_told_by_its_wall_clock_stamp_as_before(tmp_path):
    from xapi_numa.core.backend_affinity import THREAD, Owned
    from xapi_numa.state.backend_pins import BackendJournal

    path, wall = str(tmp_path / "l.db"), [1000.0]
    BackendJournal(Database(path, lambda: wall[0])).record(Owned("uuid-1", THREAD, 500, "qemu-dm-1", 77),
                                                           moved_from=frozenset({0, 1}))  # (no host clock)
    journal = BackendJournal(Database(path, lambda: wall[0]), clock=lambda: 50.0, boot="b")
    assert journal.moved_from()[0] == (("uuid-1", frozenset({0, 1})),)
    wall[0] += MOVED_FROM_KEPT_S + 1
    assert journal.moved_from()[0] == ()
