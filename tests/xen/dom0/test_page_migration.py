"""Real-Xen tests of page migration (make xen-test): a PVH guest that keeps
checksumming its own memory has it moved between the nodes for real.

After every move: debug key 'u' shows the pages where they should be, the
guest's memcheck still says "ok" (it stops with CORRUPT on the first bad
page), its pass counter keeps rising, and the domain is not left paused.
"""
import errno
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import console, create_guest, debug_key_dump, expected_scheduler, wait_console
from xenlib import gfns_in, live_domain, stopped_move

from xapi_numa.ops import move_memory as migrate
from xapi_numa.core import memory_move as pagemove
from xapi_numa.errors import HypervisorError, MoveStopped, NotMovable
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import MoveJournal

GUEST = "memcheck"
HOLDPAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bin", "holdpage")


@pytest.fixture(scope="module", autouse=True)
def once_per_run(xen_cmdline):
    if expected_scheduler(xen_cmdline) != "credit2":
        pytest.skip("page moves do not depend on the scheduler: they run in the credit2 boot only")


@pytest.fixture(scope="module")
def guest():
    """One PVH guest for the module: 96 MiB (each full move under emulation costs CI's time
    budget about a minute per 64 MiB; Debian's guest kernel alone takes 56 MB, text, data
    and bss, so 64 MiB does not build), 2 vCPUs, its memory on node 0."""
    domid = create_guest(GUEST, paused=False, memory=96, kind="pvh", initrd="/opt/guest/initrd-mem.cpio",
                         cpus_soft="node:0")
    try:
        m = wait_console(GUEST, r"memcheck: gref (\d+) gfn (0x[0-9a-f]+)", timeout=180, untouched=True)
        wait_console(GUEST, r"memcheck: pass 2 ok", timeout=180, untouched=True)
        yield {"domid": domid, "gref": int(m.group(1)), "grant_gfn": int(m.group(2), 16)}
    finally:
        subprocess.run(["xl", "destroy", GUEST], capture_output=True, timeout=60)


@pytest.fixture
def ledger(tmp_path):
    return Ledger(str(tmp_path / "ledger.db"))


def last_pass(name: str) -> int:
    passes = [int(line.split()[2]) for line in console(name).splitlines() if line.startswith("memcheck: pass ")]
    return passes[-1] if passes else 0


def assert_guest_healthy(hv, domid: int) -> None:
    """Not paused, never corrupt, and still making progress."""
    assert not live_domain(hv, domid).paused
    before = last_pass(GUEST)
    wait_console(GUEST, rf"memcheck: pass {before + 1} ok", timeout=120)
    assert "CORRUPT" not in console(GUEST), console(GUEST)[-2000:]


def pages(domid: int) -> dict:
    dump = debug_key_dump()[domid]
    return {n: dump.get(n, 0) for n in (0, 1)}


def bench(what: str, report: dict) -> None:
    """Figures for make bench, straight to the console (pytest captures stdout)."""
    fields = {k: report[k] for k in ("released_pages", "batches", "pause_max_ms", "pause_median_ms",
                                     "throughput_mib_s", "elapsed_s", "superpages")}
    with open("/dev/console", "w") as console_dev:
        console_dev.write("XEN-BENCH: " + json.dumps(dict(fields, what=what)) + "\n")


def move(hv, ledger, to, **kw):
    """prepare and run; a move that stops unasked fails with its whole report: which gfns
    stayed referenced, and what a fresh scan takes each of them for."""
    run_kw = {k: kw.pop(k) for k in ("fault", "fault_batch", "verify_chunk") if k in kw}
    plan = migrate.prepare(hv, GUEST, to, **kw)
    if run_kw:  # a fault asked for: the caller checks the stop
        return plan, migrate.run(hv, ledger.db, plan, **run_kw)
    try:
        return plan, migrate.run(hv, ledger.db, plan)
    except MoveStopped as err:
        pytest.fail(stopped_move(hv, plan.domain.domid, err))


def test_skip_set_has_the_frames_xen_and_backends_use(hv, guest):
    started = time.monotonic()
    memory = hv.memory_map(guest["domid"])
    scan = time.monotonic() - started
    skipped = pagemove.skipped_counts(memory)
    assert skipped.get("magic", 0) >= 2          # xenstore and console rings at least
    assert skipped.get("vcpu-info", 0) >= 2      # one per vCPU
    assert skipped.get("evtchn", 0) >= 3         # a control block per vCPU and the event array
    # the page the guest granted to dom0 is skipped as granted
    assert memory.classes[guest["grant_gfn"]] == pagemove.GRANTED
    movable = len(pagemove.movable_gfns(memory))
    assert sum(skipped.values()) < 200, skipped   # few false positives
    assert 23000 < movable <= 96 * 256
    with open("/dev/console", "w") as console_dev:
        console_dev.write(f"XEN-TEST-NOTE: scan of {len(memory.classes)} gfns ({movable} movable) took "
                          f"{scan:.2f} s ({dict(memory.scan_phases)}); skipped {skipped}\n")


