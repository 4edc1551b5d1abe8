"""build/dom0/libxenuma.so: built again only when what it is made of changed, and the same
bytes from any checkout of a commit.

* ``dom0-lib`` was a phony target: every ``make rpm`` (and ``make xen-test``) ran zig again
  on unchanged C.  The library is now a file with its true inputs: here a scratch tree of
  the files the rule reads gets a library newer than all of them, and ``make -n`` must
  not build it; each input made newer must.
* docs/install.md says two checkouts of one commit build the same bytes, but zig links in
  objects of its own (glibc's stat/fstat stubs) whose debug information names the
  directory the build ran in and zig's lib directory: two checkouts in other places (and
  other zig caches) built other bytes.  Here two copies of the tree in different places,
  each with its own zig cache and HOME, build the library: the bytes must be the same
  (skipped where the dom0 toolchain is not installed, as in tests/test_rpm.py).
"""
import hashlib
import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import missing

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="the dom0 build runs on the build machine's Python")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEEDED = ["Makefile", "setup.py", "libxenuma", "packaging/dom0-lib.sh"]  # what the dom0-lib rule reads


def tracked(*paths) -> list:
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--"] + list(paths), stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    return [f for f in out.split("\0") if f and os.path.isfile(os.path.join(ROOT, f))]


def copy_tree(dest, paths) -> list:
    files = tracked(*paths)
    for name in files:
        os.makedirs(os.path.dirname(os.path.join(str(dest), name)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), os.path.join(str(dest), name))
    return files


def built_tree(tmp_path):
    """A scratch tree whose venv stamp and dom0 library are newer than every input."""
    if shutil.which("make") is None:
        missing("make is not installed")
    tree = tmp_path / "tree"
    files = copy_tree(tree, NEEDED)
    old = time.time() - 3600
    for name in files:
        os.utime(os.path.join(str(tree), name), (old, old))
    for name in (".venv/.installed", "build/dom0/libxenuma.so", "build/dom0/libxenuma.h"):
        path = tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    return tree, files


def dry_run(tree, target: str) -> str:
    done = subprocess.run(["make", "-n", "-C", str(tree), target], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=60)
    assert done.returncode == 0, done.stdout
    return done.stdout


@pytest.mark.parametrize("target", ["rpm", "dom0-lib", "xen-test-dom0"])
def test_an_up_to_date_library_is_not_built_again(tmp_path, target):
    tree, _ = built_tree(tmp_path)
    out = dry_run(tree, target)
    assert "dom0-lib.sh" not in out, "{} builds the library again with nothing changed:\n{}".format(target, out)
    if target == "rpm":
        assert "build_rpm.py --lib build/dom0" in out, out


@pytest.mark.parametrize("changed", ["libxenuma/SOURCES", "packaging/dom0-lib.sh", "libxenuma/src/libxenuma.h",
                                     "a C file"])
def test_a_changed_input_builds_it_again(tmp_path, changed):
    tree, files = built_tree(tmp_path)
    if changed == "a C file":
        changed = next(f for f in files if f.startswith("libxenuma/src/") and f.endswith(".c"))
    later = time.time() + 60
    os.utime(str(tree / changed), (later, later))
    assert "sh packaging/dom0-lib.sh build/dom0" in dry_run(tree, "rpm"), changed


# --- the same bytes from any checkout --------------------------------------------------------

def dom0_toolchain_or_skip() -> None:
    from test_rpm import have_dom0_toolchain

    why = have_dom0_toolchain() if shutil.which("dpkg") else "not a Debian machine (dpkg missing)"
    if why:
        missing("cannot build libxenuma for glibc 2.17: " + why)
    real = os.path.realpath("/usr/lib/x86_64-linux-gnu/libxenctrl.so")
    if not os.path.basename(real).startswith("libxenctrl.so.4.17"):
        pytest.skip("this machine's libxenctrl is not Xen 4.17's: {}".format(real))


def build_in(checkout, tmp_path, tag: str) -> bytes:
    """libxenuma.so built by the checkout's own dom0-lib.sh, run from the checkout, with a
    zig cache and a HOME of its own."""
    env = dict(os.environ, ZIG_GLOBAL_CACHE_DIR=str(tmp_path / ("zig-global-" + tag)),
               ZIG_LOCAL_CACHE_DIR=str(tmp_path / ("zig-local-" + tag)), HOME=str(tmp_path / ("home-" + tag)))
    out = tmp_path / ("out-" + tag)
    done = subprocess.run(["sh", os.path.join("packaging", "dom0-lib.sh"), str(out), sys.executable], cwd=str(checkout),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout
    return (out / "libxenuma.so").read_bytes()


def test_two_checkouts_in_other_places_build_the_same_bytes(tmp_path):
    dom0_toolchain_or_skip()
    first, second = tmp_path / "xapi-numa", tmp_path / "elsewhere" / "a-longer-checkout-name"
    for checkout in (first, second):
        copy_tree(checkout, ["libxenuma", "packaging/dom0-lib.sh"])
    one, two = build_in(first, tmp_path, "one"), build_in(second, tmp_path, "two")
    assert hashlib.sha256(one).hexdigest() == hashlib.sha256(two).hexdigest(), \
        "two checkouts of one commit built different libraries"
    for path in (str(first), str(second), str(tmp_path), "ziglang"):
        assert path.encode() not in one, "the library names {}".format(path)


def test_the_dom0_library_exports_its_header_functions_only(tmp_path):
    """The RPM's very library (zig, glibc 2.17): internal helpers (xn_granted_gfns ...) were
    exported beside the API."""
    from test_native_c import exported_functions, header_functions

    dom0_toolchain_or_skip()
    checkout = tmp_path / "xapi-numa"
    copy_tree(checkout, ["libxenuma", "packaging/dom0-lib.sh"])
    build_in(checkout, tmp_path, "one")
    assert exported_functions(str(tmp_path / "out-one" / "libxenuma.so")) == header_functions()
