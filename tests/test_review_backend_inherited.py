"""Review: a thread that a backend process we aligned starts afterwards inherits our
affinity (Linux copies the creating thread's CPU mask), is never journalled, and so is
never handed back: opting out, --no-backend-affinity and the RPM's --hand-back leave it
pinned to one node's dom0 vCPUs for the rest of the process's life."""
import os

from test_backend_affinity import dom0_tree, host_with_guest_3

from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.backend_pins import BackendJournal
from xapi_numa.state.db import Database


def allowed_list(fake, rel):
    text = fake.read(rel)
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Cpus_allowed_list:")][0]


def test_a_thread_started_after_alignment_is_handed_back_too(tmp_path):
    hv = host_with_guest_3(tmp_path, dtype="hvm")
    fake = dom0_tree(tmp_path, irqbalance=False)
    fake.thread(310, "qemu-dm-3", allowed="0-1")                 # guest 3's device model
    fake.thread(311, "qemu-dm-3", allowed="0-1", pid=310)
    calls = []
    dom0 = fake.dom0(calls)
    db = Database(str(tmp_path / "l.db"))
    Runtime(hv, db, Settings(rebalancing=False), dom0=dom0).cycle()
    assert allowed_list(fake, "310/status") == "1" and allowed_list(fake, "311/status") == "1"

    # qemu starts a thread (an I/O worker, a hot-plugged device's): it inherits the mask we set
    fake.thread(312, "qemu-dm-3", allowed="1", pid=310, start=5000)

    # xapi-numad --no-backend-affinity (what the RPM's --hand-back plans too): dom0's default back
    Runtime(hv, db, Settings(rebalancing=False, backend_affinity=False), dom0=dom0).cycle()
    assert BackendJournal(db).entries() == []
    assert allowed_list(fake, "310/status") == "0-1" and allowed_list(fake, "311/status") == "0-1"
    assert allowed_list(fake, "312/status") == "0-1", \
        "thread 312 of guest 3's qemu is left pinned to node 1's dom0 vCPU after the hand-back"


def test_an_admins_taskset_after_ours_is_theirs_for_good(tmp_path):
    """The daemon aligned guest 3's qemu; the admin then pinned one of its threads with taskset.
    It used to be overwritten at the next look, and handed back to dom0's default later."""
    hv = host_with_guest_3(tmp_path, dtype="hvm")
    fake = dom0_tree(tmp_path, irqbalance=False)
    fake.thread(310, "qemu-dm-3", allowed="0-1")
    fake.thread(311, "qemu-dm-3", allowed="0-1", pid=310)
    dom0 = fake.dom0([])
    db = Database(str(tmp_path / "l.db"))
    Runtime(hv, db, Settings(rebalancing=False), dom0=dom0).cycle()
    assert allowed_list(fake, "311/status") == "1"
    assert {o.ident: o.cpus for o in BackendJournal(db).entries()} == {310: frozenset({1}), 311: frozenset({1})}

    fake.thread(311, "qemu-dm-3", allowed="0", pid=310)  # taskset -p -c 0 311 (same thread, same start)
    Runtime(hv, db, Settings(rebalancing=False), dom0=dom0).cycle()  # a new look
    assert allowed_list(fake, "311/status") == "0"
    assert [o.ident for o in BackendJournal(db).entries()] == [310]  # theirs now

    Runtime(hv, db, Settings(rebalancing=False, backend_affinity=False), dom0=dom0).cycle()
    assert allowed_list(fake, "310/status") == "0-1" and allowed_list(fake, "311/status") == "0"
