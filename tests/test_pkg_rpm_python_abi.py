"""The RPM needs dom0's CPython 3.6 by its ABI, not only some ``/usr/bin/python3``.

Its private dependencies are built for CPython 3.6 (``_cffi_backend`` is a cp36m
extension, the bytecode is 3.6's), yet the package required only ``/usr/bin/python3``:
rpm installed it on a host whose python3 is another release, and every launcher then
failed at run time.  Here a stand-in host package provides everything the RPM requires,
with its ``python(abi)`` at 3.11 or at 3.6: rpm must refuse the first and take the second.
"""
import subprocess
import sys

import pytest
import rpm_scratch

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="the RPM build runs on the build machine's Python")

HOST_SPEC = """Name: stand-in-dom0
Version: 1
Release: 1
Summary: what a dom0 provides, with python(abi) = %{abi}
License: none
BuildArch: noarch
Provides: python(abi) = %{abi}
{provides}
%description
stand-in
%files
"""


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    return rpm_scratch.build(tmp_path_factory.mktemp("rpm-abi"), "1")


def requirements(rpm_path):
    out = subprocess.run(["rpm", "-qp", "--requires", rpm_path], stdout=subprocess.PIPE, universal_newlines=True,
                         check=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def stand_in_host(tmp, abi, needs):
    """An RPM providing ``needs`` (but any python(abi) of them) and python(abi) = ``abi``."""
    provides = "\n".join("Provides: " + need for need in needs
                         if not need.startswith(("rpmlib(", "python(abi)")))
    spec = tmp / "host.spec"
    spec.write_text(HOST_SPEC.replace("{provides}", provides))
    top = tmp / "rpmbuild"
    subprocess.run(["rpmbuild", "-bb", "--define", "_topdir " + str(top), "--define", "abi " + abi, str(spec)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    (path,) = (top / "RPMS" / "noarch").glob("stand-in-dom0-*.rpm")
    return str(path)


def install_test(tmp, host_rpm, ours_rpm):
    root = tmp / "root"
    root.mkdir()
    subprocess.run(["rpm", "--root", str(root), "--initdb"], check=True)
    subprocess.run(["rpm", "--root", str(root), "--noscripts", "-i", host_rpm], check=True)
    return subprocess.run(["rpm", "--root", str(root), "--test", "-i", ours_rpm], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)


def test_the_rpm_requires_cpython_3_6(ours):
    assert "python(abi) = 3.6" in requirements(ours)


@pytest.mark.parametrize("abi, accepted", [("3.11", False), ("3.6", True)])
def test_rpm_refuses_a_host_with_another_python(ours, tmp_path, abi, accepted):
    done = install_test(tmp_path, stand_in_host(tmp_path, abi, requirements(ours)), ours)
    if accepted:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0 and "python(abi) = 3.6 is needed by xapi-numa" in done.stderr, done.stderr
