"""Fixtures of the HVM suite (make xen-test-hvm): one HVM guest with QEMU for the
whole boot, since an HVM guest takes minutes to boot under software emulation."""
import os
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from xenlib import CONSOLE_LOGS, console, debug_key_dump, follow_serial, hvm_config, patient, read_file, wait_file, xl  # noqa: E402,F401

from xapi_numa.core import vnuma  # noqa: E402

GUEST = "hvm"
SERIAL = "/tmp/hvm-serial.log"  # the serial port (QEMU's pty), copied by follow_serial
# the PV console, where the guest's workload writes (xenconsoled --log=guest, dom0-init.sh)
WORKLOAD = f"{CONSOLE_LOGS}/guest-{GUEST}.log"
DISK = "/tmp/hvm-disk.img"
MEMORY_MIB = 256
VCPUS = 2
BOOT_TIMEOUT = 900
# ...stretched, but under dom0-init.sh's 2400 s for the whole suite, so that a guest that
# never gets going fails this test with its reason instead of ending the boot unexplained
BOOT_LIMIT = 1500

os.environ.setdefault("XAPI_NUMA_BACKEND", "xen")


def note(text: str) -> None:
    """A finding for the run's log (pytest captures stdout; the console is the record)."""
    with open("/dev/console", "w") as dev:
        dev.write(f"XEN-TEST-NOTE: {text}\n")


# libxl gives QEMU fixed times to start and answer (LIBXL_DEVICE_MODEL_START_TIMEOUT, 60 s;
# LIBXL_QMP_CMD_TIMEOUT, 10 s: compiled into Debian's libxl, which stays as it is).  With
# both host cores busy the emulated dom0's QEMU can miss them ("device model did not start:
# -9", ERROR_TIMEDOUT) although nothing is wrong: only that failure is tried again.
LIBXL_TIMEDOUT = ": -9"
CREATE_ATTEMPTS = 3


def create_hvm(path: str) -> None:
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            xl("create", path)
            return
        except RuntimeError as err:
            if LIBXL_TIMEDOUT not in str(err) or attempt == CREATE_ATTEMPTS:
                raise
            note(f"xl create attempt {attempt}: libxl timed out waiting for QEMU, trying again: {err}")
            subprocess.run(["xl", "destroy", GUEST], capture_output=True, timeout=patient(120))


@pytest.fixture(scope="session")
def hv():
    from xapi_numa.backends.xen import XenHypervisor

    return XenHypervisor(dump_interval=0.5)


@pytest.fixture(scope="session")
def guest(hv):
    """The HVM guest, created with the vNUMA layout the planner gives for 2 vnodes on
    nodes 0 and 1.  If xl refuses that layout, the guest is created without vNUMA
    (soft affinity node 1) so the other HVM tests still run, and the vNUMA tests fail
    with xl's error."""
    topo = hv.topology()
    spec = vnuma.GuestSpec("hvm", VCPUS, MEMORY_MIB << 20)
    plan = vnuma.plan_follow(topo, spec, [0, 1], free={n.node: n.free for n in hv.node_memory()})
    with open(DISK, "wb") as f:
        f.truncate(64 << 20)
    path = f"/tmp/{GUEST}.cfg"
    created, vnuma_error = None, None
    for layout in ("vnuma", "plain"):
        extra = vnuma.xl_lines(plan, topo).splitlines() if layout == "vnuma" else ['cpus_soft = "node:1"']
        with open(path, "w") as f:
            f.write(hvm_config(GUEST, MEMORY_MIB, VCPUS, SERIAL, DISK,
                               [line for line in extra if not line.startswith(("memory", "maxmem"))]))
        started = time.monotonic()
        if os.path.exists(WORKLOAD):  # a failed attempt's lines are not this guest's
            os.remove(WORKLOAD)
        try:
            create_hvm(path)
            created = layout
            break
        except RuntimeError as err:
            vnuma_error = str(err)
            note(f"xl create ({layout}) failed: {vnuma_error}\nqemu-dm log: "
                 f"{read_file(f'/var/log/xen/qemu-dm-{GUEST}.log')[-1500:]}")
    assert created, f"xl create of the HVM guest failed: {vnuma_error}"
    domid = int(xl("domid", GUEST).strip())
    follow_serial(domid, SERIAL)
    expected = plan.memory_by_pnode() if created == "vnuma" else {1: MEMORY_MIB << 20}
    try:
        yield {"domid": domid, "plan": plan if created == "vnuma" else None, "vnuma_error": vnuma_error,
               "expected": expected, "started": started, "config": read_file(path)}
    finally:
        note(f"HVM serial tail:\n{read_file(SERIAL)[-600:]}")
        note(f"HVM PV console tail:\n{read_file(WORKLOAD)[-1200:]}")
        note(f"qemu-dm log tail:\n{read_file(f'/var/log/xen/qemu-dm-{GUEST}.log')[-1200:]}")
        subprocess.run(["xl", "destroy", GUEST], capture_output=True, timeout=patient(120))


@pytest.fixture(scope="session")
def booted(guest):
    """The guest once its workload runs (memcheck's second pass)."""
    deadline = time.monotonic() + min(patient(BOOT_TIMEOUT), BOOT_LIMIT)
    while not re.search(r"memcheck: pass 2 ok", read_file(WORKLOAD)):
        serial = read_file(SERIAL)
        assert "guest: no /dev/hvc0" not in serial, f"the HVM guest has no PV console:\n{serial[-1500:]}"
        assert time.monotonic() < deadline, (
            f"the HVM guest's memcheck did not reach pass 2 in {deadline - guest['started']:.0f} s\n"
            f"PV console ({WORKLOAD}) tail:\n{read_file(WORKLOAD)[-1200:]}\nserial tail:\n{serial[-1200:]}")
        time.sleep(1)
    return guest
