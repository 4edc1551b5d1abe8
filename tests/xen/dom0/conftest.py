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
