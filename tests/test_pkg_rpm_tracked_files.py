"""The RPM carries the package files git tracks, not whatever lies in ``xapi_numa/``.

build_rpm.py copied the whole ``xapi_numa`` folder, less bytecode and ``*.so``: an
editor's backup or swap file, a scratch module never added to git, a patch's leftovers
went to every dom0 (and a stray module is importable there).  Here a checkout of the
files build_rpm.py reads gets such strays, and the RPM must hold exactly the tracked
files (and the bytecode the build compiles for them).  Outside a git checkout the build
cannot tell what is tracked: it refuses, saying so, and builds nothing.
"""
import os
import shutil
import subprocess
import sys

import pytest
import rpm_scratch
from conftest import missing

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="the RPM build runs on the build machine's Python")

ROOT = rpm_scratch.ROOT
NEEDED = ["xapi_numa", "plugins", "packaging", "setup.py"]  # what build_rpm.py reads of a checkout
STRAYS = ["xapi_numa/scratch_never_added.py", "xapi_numa/core/.placement.py.swp", "xapi_numa/errors.py~",
          "xapi_numa/ops/#metrics.py#", "xapi_numa/core/placement.py.orig", "xapi_numa/notes/todo.txt"]
PACKAGE = "/opt/xapi-numa/lib/python/"


def git(cwd, *args) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(cwd)] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          check=True).stdout


def copy_of_this_tree(dest, with_git: bool = True) -> list:
    """The tracked files build_rpm.py reads, as they are in this working tree, in ``dest``
    (a git checkout of its own unless ``with_git`` is false); the xapi_numa ones."""
    files = [f for f in git(ROOT, "ls-files", "-z", "--", *NEEDED).split("\0") if f]
    for name in files:
        if os.path.exists(os.path.join(ROOT, name)):
            os.makedirs(os.path.dirname(os.path.join(str(dest), name)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), os.path.join(str(dest), name))
    if with_git:
        git(dest, "init", "-q")
        git(dest, "add", "-A")
        git(dest, "commit", "-q", "-m", "tree under test")
    return sorted(f for f in files if f.startswith("xapi_numa/") and os.path.exists(os.path.join(str(dest), f)))


def add_strays(tree) -> None:
    for name in STRAYS:
        path = os.path.join(str(tree), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("STRAY = True\n")


def build(tree, tmp):
    rpm_scratch.need_rpmbuild()
    lib = rpm_scratch.fake_lib(tmp / "lib")
    return subprocess.run([sys.executable, os.path.join(str(tree), "packaging", "build_rpm.py"), "--lib", lib,
                           "--out", str(tmp / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600)


def test_only_tracked_files_of_the_package_go_into_the_rpm(tmp_path):
    tree = tmp_path / "tree"
    tracked = copy_of_this_tree(tree)
    add_strays(tree)
    done = build(tree, tmp_path)
    if done.returncode and "pip download failed" in done.stderr:
        missing("pip cannot download the pinned wheels: " + done.stderr[-500:])
    assert done.returncode == 0, done.stderr[-3000:]
    listed = subprocess.run(["rpm", "-qp", "--queryformat", "[%{FILEMODES:perms} %{FILENAMES}\n]",
                             done.stdout.strip().splitlines()[-1]], stdout=subprocess.PIPE,
                            universal_newlines=True, check=True).stdout.splitlines()
    packaged = sorted(path[len(PACKAGE):] for perms, path in (line.split(" ", 1) for line in listed)
                      if path.startswith(PACKAGE + "xapi_numa/") and not perms.startswith("d")
                      and "/__pycache__/" not in path)
    assert packaged == tracked, "not tracked: {}; missing: {}".format(sorted(set(packaged) - set(tracked)),
                                                                      sorted(set(tracked) - set(packaged)))


def test_outside_a_git_checkout_the_build_refuses_and_says_why(tmp_path):
    tree = tmp_path / "tree"
    copy_of_this_tree(tree, with_git=False)
    done = build(tree, tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "not a git checkout" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not list((tmp_path / "out").glob("*.rpm"))
