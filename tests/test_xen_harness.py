"""make xen-test's reading of a boot's console (tests/xen/harness.py), on a made-up console.

CI keeps only the tail of a run's log, so the harness repeats each failed real-Xen
test's reason at the very end; these check what it picks out of dom0's console.
"""
import os
import re
import sys

import pytest

if sys.version_info < (3, 7):  # make xen-test runs on the build host's Python, never in a dom0
    pytest.skip("tests/xen/harness.py needs Python 3.7+ (re.Match, capture_output)", allow_module_level=True)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "xen"))
import harness  # noqa: E402
import xenlib  # noqa: E402

CONSOLE = """(XEN) Brought up 4 CPUs
XEN-TEST: dom0 ready: xen_scheduler : credit2
XEN-TEST: tests/xen/hvm/test_hvm_real.py::test_memory_lands_where_the_plan_says PASSED
XEN-TEST: =========================== short test summary info ============================
XEN-TEST: FAILED tests/xen/hvm/test_hvm_real.py::test_vcpus_and_daemon_cycles - AssertionError: memcheck made no progress past pass 12 in 600 s
XEN-TEST: ERROR tests/xen/hvm/test_hvm_real.py::test_disk - RuntimeError: xl create failed
XEN-TEST: XFAIL tests/xen/hvm/test_hvm_real.py::test_disk_io - reason: FAILED once
XEN-TEST: 1 failed, 5 passed, 1 xfailed, 1 error in 2196.04s (0:36:36)
XEN-TEST-EXIT: done
"""


def test_the_reasons_of_failed_and_erred_tests_are_picked_out():
    lines, summary, finished = harness.results(CONSOLE)
    assert finished and summary.startswith("1 failed, 5 passed")
    assert harness.failed_tests(lines) == [
        "FAILED tests/xen/hvm/test_hvm_real.py::test_vcpus_and_daemon_cycles - AssertionError: memcheck made no "
        "progress past pass 12 in 600 s",
        "ERROR tests/xen/hvm/test_hvm_real.py::test_disk - RuntimeError: xl create failed"]


def test_a_clean_boot_has_no_reasons():
    lines, summary, _ = harness.results(CONSOLE.replace("FAILED tests", "PASSED tests").replace("ERROR tests", "x"))
    assert harness.failed_tests(lines) == []


def test_a_boot_that_failed_always_says_why():
    lines, summary, finished = harness.results(CONSOLE)
    assert harness.boot_failures(True, finished, summary, lines, "") == []
    assert len(harness.boot_failures(False, finished, summary, lines, "")) == 2
    # a hang: no summary, no failed test; a wrong library: nothing failed in pytest
    hung = harness.boot_failures(False, False, None, [], "")
    assert hung == ["dom0 did not finish (timeout, hang or panic): see its console tail above"]
    wrong = harness.boot_failures(False, True, "41 passed in 9s", ["41 passed in 9s"], "dom0 loaded /usr/lib64/x.so")
    assert wrong == ["dom0-lib: dom0 loaded /usr/lib64/x.so"]
    crashed = harness.boot_failures(False, True, None, ["INTERNALERROR> boom"], "")
    assert crashed == ["no failed test named; pytest said: nothing"]


def test_a_guest_that_died_is_named_among_the_reasons():
    """A test whose guest vanished says only ESRCH; Xen's console says why."""
    text = ("(XEN) 'u' pressed -> dumping numa info\n"
            "(XEN) d3v1 Triple fault - invoking HVM shutdown action 1\n"
            "(XEN) *** Dumping Dom3 vcpu#1 state: ***\n"
            "(XEN) Hardware Dom0 crashed: rebooting machine in 5 seconds.\n")
    deaths = harness.guest_deaths(text)
    assert deaths == ["(XEN) d3v1 Triple fault - invoking HVM shutdown action 1",
                      "(XEN) *** Dumping Dom3 vcpu#1 state: ***"]
    lines, summary, finished = harness.results(CONSOLE)
    why = harness.boot_failures(False, finished, summary, lines, "", deaths)
    assert why[-2:] == [f"a guest died: {line}" for line in deaths]
    assert harness.guest_deaths("(XEN) Hardware Dom0 crashed: rebooting machine in 5 seconds.") == []


