"""make xen-test's reading of a boot's console (tests/xen/harness.py), on a made-up console.

CI keeps only the tail of a run's log, so the harness repeats each failed real-Xen
test's reason at the very end; these check what it picks out of dom0's console.
"""
import os
import sys

import pytest

if sys.version_info < (3, 7):  # make xen-test runs on the build host's Python, never in a dom0
    pytest.skip("tests/xen/harness.py needs Python 3.7+ (re.Match, capture_output)", allow_module_level=True)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "xen"))
import harness  # noqa: E402

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
