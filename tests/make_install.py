"""`make install` into a fresh virtualenv, as the tests of a non-dom0 xapi host run it."""
import os
import re
import subprocess
import sys

from conftest import missing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST_XENAPI = "HOST_XENAPI = True  # the xapi host's own module\n"


def make_venv(tmp, host_xenapi: bool = False) -> str:
    """A virtualenv in ``tmp``/venv, its python's path; ``host_xenapi``: with a bare
    ``XenAPI.py`` in it, as a source build of xapi installs one (no pip metadata)."""
    venv = tmp / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    if made.returncode:
        missing("cannot make a virtualenv: " + made.stdout[-500:])
    python = str(venv / "bin" / "python")
    if host_xenapi:
        purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                 stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
        with open(os.path.join(purelib, "XenAPI.py"), "w") as f:
            f.write(HOST_XENAPI)
    return python


def make_install(python: str, tmp) -> None:
    """``make install PYTHON=python`` into ``tmp``/dest (pip from its index: missing, where
    that index cannot be reached)."""
    env = dict(os.environ, XAPI_NUMA_NO_NATIVE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.run(["make", "-C", ROOT, "install", "PYTHON=" + python, "DESTDIR=" + str(tmp / "dest"),
                           "XENSOURCE_INVENTORY=" + str(tmp / "no-inventory")], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=900)
    if proc.returncode and re.search(r"(?i)(connection|network|resolve|No matching distribution)", proc.stdout):
        missing("pip cannot reach its index: " + proc.stdout[-500:])
    assert proc.returncode == 0, proc.stdout[-3000:]
