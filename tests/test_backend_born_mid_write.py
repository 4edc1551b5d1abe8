"""A backend thread born between a look's read of dom0 and our write to its creator.

Linux gives a new thread its creator's CPU mask.  When a guest's home moves, the next look
reads its device model's threads (each on the old home's dom0 vCPUs, journalled with that
mask) and writes the new home's mask to each.  A thread the device model starts in the
milliseconds between that read and the write to its creator gets the old mask; the journal
by then says each thread we hold has the new one, so at the next look the newcomer's mask
was neither dom0's default, nor its home's, nor one we gave or hold: it was taken for an
admin's taskset and left on the old home's dom0 vCPU for good.

The mask a thread had when our write moved it off it is one of ours (the planner writes
only threads at dom0's default or at a mask of ours), so the next look counts it as ours
too: that one look only, which is when a thread born in the window is first seen."""
from test_backend_affinity import dom0_tree, host_with_guest_3, kinds, qemu, snap_two_each, state
from test_review_backend_inherited import allowed_list

from xapi_numa.core import backend_affinity as ba
from xapi_numa.ops.backend_alignment import LOOK_EVERY
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.backend_pins import BackendJournal
from xapi_numa.state.db import Database

N0 = frozenset({0, 1})  # topology of test_backend_affinity: pCPUs 0-1 node 0, 2-3 node 1


def test_a_thread_born_while_its_creator_is_moved_follows_at_the_next_look(tmp_path):
    hv = host_with_guest_3(tmp_path, dtype="hvm")  # guest 3 homed on node 1 (dom0 vCPU 1)
    fake = dom0_tree(tmp_path, irqbalance=False)
    fake.thread(310, "qemu-dm-3", allowed="0-1")
    fake.thread(311, "qemu-dm-3", allowed="0-1", pid=310)
    calls = []
    dom0 = fake.dom0(calls)
    db = Database(str(tmp_path / "l.db"))
    rt = Runtime(hv, db, Settings(rebalancing=False), dom0=dom0)
    rt.cycle()
    assert allowed_list(fake, "310/status") == "1" and allowed_list(fake, "311/status") == "1"

    # the home moves to node 0; qemu starts a thread just before our write to 310 reaches it
    hv.set_vcpu_affinity(3, 0, soft=N0)
    write = dom0.set_affinity

    def born_mid_write(tid, cpus):
        if tid == 310 and not born:
            born.append(312)
            fake.thread(312, "qemu-dm-3", allowed="1", pid=310, start=5000)  # 310's mask, before the write
        write(tid, cpus)
    born = []
    dom0.set_affinity = born_mid_write
    rt.cycle()
    assert born and allowed_list(fake, "310/status") == "0" and allowed_list(fake, "312/status") == "1"

    hv.run(LOOK_EVERY + 1.0)  # the next look at dom0
    rt.cycle()
    assert allowed_list(fake, "312/status") == "0", "the thread born mid-write is left on the old home's dom0 vCPU"
    assert 312 in {o.ident for o in BackendJournal(db).entries()}  # journalled: handed back with the rest

    # for the next look only: once a look has moved nothing off it, a thread with the old
    # home's mask (an admin's taskset) is theirs again, as before
    hv.run(LOOK_EVERY + 1.0)
    rt.cycle()
    fake.thread(313, "qemu-dm-3", allowed="1", pid=310, start=6000)
    hv.run(LOOK_EVERY + 1.0)
    rt.cycle()
    assert allowed_list(fake, "313/status") == "1"


def test_the_planner_takes_a_mask_the_last_looks_writes_moved_a_sibling_off():
    """dom0 vCPUs 0,1 on node 0 and 2,3 on node 1; guest 1 was homed on node 0, now on 1."""
    s = snap_two_each({1: frozenset({2, 3})})
    held = (ba.Owned("uuid-1", "thread", 500, "qemu-dm-1", 77, cpus=frozenset({2, 3})),)
    tasks = (qemu(500, frozenset({2, 3})), qemu(501, frozenset({0, 1})))
    assert kinds(ba.plan(s, state(s, tasks=tasks, owned=held))) == []  # an admin's mask, for all we know
    moved = (("uuid-1", frozenset({0, 1})),)
    assert kinds(ba.plan(s, state(s, tasks=tasks, owned=held, moved_from=moved))) == [
        ("SetThreadAffinity", 501, [2, 3])]
    # another guest's mask moved is nothing to this one
    assert kinds(ba.plan(s, state(s, tasks=tasks, owned=held, moved_from=(("uuid-2", frozenset({0, 1})),)))) == []
