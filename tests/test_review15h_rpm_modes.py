"""Review 15h: the RPM's file modes came from the build machine's umask.

The spec says ``%defattr(-,root,root,-)`` (modes as staged), and build_rpm.py staged the
wheels with ``zipfile.extractall`` and the bytecode with ``compileall``, both of which
leave files and folders as the umask makes them.  Built under umask 0002 (a Debian
user's usual one) or 0000 (some CI containers), the RPM installed
``/opt/xapi-numa/lib/python`` -- first on ``sys.path`` of the root daemon and of the
xapi plugin -- group- or world-writable: anyone with a dom0 account could drop an
``attr.py`` there and have it run as root.  Whatever the umask, the package must ship
folders 0755, programs 0755 and everything else 0644.
"""
import os
import shutil
import stat
import subprocess
import sys

import pytest
from conftest import missing

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="the RPM build runs on the build machine's Python")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = {"/usr/bin/xapi-numa", "/usr/bin/xapi-numad", "/usr/bin/xapi-numa-rrdd", "/etc/xapi.d/plugins/numa",
            "/opt/xapi-numa/libexec/irqbalance-policy",
            "/opt/xapi-numa/lib/libxenuma.so"}
PRIVATE_FOLDERS = {"/var/lib/xapi-numa", "/run/xapi-numa"}  # the state database, locks and batch records


@pytest.fixture(scope="module")
def rpm_built_under_umask_0(tmp_path_factory):
    if shutil.which("rpmbuild") is None or shutil.which("rpm") is None:
        missing("rpmbuild is not installed (Debian: apt-get install rpm; .ci/run does)")
    tmp = tmp_path_factory.mktemp("umask0")
    lib = tmp / "lib"  # the library's bytes do not matter here, only how they are shipped
    lib.mkdir()
    (lib / "libxenuma.so").write_bytes(b"not an ELF file\n")
    (lib / "libxenuma.so").chmod(0o777)  # as a linker run under umask 0 leaves it
    (lib / "libxenuma.h").write_text("/* empty */\n")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "packaging", "build_rpm.py"), "--lib", str(lib),
                           "--out", str(tmp / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600, preexec_fn=lambda: os.umask(0))
    if proc.returncode and "pip download failed" in proc.stderr:
        missing("pip cannot download the pinned wheels: " + proc.stderr[-500:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def packaged_modes(rpm_path):
    """path -> st_mode of every file and folder in the RPM."""
    out = subprocess.run(["rpm", "-qp", "--queryformat", "[%{FILEMODES} %{FILENAMES}\n]", rpm_path],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True, check=True).stdout
    return {path: int(mode) for mode, path in (line.split(" ", 1) for line in out.splitlines())}


def test_nothing_in_the_rpm_is_writable_but_by_root(rpm_built_under_umask_0):
    modes = packaged_modes(rpm_built_under_umask_0)
    assert "/opt/xapi-numa/lib/python/attr/__init__.py" in modes
    writable = sorted(p for p, m in modes.items() if m & (stat.S_IWGRP | stat.S_IWOTH))
    assert not writable, "group- or world-writable in the RPM: {}".format(writable[:10])


def test_folders_programs_and_files_have_the_usual_modes(rpm_built_under_umask_0):
    modes = packaged_modes(rpm_built_under_umask_0)
    for path, mode in modes.items():
        want = 0o755 if stat.S_ISDIR(mode) or path in PROGRAMS else 0o644
        if path in PRIVATE_FOLDERS:  # root's only, as the code makes them (the spec's %attr)
            want = 0o700
        assert stat.S_IMODE(mode) == want, "{} is {:o}, not {:o}".format(path, stat.S_IMODE(mode), want)