def test_a_reason_shared_by_many_tests_is_said_once():
    failed = ["ERROR t.py::test_a - RuntimeError: guest did not boot",
              "FAILED t.py::test_b - AssertionError: 3 != 4",
              "ERROR t.py::test_c - RuntimeError: guest did not boot",
              "ERROR t.py::test_d - RuntimeError: xl said no"]
    assert harness.same_reason_once(failed) == [
        "ERROR 2 tests (t.py::test_a, t.py::test_c) - RuntimeError: guest did not boot",
        "FAILED t.py::test_b - AssertionError: 3 != 4",
        "ERROR t.py::test_d - RuntimeError: xl said no"]
    lines = ["FAILED t.py::test_e", "FAILED t.py::test_f"]   # pytest gives no reason when it has none
    assert harness.same_reason_once(lines) == ["FAILED 2 tests (t.py::test_e, t.py::test_f)"]


def test_many_tests_never_push_their_shared_reason_off_the_line():
    failed = ["ERROR tests/xen/dom0/test_page_migration.py::test_number_{} - RuntimeError: guest did not "
              "boot".format(i) for i in range(8)]
    line, = harness.same_reason_once(failed)
    assert line == ("ERROR 8 tests (tests/xen/dom0/test_page_migration.py::test_number_0, "
                    "tests/xen/dom0/test_page_migration.py::test_number_1, "
                    "tests/xen/dom0/test_page_migration.py::test_number_2 and 5 more) - RuntimeError: guest did "
                    "not boot")
    long_reason = "FAILED t.py::test_x - AssertionError: " + "x" * 2000
    assert len(harness.same_reason_once([long_reason])[0]) == len("FAILED t.py::test_x - ") + harness.REASON_CHARS


DOM0_DEATH = """(XEN) d3v1 Triple fault - invoking HVM shutdown action 1
XEN-TEST: dom0 ready: xen_scheduler : credit2
XEN-TEST: =========================== short test summary info ============================
XEN-TEST: FAILED tests/xen/dom0/test_page_migration.py::test_mover_killed - AssertionError: domain 1 is gone
XEN-TEST: ERROR tests/xen/dom0/test_vnuma_real.py::test_a - RuntimeError: xl create failed
XEN-TEST: ERROR tests/xen/dom0/test_vnuma_real.py::test_b - RuntimeError: xl create failed
XEN-TEST: 1 failed, 40 passed, 2 errors in 900.00s (0:15:00)
XEN-TEST-EXIT: done
"""


def boot_once(monkeypatch, suite: str, text: str) -> tuple:
    """Boot.once on a made-up console, the boot itself replaced."""
    asked = []
    monkeypatch.setattr(harness, "boot", lambda *a, **kw: (asked.append(kw["only"]), (0, text, 1.0))[1])
    monkeypatch.setattr(harness, "save_bench", lambda text, label: None)
    monkeypatch.setattr(harness, "dom0_lib_verdict", lambda text, digest: "")  # dom0 loaded ours
    return harness.Boot("xen", "vmlinux", "initrd", suite, "credit2", "digest").once("", attempt=1), asked


def test_after_a_guest_died_the_failed_dom0_files_run_again(monkeypatch):
    (ok, why, deaths, failed), _ = boot_once(monkeypatch, "dom0", DOM0_DEATH)
    assert not ok and deaths == ["(XEN) d3v1 Triple fault - invoking HVM shutdown action 1"]
    assert harness.retry_files("dom0", ok, why, deaths, failed) == "test_page_migration,test_vnuma_real"
    # the other suites are short: the whole suite again
    assert harness.retry_files("hvm", ok, why, deaths, failed) == ""


def test_no_retry_without_a_guest_death_or_a_failed_test(monkeypatch):
    (ok, why, deaths, failed), _ = boot_once(monkeypatch, "dom0", DOM0_DEATH.replace("d3v1 Triple fault - invoking HVM shutdown action 1", "d3v1 upcall vector f3"))
    assert not ok and deaths == []
    assert harness.retry_files("dom0", ok, why, deaths, failed) is None
    # a guest died, but what failed is not a test (dom0 hung): nothing to choose
    assert harness.retry_files("dom0", False, ["dom0 did not finish"], ["(XEN) d1v0 Triple fault"], []) is None
    assert harness.retry_files("dom0", True, [], ["(XEN) d1v0 Triple fault"], []) is None
    wrong_lib = ["FAILED tests/xen/dom0/test_x.py::t - e", "dom0-lib: dom0 loaded /usr/lib64/x.so"]
    assert harness.retry_files("dom0", False, wrong_lib, ["(XEN) d1v0 Triple fault"], wrong_lib[:1]) is None


