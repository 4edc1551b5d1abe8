"""Fixtures for tests that run inside dom0 of a real Xen host (make xen-test)."""
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from xenlib import console, create_guest, debug_key_dump, wait_console, xl  # noqa: E402,F401

@pytest.fixture
def guests():
    """Names created through it are destroyed afterwards, whatever happens."""
    made = []

    def make(name, **kw):
        made.append(name)
        return create_guest(name, **kw)

    yield make
    for name in made:
        subprocess.run(["xl", "destroy", name], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def hv():
    from xapi_numa.backends.xen import XenHypervisor

    return XenHypervisor(dump_interval=0.5)


@pytest.fixture(scope="session")
def xen_cmdline() -> str:
    for line in xl("info").splitlines():
        if line.startswith("xen_commandline"):
            return line.split(":", 1)[1]
    return ""


def expected_scheduler(cmdline: str) -> str:
    return "credit" if re.search(r"\bsched=credit\b", cmdline) else "credit2"


os.environ.setdefault("XAPI_NUMA_BACKEND", "xen")


def _kernel_arg(name: str) -> str:
    try:
        with open("/proc/cmdline") as f:
            m = re.search(r"\b{}=(\S+)".format(name), f.read())
    except OSError:
        return ""
    return m.group(1) if m else ""


def pytest_collection_modifyitems(config, items):
    """harness.py --only: just these test files of the suite (xenonly=a+b on dom0's command
    line: a comma would split QEMU's multiboot module list)."""
    only = set(filter(None, _kernel_arg("xenonly").split("+")))
    if not only:
        return
    keep = [i for i in items if os.path.splitext(os.path.basename(str(i.fspath)))[0] in only]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep


def pytest_runtest_logreport(report):
    """Each test's outcome on the console as it happens: a boot killed at its timeout
    still shows how far the suite got and what took the time (pytest -q keeps its
    progress dots on one line until the end)."""
    if report.when == "call" or report.outcome != "passed":
        try:
            with open("/dev/console", "w") as console_dev:
                console_dev.write("XEN-TEST-PROGRESS: {} {} {} {:.1f}s\n".format(
                    report.nodeid, report.when, report.outcome, report.duration))
        except OSError:
            pass  # not in the test dom0


_SPACE_REPORTED = []


def _report_space(why: str) -> None:
    """Where dom0's space went (its root is a RAM filesystem of about half its memory,
    which the image fills to half): once per boot, the first time space ran out, so
    the next occurrence says what filled it."""
    if _SPACE_REPORTED:
        return
    _SPACE_REPORTED.append(why)
    try:
        with open("/dev/console", "w") as console_dev:
            console_dev.write("XEN-TEST-SPACE: {}\n".format(why))
            for argv in (["df", "-k", "/", "/tmp", "/run"],
                         ["sh", "-c", "du -xak / 2>/dev/null | sort -n | tail -25"]):
                out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     universal_newlines=True, timeout=120).stdout
                console_dev.write("".join("XEN-TEST-SPACE: " + line + "\n" for line in out.splitlines()))
    except (OSError, subprocess.SubprocessError):
        pass


def pytest_runtest_makereport(item, call):
    if call.excinfo is not None and "No space left on device" in str(call.excinfo.value):
        _report_space("{}: {}".format(item.nodeid, "no space left on device"))
