"""Review 15h: the RPM packed every wheel in its download folder, not the pinned ones.

build_rpm.py downloads the pins of ``packaging/dom0-requirements.txt`` (hash-checked) into
``build/rpm/wheels`` and kept that folder between builds, then unpacked *every* ``*.whl``
found there.  After a pin changes (attrs 22.2.0 -> another release, say), the wheel of the
old pin is still in the folder, and the RPM carries both releases' files laid over each
other (which one's module wins depends on how their names sort), whatever the pins and
their hashes say.  Only the pinned wheels may go into the RPM.
"""
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import missing

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="the RPM build runs on the build machine's Python")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stale_wheel(folder):
    """A wheel of an attrs release that is not the pinned one, as an earlier pin left it."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "attrs-21.4.0-py2.py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("attr/_stale_release.py", "STALE = True\n")
        z.writestr("attrs-21.4.0.dist-info/METADATA", "Name: attrs\nVersion: 21.4.0\n")
    return path


def test_only_the_pinned_wheels_go_into_the_rpm(tmp_path):
    if shutil.which("rpmbuild") is None or shutil.which("rpm") is None:
        missing("rpmbuild is not installed (Debian: apt-get install rpm; .ci/run does)")
    lib = tmp_path / "lib"  # the library's bytes do not matter here
    lib.mkdir()
    (lib / "libxenuma.so").write_bytes(b"not an ELF file\n")
    (lib / "libxenuma.h").write_text("/* empty */\n")
    out = tmp_path / "out"
    stale_wheel(str(out / "wheels"))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "packaging", "build_rpm.py"), "--lib", str(lib),
                           "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600)
    if proc.returncode and "pip download failed" in proc.stderr:
        missing("pip cannot download the pinned wheels: " + proc.stderr[-500:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = subprocess.run(["rpm", "-qlp", proc.stdout.strip().splitlines()[-1]], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, universal_newlines=True, check=True).stdout.split()
    assert "/opt/xapi-numa/lib/python/attrs-22.2.0.dist-info/METADATA" in files
    stale = [f for f in files if "21.4.0" in f or "_stale_release" in f]
    assert not stale, "a wheel that is not pinned went into the RPM: {}".format(stale)
