"""The C library's own unit tests (console-dump parser), compiled and run here.

They need only a C compiler: no Xen, no libxen-dev.
"""
import os
import shutil
import subprocess

import pytest

NATIVE = os.path.join(os.path.dirname(__file__), "..", "xapi_numa", "native")


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="no C compiler")
def test_udump_parser_c_unit_tests(tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    exe = str(tmp_path / "test_udump")
    subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", exe,
                    os.path.join(NATIVE, "test_udump.c"), os.path.join(NATIVE, "udump.c")], check=True)
    proc = subprocess.run([exe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    passed, failed = (int(x.split()[0]) for x in proc.stdout.strip().split(", "))
    assert failed == 0 and passed >= 19
