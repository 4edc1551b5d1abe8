"""`make install` points the plugin and the unit at the Python it installed into.

The plugin went in with the tree's ``#!/usr/bin/env python3`` and the unit with
``ExecStart=/usr/local/bin/xapi-numad``, whatever ``PYTHON`` pip installed into: with
``PYTHON`` a virtualenv's (what a Debian 12 host, whose system pip refuses to install,
leaves) or a Python whose scripts go elsewhere, xapi ran the plugin on a python3 without
xapi_numa (every call: ``xapi_numa is not importable``) and systemd found no daemon.
"""
import os
import re
import subprocess
import sys
import xmlrpc.client

import pytest
from make_install import make_install, make_venv

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="make install runs on the build machine's Python")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("make-install")
    python = make_venv(tmp)
    make_install(python, tmp)
    return python, tmp / "venv", tmp / "dest"


def test_unit_runs_the_daemon_pip_installed(installed):
    _, venv, dest = installed
    unit = (dest / "etc" / "systemd" / "system" / "xapi-numad.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+)", unit, re.M).group(1)
    assert exec_start == str(venv / "bin" / "xapi-numad"), exec_start
    assert os.access(exec_start, os.X_OK)


def test_plugin_runs_on_the_python_it_was_installed_for(installed, tmp_path):
    python, _, dest = installed
    sim = str(tmp_path / "host.json")
    subprocess.run([python, "-m", "xapi_numa.cli", "sim", "init", sim, "--nodes", "2", "--cpus-per-node", "2",
                    "--memory-per-node", "2G"], cwd="/", check=True, stdout=subprocess.DEVNULL)
    plugin = str(dest / "etc" / "xapi.d" / "plugins" / "numa")
    assert os.access(plugin, os.X_OK)
    # as xapi runs it: the file itself, a plain PATH, one methodCall in argv[1]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XAPI_NUMA_BACKEND": "sim:" + sim,
           "XAPI_NUMA_LEDGER": str(tmp_path / "ledger.db")}
    call = xmlrpc.client.dumps(("OpaqueRef:test-session", {}), "host_topology")
    proc = subprocess.run([plugin, call], env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (result,), _ = xmlrpc.client.loads(proc.stdout)
    assert result["Status"] == "Success", result