def test_a_guest_that_printed_nothing_gets_the_same_rerun():
    """Seen under load: all three spin guests of a daemon boot had empty consoles after
    980 s, and Xen reported no death; the failed files get one fresh boot."""
    silent = ["FAILED tests/xen/daemon/test_daemon_real.py::test_daemon_brings_a_swapped_pair_home - "
              "AssertionError: guest A {} in 982 s".format(harness.SILENT_GUEST)]
    assert harness.retry_files("daemon", False, silent, [], silent) == ""
    dom0 = [silent[0].replace("daemon/test_daemon_real", "dom0/test_page_migration")]
    assert harness.retry_files("dom0", False, dom0, [], dom0) == "test_page_migration"
    # a guest that printed, but not what was awaited, is the code's failure: no rerun
    spoke = ["FAILED tests/xen/daemon/test_daemon_real.py::t - AssertionError: guest A never printed /x/"]
    assert harness.retry_files("daemon", False, spoke, [], spoke) is None


def test_wait_console_says_when_a_guest_printed_nothing_at_all(monkeypatch):
    said = {"A": "", "B": "Linux version 6.1\n"}
    monkeypatch.setattr(xenlib, "console", lambda name: said[name])
    monkeypatch.setattr(xenlib, "patient", lambda seconds: 0.0)
    with pytest.raises(AssertionError, match=re.escape(xenlib.SILENT_GUEST)):
        xenlib.wait_console("A", "up", timeout=1)
    with pytest.raises(AssertionError, match="never printed /up/; its last lines: Linux version 6.1\n"
                                             "console tail:\nLinux version"):
        xenlib.wait_console("B", "up", timeout=1)


def test_wait_console_stops_when_the_guest_dies_and_says_so_on_its_first_line(monkeypatch):
    """Seen in CI: a fixture's PVH guest never printed its first memcheck line, the test
    waited its whole 720 s, and CI's log kept only "console tail:" of why.  A PVH guest's
    own crash shutdown makes Xen print nothing, so the harness saw no death either."""
    said = {"A": "guest: up\nKernel panic - not syncing: Attempted to kill init!\n", "B": "guest: up\n",
            "C": "guest: up\n"}
    alive = {"A": True, "B": False, "C": True}
    looked = []
    monkeypatch.setattr(xenlib, "console", lambda name: said[name])
    monkeypatch.setattr(xenlib, "domain_exists", lambda name: looked.append(name) or alive[name])
    monkeypatch.setattr(xenlib, "LOOK_EVERY", 0.0)
    monkeypatch.setattr(xenlib, "patient", lambda seconds: 0.0 if seconds < 100 else 3600.0)
    expected = {("A", False): ": the guest died;", ("A", True): ": it died before anything under test touched it;",
                ("C", False): ";", ("C", True): ": it stopped before anything under test touched it;"}
    for (name, untouched), how in expected.items():
        with pytest.raises(AssertionError) as err:
            xenlib.wait_console(name, "memcheck", timeout=1, untouched=untouched)
        first = str(err.value).splitlines()[0]
        assert first.startswith(f"guest {name} never printed /memcheck/{how} its last lines: ")
        assert first.endswith(said[name].strip().replace("\n", " | "))
    # a domain that went ends the wait at once, long before the (here hour-long) guard
    gone = f"never printed /memcheck/: {xenlib.GUEST_DIED}; its last lines: guest: up"
    with pytest.raises(AssertionError, match=gone):
        xenlib.wait_console("B", "memcheck", timeout=500)
    assert looked[-1] == "B"