def test_full_move_node0_to_node1_keeps_the_guest_intact(hv, guest, ledger):
    before = pages(guest["domid"])
    assert before[0] > 0.9 * sum(before.values())
    plan, report = move(hv, ledger, 1)
    assert report["state"] == "done" and report["moved_pages"] == plan.pages
    assert report["superpages"] >= plan.superpage_runs // 2 > 0   # order-9 populate for whole runs
    after = pages(guest["domid"])
    # all but the skip set (a few dozen frames) and what Xen itself allocated is on node 1 now
    assert after[0] < 0.01 * sum(after.values()), after
    assert sum(after.values()) == sum(before.values())
    assert hv.node_affinity(guest["domid"]) == frozenset({1})
    assert all(v.soft == hv.topology().cpus_of_nodes([1]) for v in hv.vcpus(guest["domid"]))
    assert_guest_healthy(hv, guest["domid"])
    bench("full move, 512-page batches", report)


def test_partial_move_back_moves_only_max(hv, guest, ledger):
    before = pages(guest["domid"])
    plan, report = move(hv, ledger, 0, max_bytes=16 << 20)
    assert plan.pages == 4096 and report["moved_pages"] == 4096
    after = pages(guest["domid"])
    assert after[0] - before[0] == 4096
    assert after[1] == before[1] - 4096
    assert_guest_healthy(hv, guest["domid"])


