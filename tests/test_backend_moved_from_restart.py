"""The masks a look's writes moved dom0 backend threads off, across a restart of xapi-numad.

tests/test_backend_born_mid_write.py: a thread born between a look's read of dom0 and our
write to its creator has the mask that write moved its creator off, and the next look takes
it in hand because it counts that mask as ours.  That count lived in xapi-numad's memory
only: restarted between the write and the next look (an upgrade, a crash), the daemon
judged the newcomer's mask (the guest's old home) an admin's taskset and left the thread
on the old home's dom0 vCPUs for good (never journalled, not handed back either).  The
masks are kept in the state database now, for the next look of whichever process runs it."""
import attrs
from test_backend_affinity import dom0_tree, host_with_guest_3
from test_review_backend_inherited import allowed_list

from xapi_numa.ops.backend_alignment import LOOK_EVERY
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.backend_pins import BackendJournal
from xapi_numa.state.db import Database

N0 = frozenset({0, 1})  # topology of test_backend_affinity: pCPUs 0-1 node 0, 2-3 node 1


def _moved_with_a_thread_born_mid_write(tmp_path):
    """Guest 3's device model aligned on node 1, its home moved to node 0, and thread 312
    born (with node 1's mask) while our write moved its creator 310 to node 0."""
    hv = host_with_guest_3(tmp_path, dtype="hvm")
    fake = dom0_tree(tmp_path, irqbalance=False)
    fake.thread(310, "qemu-dm-3", allowed="0-1")
    fake.thread(311, "qemu-dm-3", allowed="0-1", pid=310)
    dom0 = fake.dom0([])
    path = str(tmp_path / "l.db")
    rt = Runtime(hv, Database(path), Settings(rebalancing=False), dom0=dom0)
    rt.cycle()
    hv.set_vcpu_affinity(3, 0, soft=N0)
    write, born = dom0.set_affinity, []

    def born_mid_write(tid, cpus):
        if tid == 310 and not born:
            born.append(312)
            fake.thread(312, "qemu-dm-3", allowed="1", pid=310, start=5000)
        write(tid, cpus)
    dom0.set_affinity = born_mid_write
    rt.cycle()
    dom0.set_affinity = write
    assert born and allowed_list(fake, "310/status") == "0" and allowed_list(fake, "312/status") == "1"
    return hv, fake, dom0, path


def test_a_thread_born_mid_write_follows_after_a_restart(tmp_path):
    hv, fake, dom0, path = _moved_with_a_thread_born_mid_write(tmp_path)
    db = Database(path)  # xapi-numad restarted: a new process, nothing of the last one's memory
    restarted = Runtime(hv, db, Settings(rebalancing=False), dom0=dom0)
    hv.run(1.0)
    restarted.cycle()
    assert allowed_list(fake, "312/status") == "0", "the thread born mid-write is left on the old home's dom0 vCPU"
    assert 312 in {o.ident for o in BackendJournal(db).entries()}


def test_after_a_restart_the_masks_still_count_for_one_look_only(tmp_path):
    hv, fake, dom0, path = _moved_with_a_thread_born_mid_write(tmp_path)
    restarted = Runtime(hv, Database(path), Settings(rebalancing=False), dom0=dom0)
    hv.run(1.0)
    restarted.cycle()  # the look that counts them
    hv.run(LOOK_EVERY + 1.0)
    restarted.cycle()  # one that moved nothing
    fake.thread(313, "qemu-dm-3", allowed="1", pid=310, start=6000)  # an admin's taskset, after
    again = Runtime(hv, Database(path), Settings(rebalancing=False), dom0=dom0)
    hv.run(LOOK_EVERY + 1.0)
    again.cycle()
    assert allowed_list(fake, "313/status") == "1"


def test_a_mask_journalled_long_ago_counts_no_more(tmp_path, monkeypatch):
    """xapi-numad stopped for long after the write: an admin may have set that mask since
    (long by the host's clock: tests/test_review24_moved_from_wall_clock.py)."""
    import time

    from xapi_numa.state.backend_pins import MOVED_FROM_KEPT_S

    hv, fake, dom0, path = _moved_with_a_thread_born_mid_write(tmp_path)
    later = Database(path, clock=lambda: time.time() + MOVED_FROM_KEPT_S + 1)
    monkeypatch.setattr(type(hv), "clock", lambda self, real=type(hv).clock: real(self) + MOVED_FROM_KEPT_S + 1)
    restarted = Runtime(hv, later, Settings(rebalancing=False), dom0=dom0)
    restarted.cycle()
    assert allowed_list(fake, "312/status") == "1"
    with later.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM backend_moved_from").fetchone()[0] == 0  # (and dropped)


def test_the_journal_keeps_a_mask_with_its_write_and_a_look_drops_only_those_it_read(tmp_path):
    from xapi_numa.core.backend_affinity import THREAD, Owned

    journal = BackendJournal(Database(str(tmp_path / "l.db")))
    entry = Owned("uuid-1", THREAD, 500, "qemu-dm-1", 77, cpus=frozenset({2, 3}))
    journal.record(entry, moved_from=frozenset({0, 1}))  # in the entry's transaction, before the write
    journal.record(attrs.evolve(entry, ident=501))  # a write that moved nothing off a mask of note
    masks, read = journal.moved_from()
    assert masks == (("uuid-1", frozenset({0, 1})),)
    journal.record(attrs.evolve(entry, ident=502), moved_from=frozenset({4, 5}))  # this look's own write
    journal.forget_moved_from(read)
    assert journal.moved_from()[0] == (("uuid-1", frozenset({4, 5})),)
