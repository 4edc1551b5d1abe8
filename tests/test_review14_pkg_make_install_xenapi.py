"""`make install` on a xapi host that is not a XenServer/XCP-ng dom0 keeps that host's XenAPI.

A xapi built from source installs its ``XenAPI.py`` as a bare module (no pip metadata).
``pip install .`` saw no ``XenAPI`` distribution and put PyPI's ``XenAPI`` package beside
it: a package directory wins over a module of the same name, so every script on the host
(xapi's own plugins included) then imported PyPI's client instead of the one that came
with its xapi -- the very thing the dom0 guard of `make install` is there to prevent.
"""
import os
import re
import subprocess
import sys

import pytest
from make_install import ROOT, make_install, make_venv

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="make install runs on the build machine's Python")


def test_make_install_keeps_the_hosts_own_xenapi(tmp_path):
    python = make_venv(tmp_path, host_xenapi=True)
    make_install(python, tmp_path)
    probe = ("import XenAPI, attr, xapi_numa\n"
             "print(getattr(XenAPI, 'HOST_XENAPI', False), XenAPI.__file__)")
    out = subprocess.run([python, "-c", probe], cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "True", "the host's XenAPI.py is shadowed by " + out.stdout
    listed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], stdout=subprocess.PIPE,
                            universal_newlines=True, check=True).stdout
    assert not re.search(r"(?im)^xenapi==", listed), listed


def test_host_dependencies_are_setup_pys_less_xenapi():
    """The Makefile's list for such a host is setup.py's install_requires but XenAPI."""
    setup = open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read()
    wanted = set(re.findall(r'"([A-Za-z][\w.-]*[<>=!~][^"]*)"', setup.split("install_requires=", 1)[1].split("\n")[0]))
    make = open(os.path.join(ROOT, "Makefile"), encoding="utf-8").read()
    found = re.search(r"^HOST_DEPS\s*:?=\s*(.*)$", make, re.M)
    assert found, "the Makefile names no HOST_DEPS"
    assert set(re.findall(r"'([^']+)'", found.group(1))) == wanted
