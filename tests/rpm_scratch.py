"""RPMs of this tree built in-process with a stand-in libxenuma, and a scratch root whose
scriptlets really run (``rpm --root`` chroots into it: root only).

The scratch root has busybox for ``/bin/sh`` and the few commands the scriptlets use, and
a ``systemctl`` that only writes down what it was asked (and whether a file named by the
test was there at that moment), so that what an install, an upgrade or an erase does to
the services is seen in the order rpm ran it.
"""
import importlib.util
import os
import shutil
import subprocess

from conftest import missing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPLETS = ("sh", "mkdir", "rm", "cat", "echo", "test", "[", "rmdir")
SYSTEMCTL = """#!/bin/sh
if [ -e "{watch}" ]; then seen=" [{watch} present]"; else seen=""; fi
echo "systemctl $*$seen" >> /calls
{fails}"""
# what a systemctl that fails says (two lines: a warning of ours must be one)
FAILS = """echo "Failed to $1 unit: Access denied" >&2
echo "See system logs and 'systemctl status' for details." >&2
exit 1
"""
TMPFILES = """#!/bin/sh
echo "systemd-tmpfiles $*" >> /calls
"""


def load_build_rpm():
    spec = importlib.util.spec_from_file_location("build_rpm_scratch", os.path.join(ROOT, "packaging", "build_rpm.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def need_rpmbuild() -> None:
    if shutil.which("rpmbuild") is None or shutil.which("rpm") is None:
        missing("rpmbuild is not installed (Debian: apt-get install rpm; .ci/run does)")


def fake_lib(folder) -> str:
    """A libxenuma.so and libxenuma.h whose bytes do not matter to the test."""
    os.makedirs(str(folder), exist_ok=True)
    with open(os.path.join(str(folder), "libxenuma.so"), "wb") as f:
        f.write(b"not an ELF file\n")
    with open(os.path.join(str(folder), "libxenuma.h"), "w") as f:
        f.write("/* empty */\n")
    return str(folder)


def build(out, release: str, extra_files=()) -> str:
    """An RPM of this tree (no wheels: nothing here imports them) at ``release``, with
    ``extra_files`` (paths under /) added to its payload; its path."""
    need_rpmbuild()
    module = load_build_rpm()
    module.release = lambda: release
    payload = os.path.join(str(out), "payload")
    module.stage(payload, fake_lib(os.path.join(str(out), "lib")), [])
    for path in extra_files:
        with open(payload + path, "w") as f:
            f.write("# only in this build\n")
    return module.build(payload, str(out))


def scratch_root(tmp, watch: str = "/nothing", systemd_runs: bool = True, systemctl_fails: bool = False):
    """A root for ``rpm --root`` whose scriptlets run (busybox) and whose systemctl records
    (and then fails, where ``systemctl_fails``)."""
    if os.geteuid() != 0:
        missing("rpm --root runs scriptlets chrooted: needs root")
    busybox = shutil.which("busybox")
    if busybox is None:
        missing("busybox (static) is not installed: the scratch root's /bin/sh")
    root = tmp / "root"
    for folder in ("bin", "usr/bin", "dev", "var/tmp", "tmp", "run"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, str(root / "bin" / "busybox"))
    for applet in APPLETS:
        os.symlink("busybox", str(root / "bin" / applet))
    systemctl = SYSTEMCTL.format(watch=watch, fails=FAILS if systemctl_fails else "")
    (root / "usr" / "bin" / "systemctl").write_text(systemctl)
    (root / "usr" / "bin" / "systemd-tmpfiles").write_text(TMPFILES)
    for name in ("systemctl", "systemd-tmpfiles"):
        (root / "usr" / "bin" / name).chmod(0o755)
    if systemd_runs:
        (root / "run" / "systemd" / "system").mkdir(parents=True)
    subprocess.run(["rpm", "--root", str(root), "--initdb"], check=True)
    return root


def rpm(root, *args) -> str:
    """rpm in the scratch root (no dependencies: it has none of dom0's packages); its stderr."""
    done = subprocess.run(["rpm", "--root", str(root), "--nodeps"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stderr


def calls(root) -> list:
    """What systemctl was asked since the last look (and the record is emptied)."""
    path = root / "calls"
    lines = path.read_text().splitlines() if path.exists() else []
    if path.exists():
        path.unlink()
    return lines