def test_a_wait_for_an_hvm_guests_output_stops_when_the_guest_has_shut_down(tmp_path, monkeypatch):
    """Seen in a CI emulation: the HVM guest triple-faulted (QEMU's TCG; ``on_crash =
    "preserve"`` keeps the domain, shut down) after its first memcheck pass, and every
    test after it waited its whole guard (300 s x 4 for the disk check, 150 s x 4 per
    health check) until dom0's own 2400 s limit, before the harness could rerun the suite."""
    workload = tmp_path / "workload.log"
    workload.write_text("memcheck: pass 2 ok\n")
    monkeypatch.setattr(xenlib, "LOOK_EVERY", 0.0)
    monkeypatch.setattr(xenlib.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(xenlib, "death_said", lambda domid: "(XEN) d1v0 Triple fault - invoking HVM shutdown action 1")
    domains = [type("D", (), {"domid": 1, "shutdown": False, "paused": False})()]
    hv = type("Hv", (), {"domains": lambda self: domains})()
    looks = []

    def alive():
        looks.append(1)
        if len(looks) == 3:  # the guest dies while the test waits
            domains[0].shutdown = True
        return xenlib.running_domain(hv, 1)
    with pytest.raises(AssertionError) as err:
        xenlib.wait_file(str(workload), r"diskcheck: pass 3 ok", timeout=3600, alive=alive)
    assert len(looks) == 3  # at once, not after the hour-long guard
    assert str(err.value) == ("domain 1 has shut down (the guest died); Xen's console says: "
                              "(XEN) d1v0 Triple fault - invoking HVM shutdown action 1")
    domains[0].shutdown = False
    assert xenlib.wait_file(str(workload), r"memcheck: pass (\d+)", timeout=1, alive=alive).group(1) == "2"


def test_only_xl_saying_the_domain_does_not_exist_counts_as_gone(monkeypatch):
    import subprocess
    answers = [subprocess.CompletedProcess([], 1, "", "Can't get domid of domain name 'm', maybe this domain "
                                                      "does not exist.\n"),
               subprocess.CompletedProcess([], 1, "", "libxl: error: cannot connect to xenstored\n"),
               subprocess.CompletedProcess([], 0, "5\n", "")]

    def fake_run(*args, **kw):
        if not answers:
            raise subprocess.TimeoutExpired("xl", 1)
        return answers.pop(0)
    monkeypatch.setattr(xenlib.subprocess, "run", fake_run)
    assert [xenlib.domain_exists("m") for _ in range(4)] == [False, True, True, True]


def test_a_guest_that_died_or_stopped_untouched_gets_the_rerun_and_one_killed_by_the_code_does_not():
    for how in ("it died " + xenlib.GUEST_UNTOUCHED, "it stopped " + xenlib.GUEST_UNTOUCHED):
        line = [f"ERROR tests/xen/dom0/test_page_migration.py::t - AssertionError: guest memcheck never printed "
                f"/x/: {how}; its last lines: guest: up"]
        assert harness.retry_files("dom0", False, line, [], line) == "test_page_migration"
    # after a page move: a kernel the move may have corrupted is the code's failure
    killed = ["FAILED tests/xen/dom0/test_page_migration.py::t - AssertionError: guest memcheck never printed "
              f"/pass 9 ok/: {xenlib.GUEST_DIED}; its last lines: Oops: 0000 [#1] | Kernel panic - not syncing"]
    assert harness.retry_files("dom0", False, killed, [], killed) is None


def fake_boots(monkeypatch, answers: list):
    """QEMU boots of a dom0 suite that answer ``answers`` in turn, (exit code, console):
    the (only, attempt) each was asked for, and the Boot to run."""
    asked = []

    def fake_boot(*args, only="", attempt=1, **kw):
        asked.append((only, attempt))
        code, text = answers[len(asked) - 1]
        return code, text, 1.0
    monkeypatch.setattr(harness, "boot", fake_boot)
    monkeypatch.setattr(harness, "save_bench", lambda text, label: None)
    monkeypatch.setattr(harness, "dom0_lib_verdict", lambda text, digest: "")
    return asked, harness.Boot("xen", "vmlinux", "initrd", "dom0", "credit2", "digest")


def test_a_boot_is_retried_once_and_judged_by_the_second(monkeypatch):
    """run_boots: the failed files boot once more; the second boot decides, the first's
    reasons stay printed (as retried, or failed when the second failed too)."""
    consoles = [(0, DOM0_DEATH), (0, "XEN-TEST: 5 passed in 9.00s\nXEN-TEST-EXIT: done\n")]
    asked, run = fake_boots(monkeypatch, consoles)
    failures, reasons = harness.run_boots([run], "")
    assert asked == [("", 1), ("test_page_migration,test_vnuma_real", 2)]
    assert failures == 0 and reasons and all(word == "retried" for word, _ in reasons)
    assert any("Triple fault" in reason for _, reason in reasons)
    # the second boot fails too: the boot failed, with both boots' reasons
    consoles[1] = (0, DOM0_DEATH)
    asked.clear()
    failures, reasons = harness.run_boots([run], "")
    assert len(asked) == 2 and failures == 1
    assert {word for word, _ in reasons} == {"failed"}
    assert any("first boot" in r for _, r in reasons) and any("first boot" not in r for _, r in reasons)


def test_a_build_older_than_its_c_is_named_never_shipped(tmp_path):
    """The real-Xen tests ship the tree's built libxenuma: one older than its C would test old code."""
    built, source = tmp_path / "_libxenuma.so", tmp_path / "pagemove.c"
    built.write_text("so")
    source.write_text("c")
    os.utime(built, (1000, 1000))
    os.utime(source, (2000, 2000))
    assert harness.newer_than(str(built), [str(source)]).endswith("pagemove.c")
    os.utime(built, (3000, 3000))
    assert harness.newer_than(str(built), [str(source)]) == ""


def _fake_qemu(tmp_path, script: str):
    import subprocess
    console = tmp_path / "console.log"
    f = open(console, "wb")
    proc = subprocess.Popen(["sh", "-c", script], stdout=f, stderr=subprocess.STDOUT)
    return proc, str(console), f


def test_a_machine_that_halts_after_dom0_is_done_is_stopped(tmp_path, monkeypatch):
    """Xen may answer dom0's power-off with a halt: QEMU would then run until the hang guard."""
    monkeypatch.setattr(harness, "EXIT_GRACE", 1)
    proc, console, f = _fake_qemu(tmp_path, "echo XEN-TEST: 1 passed in 1.0s; echo XEN-TEST-EXIT: done; "
                                            "echo '(XEN) Hardware Dom0 halted: halting machine'; exec sleep 300")
    with f:
        assert harness.run_until_powered_off(proc, console) == 0
    assert proc.returncode is not None  # stopped, not left running


def test_a_machine_that_powers_off_keeps_its_own_exit_code(tmp_path):
    proc, console, f = _fake_qemu(tmp_path, "echo XEN-TEST-EXIT: done; exit 3")
    with f:
        assert harness.run_until_powered_off(proc, console) == 3


def test_a_machine_still_running_its_tests_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "EXIT_GRACE", 0)
    proc, console, f = _fake_qemu(tmp_path, "echo XEN-TEST: still at it; sleep 5; exit 7")
    with f:
        assert harness.run_until_powered_off(proc, console) == 7