def test_cli_moves_the_rest_back(hv, guest, tmp_path):
    env = dict(os.environ, XAPI_NUMA_LEDGER=str(tmp_path / "cli.db"))
    out = subprocess.run([sys.executable, "-m", "xapi_numa.cli", "migrate", GUEST, "--to", "node:0", "--json"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["state"] == "done" and report["superpages"] > 0
    after = pages(guest["domid"])
    assert after[1] < 0.01 * sum(after.values()), after
    assert_guest_healthy(hv, guest["domid"])


def test_grant_mapped_by_dom0_is_skipped_and_still_shared(hv, guest, ledger):
    """dom0 maps the guest's granted page through gntdev, the memory moves,
    then dom0 writes through its mapping: the guest must see the write."""
    import fcntl
    import mmap
    import struct

    fd = os.open("/dev/xen/gntdev", os.O_RDWR)
    try:
        # struct ioctl_gntdev_map_grant_ref { u32 count, pad; u64 index; {u32 domid, ref} }
        req = bytearray(struct.pack("=IIQII", 1, 0, 0, guest["domid"], guest["gref"]))
        fcntl.ioctl(fd, 0x00184700, req)  # IOCTL_GNTDEV_MAP_GRANT_REF
        index = struct.unpack_from("=Q", req, 8)[0]
        shared = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=index)
        plan, report = move(hv, ledger, 1)
        assert report["state"] == "done"
        assert guest["grant_gfn"] in plan.skipped_gfns["granted"]
        shared[0:4] = struct.pack("=I", 0x6E756D61)
        wait_console(GUEST, r"memcheck: grant saw 0x6e756d61", timeout=120)
        shared.close()
    finally:
        os.close(fd)
    assert_guest_healthy(hv, guest["domid"])


def test_failure_mid_batch_puts_everything_back(hv, guest, ledger):
    """C-level fault: the batch fails right after its frames were released."""
    with pytest.raises(MoveStopped) as info:
        move(hv, ledger, 1, fault="after-release", fault_batch=2)  # all on node 1 already: placement unchanged
    report = json.loads(info.value.params[2])
    assert report["state"] == "failed" and report["batches"] == 3
    assert "populate" in report["error"]
    assert_guest_healthy(hv, guest["domid"])
    assert MoveJournal(ledger.db).status(report["uuid"]).state == "failed"


def test_contents_not_put_back_keep_the_guest_paused_until_restored(hv, guest, ledger):
    """C-level fault: the copy back fails (as a refused mapping would), the new frames
    hold zeroes.  The batch keeps the guest paused with the contents in its record, and
    the mover's recovery writes them back before the guest runs again: memcheck's
    checksums would catch a single zeroed page."""
    with pytest.raises(MoveStopped) as info:
        move(hv, ledger, 1, fault="copy-back", fault_batch=2)
    report = json.loads(info.value.params[2])
    assert report["state"] == "failed" and report["batches"] == 3, report
    assert "did not get their contents back" in report["error"], report["error"]
    assert "recovery put them back" in report["error"] and "unpaused" in report["error"], report["error"]
    assert hv.recover_move(guest["domid"]) is None  # the record is gone
    assert MoveJournal(ledger.db).status(report["uuid"]).state == "failed"
    assert_guest_healthy(hv, guest["domid"])


def test_frame_still_referenced_stops_the_run(hv, guest, ledger):
    """dom0 holds a foreign mapping of one movable frame, as a backend would:
    its release frees nothing, and the move stops before another batch."""
    plan = migrate.prepare(hv, GUEST, 0)
    held = plan.batches[3][100]
    holder = subprocess.Popen([HOLDPAGE, str(guest["domid"]), hex(held)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = pages(guest["domid"])
        with pytest.raises(MoveStopped) as info:
            migrate.run(hv, ledger.db, plan)
        report = json.loads(info.value.params[2])
        assert report["batches"] == 4, report   # batches 0-2 moved, 3 stopped, none after
        assert held in gfns_in(report["stuck_gfns"])
        assert "not freed" in report["error"]
        moved = sum(len(b) for b in plan.batches[:3])
        after = pages(guest["domid"])
        assert after[0] - before[0] >= moved
        # the batches after the stuck one were not touched
        assert after[1] >= before[1] - moved - len(plan.batches[3])
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert_guest_healthy(hv, guest["domid"])


def test_probe_pauses_briefly_and_adds_to_the_skip_set(hv, guest):
    plain = hv.memory_map(guest["domid"])
    probed = hv.memory_map(guest["domid"], probe_ms=3000)
    # whatever the layouts found is still skipped; the probe can only add
    assert all(probed.classes[g] != 0 for g in range(len(plain.classes)) if plain.classes[g] not in (0, 1))
    found = pagemove.skipped_counts(probed)
    with open("/dev/console", "w") as console_dev:
        console_dev.write(f"XEN-TEST-NOTE: probe (3 s) skip set {found}; without it {pagemove.skipped_counts(plain)}\n")
    assert_guest_healthy(hv, guest["domid"])


def test_mover_dying_inside_the_pause_window_is_put_back(hv, guest):
    """C-level crash: the mover exits right after releasing a batch's frames,
    leaving the guest paused with those gfns unbacked; recovery backs them
    again from the batch record, restores their contents and unpauses."""
    domid = guest["domid"]
    plan = migrate.prepare(hv, GUEST, 1)
    code = ("import sys; from xapi_numa.backends.xen import XenHypervisor; "
            f"XenHypervisor().move_pages({domid}, {list(plan.batches[2])!r}, 1, fault='die-after-release')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 99, proc.stderr
    assert live_domain(hv, domid).paused
    note = hv.recover_move(domid)
    assert note and "unpaused" in note, note
    assert not live_domain(hv, domid).paused
    assert hv.recover_move(domid) is None
    assert_guest_healthy(hv, domid)


def test_mover_killed_mid_batch_is_recovered(hv, guest, tmp_path):
    """SIGKILL while a batch is in flight: the domain may be left paused; the next
    run (here: migrations --recover) unpauses it and marks the move interrupted."""
    env = dict(os.environ, XAPI_NUMA_LEDGER=str(tmp_path / "kill.db"))
    mover = subprocess.Popen([sys.executable, "-m", "xapi_numa.cli", "migrate", GUEST, "--to", "0", "--json"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    journal = MoveJournal(Ledger(str(tmp_path / "kill.db")).db)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and mover.poll() is None:
        rows = journal.rows()
        if rows and rows[0].report.get("batches", 0) >= 2:
            break
        time.sleep(0.05)
    ended_first = mover.poll()
    mover.kill()
    mover.wait()
    assert ended_first is None, (f"the mover ended (exit {ended_first}) before it could be killed: "
                                 f"{journal.rows()[:1]}; domain {live_domain(hv, guest['domid']).domid} lives")
    was_paused = live_domain(hv, guest["domid"]).paused
    out = subprocess.run([sys.executable, "-m", "xapi_numa.cli", "migrations", "--recover", "--json"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["migrations"][0]["state"] == "interrupted"
    assert any("unpaused" in n for n in result["recovered"]) == was_paused
    with open("/dev/console", "w") as console_dev:
        console_dev.write(f"XEN-TEST-NOTE: mover killed in flight; domain was left paused: {was_paused}\n")
    assert_guest_healthy(hv, guest["domid"])


def test_pv_guest_is_refused(hv, guests, ledger):
    guests("pv-refused")
    with pytest.raises(NotMovable) as info:
        migrate.prepare(hv, "pv-refused", 1)
    assert "PV guest" in info.value.message


def test_populate_on_demand_guest_is_refused(hv, guests):
    """Built below its maximum, a PVH guest has populate-on-demand entries: refused before
    its gfns are typed (which would populate them).  Created paused and never run, the
    move refuses it earlier still (its toolstack may be building it: review 15j), so
    libxenuma's own check is asked directly too."""
    domid = guests("pod-refused", memory=64, maxmem=128, kind="pvh")
    before = hv.node_pages(domid)
    with pytest.raises(NotMovable):
        migrate.prepare(hv, "pod-refused", 1)
    with pytest.raises(HypervisorError) as info:
        hv.memory_map(domid)
    assert info.value.errno == errno.EOPNOTSUPP and "populate-on-demand" in info.value.message
    assert hv.node_pages(domid) == before  # nothing of it populated by a scan


def test_no_domain_is_left_paused(hv):
    """Whatever the tests above did, every guest runs (only those created paused would not)."""
    paused = [d.name for d in hv.domains() if d.paused and d.domid != 0]
    assert paused == [], paused
