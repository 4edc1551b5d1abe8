"""Review 15h: ``make dom0-lib`` (and so ``make rpm``) built against whatever Xen the build
machine's libxen-dev is, and said nothing.

libxenuma.so records the soname of the libxenctrl it was linked with, and the RPM requires
it: ``libxenctrl.so.4.17`` on Debian 12, which is what XenServer 8.4 and XCP-ng 8.3 have.
On a machine whose libxen-dev is another Xen release (Debian 13 has 4.20), the build
succeeded and printed the usual line, and the RPM it made was refused by every dom0
(``libxenctrl.so.4.20()(64bit) is needed``) -- found only on the host, after the copy.
The build must stop and say which Xen it linked against and which one dom0s run.
"""
import os
import subprocess
import sys

import pytest
from conftest import missing

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="the dom0 build runs on the build machine's Python")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XENLIBDIR = "/usr/lib/x86_64-linux-gnu"


def toolchain_or_skip():
    from test_rpm import have_dom0_toolchain

    why = have_dom0_toolchain()
    if why:
        missing("cannot build libxenuma for glibc 2.17: " + why)
    real = os.path.realpath(os.path.join(XENLIBDIR, "libxenctrl.so"))
    if not os.path.basename(real).startswith("libxenctrl.so.4.17"):
        pytest.skip("this machine's libxenctrl is not Xen 4.17's: {}".format(real))
    return real


def other_xen_libdir(tmp_path, real_libxenctrl):
    """Xen's libraries as another release's libxen-dev has them: libxenctrl with soname
    libxenctrl.so.4.20 (the same library, its soname rewritten in place)."""
    libdir = tmp_path / "xenlib"
    libdir.mkdir()
    data = open(real_libxenctrl, "rb").read()
    assert data.count(b"libxenctrl.so.4.17\0") == 1
    (libdir / "libxenctrl.so").write_bytes(data.replace(b"libxenctrl.so.4.17\0", b"libxenctrl.so.4.20\0"))
    for name in ("libxenforeignmemory.so", "libxentoollog.so"):
        os.symlink(os.path.join(XENLIBDIR, name), str(libdir / name))
    return libdir


def test_a_library_for_another_xen_release_is_refused_at_build(tmp_path):
    real = toolchain_or_skip()
    env = dict(os.environ, XENLIBDIR=str(other_xen_libdir(tmp_path, real)))
    proc = subprocess.run(["sh", os.path.join(ROOT, "packaging", "dom0-lib.sh"), str(tmp_path / "out"), sys.executable],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=300)
    assert proc.returncode != 0, "built for Xen 4.20 without a word: " + proc.stdout
    assert "libxenctrl.so.4.20" in proc.stdout and "libxenctrl.so.4.17" in proc.stdout, proc.stdout
    # nothing left where make looks: a library there, newer than its sources, would count as built
    assert not (tmp_path / "out" / "libxenuma.so").exists()
