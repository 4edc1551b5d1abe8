"""The zig that builds the dom0 library (glibc 2.17) is pinned once: packaging/dom0-lib.sh's
ZIG_VERSION, which the script checks, the Makefile installs and setup.py's test extra asks for.
It was also written out in setup.py ("ziglang==0.17.1"), so a new zig in one place left the
other behind (make's venv with one zig, dom0-lib.sh refusing it and installing another).
Here: no tracked file writes a second pin, and the Makefile and setup.py read the script's."""
import os
import re
import runpy
import subprocess
from typing import Dict, List

import pytest
import setuptools

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = "packaging/dom0-lib.sh"
THIS = "tests/" + os.path.basename(__file__)
# A version written out: `ziglang==0.17.1` (pip, setup.py), `ZIG_VERSION=0.17.1` (sh),
# `ZIG_VERSION := 0.17.1` (make); not `ziglang==$(ZIG_VERSION)` nor `"ziglang==" + zig_version()`.
PIN = re.compile(r"(?i)(ziglang\s*[=~<>!]=\s*['\"]?|zig_version\s*:?=\s*['\"]?)\d")


def pins(files: Dict[str, str]) -> List[str]:
    """``path:line`` of every literal zig pin in ``files`` (path -> text)."""
    return ["{}:{}".format(path, number) for path, text in sorted(files.items())
            for number, line in enumerate(text.split("\n"), 1) if PIN.search(line)]


def tracked_texts() -> Dict[str, str]:
    names = subprocess.check_output(["git", "-C", ROOT, "ls-files", "-z"]).decode().split("\0")
    texts = {}
    for name in filter(None, names):
        if name == THIS:
            continue  # its examples are pins
        path = os.path.join(ROOT, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                data = f.read()
            if b"\0" not in data:
                texts[name] = data.decode("utf-8", "replace")
    return texts


def pinned() -> str:
    with open(os.path.join(ROOT, SOURCE), encoding="utf-8") as f:
        found = re.findall(r"^ZIG_VERSION=(\S+)$", f.read(), re.M)
    assert len(found) == 1, found
    return found[0]


def test_the_zig_version_is_written_once():
    found = pins(tracked_texts())
    assert len(found) == 1 and found[0].startswith(SOURCE + ":"), found


def test_setup_py_asks_for_the_pinned_zig(monkeypatch):
    given = {}  # type: Dict[str, object]
    monkeypatch.setattr(setuptools, "setup", lambda **kw: given.update(kw))
    monkeypatch.chdir(ROOT)
    runpy.run_path(os.path.join(ROOT, "setup.py"), run_name="__main__")
    zig = [r for r in given["extras_require"]["test"] if r.startswith("ziglang")]
    assert zig == ["ziglang==" + pinned()], zig


def test_the_makefile_installs_the_pinned_zig():
    out = subprocess.run(["make", "-s", "-C", ROOT, "--eval", "print-zig-version: ; @echo '$(ZIG_VERSION)'",
                          "print-zig-version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    assert out.strip() == pinned()


@pytest.mark.parametrize("text, found", [
    ("ZIG_VERSION=0.17.1\n", ["packaging/dom0-lib.sh:1"]),
    ("x\n\"ziglang==0.17.1\",\n", ["packaging/dom0-lib.sh:2"]),
    ("ZIG_VERSION := 0.18.0\n", ["packaging/dom0-lib.sh:1"]),
    ("pip install 'ziglang==0.17.1'\n", ["packaging/dom0-lib.sh:1"]),
    ("pip install 'ziglang==$(ZIG_VERSION)'\nzig cc -target x86_64-linux-gnu.2.17\n", []),
    ('"ziglang==" + zig_version()\n', []),
])
def test_a_second_pin_is_found(text, found):
    assert pins({SOURCE: text}) == found