def test_a_dom0_that_never_reaches_its_tests_is_stopped(tmp_path, monkeypatch):
    """Seen here: dom0's kernel locked up enumerating PCI under QEMU (a soft lockup for
    800 s); the boot would have run until the 2700 s guard.  A dom0 that got ready is
    left alone however long its tests take."""
    monkeypatch.setattr(harness, "READY_GUARD", 1)
    proc, console, f = _fake_qemu(tmp_path, "echo '[ 31.9] watchdog: BUG: soft lockup - CPU#2 stuck'; exec sleep 300")
    with f:
        assert harness.run_until_powered_off(proc, console) == harness.NEVER_READY
    assert proc.returncode is not None
    proc, console, f = _fake_qemu(tmp_path, "echo 'XEN-TEST: dom0 ready: credit2'; sleep 4; exit 5")
    with f:
        assert harness.run_until_powered_off(proc, console) == 5


def test_a_boot_whose_dom0_never_got_ready_runs_the_same_selection_again(monkeypatch):
    asked, run = fake_boots(monkeypatch, [
        (harness.NEVER_READY, "[ 31.9] watchdog: BUG: soft lockup\n"),
        (0, "XEN-TEST: dom0 ready\nXEN-TEST: 5 passed in 9.00s\nXEN-TEST-EXIT: done\n")])
    failures, reasons = harness.run_boots([run], "test_mover_records")
    assert asked == [("test_mover_records", 1), ("test_mover_records", 2)]
    assert failures == 0 and [word for word, _ in reasons] == ["retried"]
    assert "never reached its tests" in reasons[0][1]
