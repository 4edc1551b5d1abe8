"""The RPM's ``/opt/xapi-numa/libexec/numa`` (the plugin's body) is no program: the
plugin's launcher, ``/etc/xapi.d/plugins/numa``, runs it with ``runpy`` on dom0's
``/usr/bin/python3`` after putting ``lib/python`` first on ``sys.path``.

It was shipped executable with the tree's ``#!/usr/bin/env python3``, a line nothing
read: run alone it would take whatever ``python3`` is first on PATH and, without
``lib/python``, answer only "xapi_numa is not importable".  The staged body now has
that line as a comment (its lines numbered as in the tree), mode 0644, and the staged
launcher still answers a call through it."""
import json
import os
import stat
import subprocess
import sys
import xmlrpc.client

import pytest
from rpm_scratch import fake_lib, load_build_rpm

from xapi_numa.cli.main import main

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="the RPM build runs on the build machine's Python")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    out = tmp_path_factory.mktemp("stage")
    module = load_build_rpm()
    module.compile_for_python36 = lambda python_dir: True  # bytecode does not matter here
    payload = str(out / "payload")
    module.stage(payload, fake_lib(str(out / "lib")), [])
    return payload


def test_the_plugin_body_has_no_shebang_and_is_not_a_program(payload):
    body = os.path.join(payload, "opt", "xapi-numa", "libexec", "numa")
    assert stat.S_IMODE(os.stat(body).st_mode) == 0o644
    shipped = open(body, encoding="utf-8").read().split("\n")
    tree = open(os.path.join(ROOT, "plugins", "numa"), encoding="utf-8").read().split("\n")
    assert tree[0].startswith("#!")  # the tree's, which make install rewrites
    assert shipped[0].startswith("# run by /etc/xapi.d/plugins/numa (runpy") and shipped[1:] == tree[1:]


def test_the_staged_launcher_answers_through_the_body(payload, tmp_path):
    host = str(tmp_path / "host.json")
    assert main(["sim", "init", host, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "1G"]) == 0
    launcher = os.path.join(payload, "etc", "xapi.d", "plugins", "numa")
    # this Python's own attrs (no wheels staged); xapi_numa from the payload's lib/python
    env = {"PATH": "/usr/bin:/bin", "XAPI_NUMA_BACKEND": "sim:" + host,
           "XAPI_NUMA_LEDGER": str(tmp_path / "ledger.db"), "HOME": str(tmp_path)}
    call = xmlrpc.client.dumps(("OpaqueRef:test-session", {}), "host_topology")
    proc = subprocess.run([sys.executable, launcher, call], env=env, cwd="/", stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (result,), _ = xmlrpc.client.loads(proc.stdout)
    assert result["Status"] == "Success", result
    assert len(json.loads(result["Value"])["nodes"]) == 2
