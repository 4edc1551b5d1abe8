"""The C library's own unit tests (console-dump parser, page layouts), compiled and run here.

They need only a C compiler: no Xen, no libxen-dev.
"""
import os
import shutil
import subprocess

import pytest

LIB = os.path.join(os.path.dirname(__file__), "..", "libxenuma")
CC = shutil.which("gcc") or shutil.which("cc")


def run_c_tests(tmp_path, test_source: str, unit: str) -> tuple:
    exe = str(tmp_path / test_source.replace(".c", ""))
    subprocess.run([CC, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", exe,
                    "-I", os.path.join(LIB, "src"), os.path.join(LIB, "tests", test_source),
                    os.path.join(LIB, "src", unit)], check=True)
    proc = subprocess.run([exe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    passed, failed = (int(x.split()[0]) for x in proc.stdout.strip().split(", "))
    return passed, failed


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("test_source, unit, at_least", [
    ("test_udump.c", "udump.c", 19),
    ("test_pagelayout.c", "pagelayout.c", 30),
])
def test_c_unit_tests(tmp_path, test_source, unit, at_least):
    passed, failed = run_c_tests(tmp_path, test_source, unit)
    assert failed == 0 and passed >= at_least
