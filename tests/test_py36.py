"""Everything dom0 runs works on Python 3.6 (XenServer 8.4 / XCP-ng 8.3 ship 3.6).

Two checks:

* static, always: ``vermin`` targeting 3.6 over every module dom0 runs (the
  package and the xapi plugin), annotations evaluated (without
  ``from __future__ import annotations`` they are evaluated at import time,
  so ``list[int]`` breaks 3.6).  It fails listing each violation as
  ``file:line: what (needs 3.x)``.
* dynamic, where a CPython 3.6 exists on this machine (``python3.6`` on PATH
  or a pyenv install): every module compiles and imports under 3.6 with the
  dependencies pinned for dom0 (``packaging/dom0-requirements.txt``, as the
  RPM ships them), and the CLI drives a simulated host there.
"""
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import missing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOM0_CODE = ["xapi_numa", os.path.join("plugins", "numa")]
TARGET = "3.6"


def vermin_violations():
    """(file:line: what, needs) for each 3.7+ use, from vermin's parsable output."""
    exe = shutil.which("vermin", path=os.path.dirname(sys.executable)) or shutil.which("vermin")
    if exe is None:
        pytest.fail("vermin is not installed: it is in the test extras (pip install -e '.[test]')")
    proc = subprocess.run([exe, "--format", "parsable", "-t={}-".format(TARGET), "--violations",
                           "--eval-annotations", "--no-make-paths-absolute"] + DOM0_CODE,
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    found = []
    for line in proc.stdout.splitlines():
        # file:line:col:py2:py3:what -- summary lines have no line number or no text
        parts = line.split(":", 5)
        if len(parts) == 6 and parts[0] and parts[1] and parts[5]:
            found.append("{}:{}: {} (needs {})".format(parts[0], parts[1], parts[5], parts[4]))
    return proc, found


def test_vermin_finds_a_planted_violation(tmp_path):
    """The check itself can fail: a 3.7-only module is reported with its line."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom dataclasses import dataclass\n")
    exe = shutil.which("vermin", path=os.path.dirname(sys.executable)) or shutil.which("vermin")
    assert exe, "vermin is not installed"
    out = subprocess.run([exe, "--format", "parsable", "-t=3.6-", "--violations", str(bad)],
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    assert "bad.py:2:" in out and "dataclasses" in out


def test_dom0_code_needs_nothing_newer_than_python36():
    proc, found = vermin_violations()
    assert not found, "Python 3.6 violations in dom0 code:\n" + "\n".join(found)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- a real Python 3.6 -------------------------------------------------------------------------

def load_build_rpm():
    """packaging/build_rpm.py: finds a CPython 3.6 and fetches the pinned dom0 wheels."""
    spec = importlib.util.spec_from_file_location("build_rpm", os.path.join(ROOT, "packaging", "build_rpm.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def py36_env(tmp_path_factory):
    """(python3.6, PYTHONPATH) with the project and the RPM's pinned dependencies (attrs 22.2.0,
    cffi 1.15.1 with its cp36 backend, pycparser), unpacked as the RPM lays them out."""
    build_rpm = load_build_rpm()
    exe = build_rpm.find_python36()
    if exe is None:
        missing("no CPython 3.6 on this machine (python3.6 on PATH or a pyenv 3.6): only the static check ran")
    deps = tmp_path_factory.mktemp("py36-deps")
    wheels = tmp_path_factory.mktemp("py36-wheels")
    try:
        found = build_rpm.fetch_wheels(str(wheels), sys.executable)
    except subprocess.CalledProcessError:
        pytest.fail("cannot download packaging/dom0-requirements.txt's wheels from PyPI")
    for whl in found:
        with zipfile.ZipFile(whl) as z:  # unpacked onto sys.path, as the RPM does
            z.extractall(str(deps))
    return exe, os.pathsep.join([ROOT, str(deps)])


def run36(py36_env, args, **kw):
    exe, path = py36_env
    env = dict(os.environ, PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONHOME", None)
    return subprocess.run([exe] + args, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=300, **kw)


def dom0_modules():
    names = []
    for path in sorted(glob.glob(os.path.join(ROOT, "xapi_numa", "**", "*.py"), recursive=True)):
        rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        if rel.endswith(".__main__"):
            continue  # importing it runs the program
        names.append(rel[:-len(".__init__")] if rel.endswith(".__init__") else rel)
    return names


IMPORT_ALL = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError as err:
        # optional native pieces: the API-mode module and the Xen backend need a built libxenuma
        if name in ("xapi_numa.backends.xen",) and "libxenuma" in str(err):
            continue
        failed.append("%s: %s" % (name, traceback.format_exc().strip().splitlines()[-1]))
    except Exception:
        failed.append("%s: %s" % (name, traceback.format_exc().strip().splitlines()[-1]))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_dom0_module_compiles_under_python36(py36_env):
    files = sorted(glob.glob(os.path.join(ROOT, "xapi_numa", "**", "*.py"), recursive=True))
    files.append(os.path.join(ROOT, "plugins", "numa"))
    code = ("import sys\nbad = []\nfor f in sys.argv[1:]:\n    try:\n"
            "        compile(open(f, encoding='utf-8').read(), f, 'exec')\n"
            "    except SyntaxError as e:\n        bad.append('%s:%s: %s' % (f, e.lineno, e.msg))\n"
            "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n")
    proc = run36(py36_env, ["-c", code] + files)
    assert proc.returncode == 0, "does not compile on Python 3.6:\n" + proc.stdout + proc.stderr


def test_every_dom0_module_imports_under_python36(py36_env):
    proc = run36(py36_env, ["-c", IMPORT_ALL] + [m for m in dom0_modules() if m != "xapi_numa._libxenuma"])
    assert proc.returncode == 0, "fails to import on Python 3.6:\n" + proc.stdout + proc.stderr


def test_cli_drives_a_simulated_host_under_python36(py36_env, tmp_path):
    state = str(tmp_path / "host.json")
    init = run36(py36_env, ["-m", "xapi_numa.cli", "sim", "init", state, "--nodes", "2", "--cpus-per-node", "4",
                            "--memory-per-node", "4G"])
    assert init.returncode == 0, init.stdout + init.stderr
    create = run36(py36_env, ["-m", "xapi_numa.cli", "sim", "create", state, "A", "--vcpus", "2", "--memory", "1G",
                              "--soft", "node:1"])
    assert create.returncode == 0, create.stdout + create.stderr
    topo = run36(py36_env, ["-m", "xapi_numa.cli", "--backend", "sim:" + state, "memory", "--json"])
    assert topo.returncode == 0, topo.stdout + topo.stderr
    assert '"A"' in topo.stdout
