"""Build the x86_64 RPM of xapi-numa for XenServer 8.4 / XCP-ng 8.3 / XenServer 9 dom0s.

Everything of ours lives under one directory, ``/opt/xapi-numa``:

* ``lib/python``: the ``xapi_numa`` package (the files git tracks) and its private
  dependencies pinned for dom0's CPython 3.6 (``dom0-requirements.txt``: attrs,
  cffi with its compiled ``_cffi_backend`` for cp36, pycparser), never in
  dom0's site-packages, and never ``XenAPI`` (dom0 ships its own ``XenAPI.py``);
* ``lib/libxenuma.so`` and the ``libxenuma.h`` it was built from (``make dom0-lib``),
  opened by :mod:`xapi_numa.backends.libxenuma_abi`;
* ``libexec/numa``: the xapi plugin's body (``plugins/numa``), which the plugin's
  launcher runs with ``runpy`` on dom0's Python: not a program of its own (its ``#!``
  line is a comment there, the file not executable; run alone, it would not find
  ``lib/python``).

Outside it, only small launchers (``/usr/bin/xapi-numa``, ``xapi-numad``,
``xapi-numa-rrdd``, ``/etc/xapi.d/plugins/numa``) that put ``lib/python`` first
on ``sys.path`` and run on dom0's ``/usr/bin/python3``, and the systemd units.

Usage: ``python packaging/build_rpm.py --lib build/dom0 --out build/rpm``; prints
the RPM's path.  Runs on the build machine's Python (any 3.x), in a git checkout;
needs rpmbuild and git.
"""
import argparse
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PREFIX = "/opt/xapi-numa"
UNIT_DIR = "/usr/lib/systemd/system"
PLUGIN = "/etc/xapi.d/plugins/numa"
UNITS = ("xapi-numad.service", "xapi-numa-rrdd.service")
TMPFILES_DIR = "/usr/lib/tmpfiles.d"
STATE_DIR = "/var/lib/xapi-numa"
RUN_DIR = "/run/xapi-numa"
# What dom0's CPython 3.6 needs from a wheel: its tags, for pip download.
WHEEL_TARGET = ["--python-version", "36", "--implementation", "cp", "--abi", "cp36m",
                "--platform", "manylinux2014_x86_64", "--only-binary=:all:"]

LAUNCHER = '''#!/usr/bin/python3
"""{what} (xapi-numa RPM): runs xapi-numa from its private directory on dom0's Python."""
import os
import sys

# Never write bytecode into our directory at run time (rpm -e would leave it behind);
# the RPM ships it compiled for CPython 3.6 where the build machine has one.
sys.dont_write_bytecode = True
# Found from this file's own place, so an install under another root (rpm --root) works too.
PRIVATE = os.path.normpath(os.path.join(os.path.dirname(os.path.realpath(__file__)), "{up}", "{prefix}"))
sys.path.insert(0, os.path.join(PRIVATE, "lib", "python"))
{body}
'''
ENTRY_BODY = "from {module} import {func}\n\nsys.exit({func}())"
PLUGIN_BODY = ("import runpy\n\n"
               "# the plugin's own body answers xapi even when the package cannot be imported\n"
               "runpy.run_path(os.path.join(PRIVATE, \"libexec\", \"numa\"), run_name=\"__main__\")")


def plugin_body() -> str:
    """``plugins/numa`` as the RPM ships it in libexec: its ``#!`` line (``make install``'s,
    rewritten there to the installing Python) a comment, the lines numbered as in the tree."""
    text = open(os.path.join(ROOT, "plugins", "numa"), encoding="utf-8").read()
    first, sep, rest = text.partition("\n")
    if first.startswith("#!"):
        first = "# run by {} (runpy, on dom0's /usr/bin/python3), not as a program".format(PLUGIN)
    return first + sep + rest


def version() -> str:
    text = open(os.path.join(ROOT, "xapi_numa", "__init__.py"), encoding="utf-8").read()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def release() -> str:
    """The RPM's Release: the commit's committer time (UTC) and the commit
    (``20261206044632.g5188950``), so that a build of a later commit upgrades an earlier one
    (``rpm -U`` refuses the same version-release, and its scriptlets never run).  The time
    is the commit's own, which a shallow clone (``git clone --depth 1``, as CI makes) has
    too: a count of commits is the history the clone happens to hold, lower there than in a
    full clone of the same commit, and ``rpm -U`` then refused the full clone's RPM
    over it.  (Every release this gives is above the commit counts used before: an
    upgrade from those works.)  A tree with changes not committed gets ``.dirty`` and the
    build's UTC time after it (a rebuild after an edit upgrades too); ``0.local`` outside
    a git checkout."""
    import time
    try:
        stamp, sha, changes = (subprocess.run(["git", "-C", ROOT] + args, stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL, universal_newlines=True,
                                              check=True).stdout.strip()
                               for args in (["log", "-1", "--format=%ct", "HEAD"], ["rev-parse", "--short", "HEAD"],
                                            ["status", "--porcelain", "--untracked-files=no"]))
        committed = time.strftime("%Y%m%d%H%M%S", time.gmtime(int(stamp)))
    except (OSError, ValueError, subprocess.CalledProcessError):
        return "0.local"
    return "{}.g{}".format(committed, sha) + (".dirty" + time.strftime("%Y%m%d%H%M%S", time.gmtime())
                                              if changes else "")


def console_scripts() -> dict:
    """name -> (module, function), read from setup.py: the one list of entry points."""
    text = open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read()
    found = re.findall(r'"(xapi-numa[\w-]*)\s*=\s*([\w.]+):(\w+)"', text)
    return {name: (module, func) for name, module, func in found}


def launcher(what: str, install_path: str, body: str) -> str:
    up = os.path.relpath("/", os.path.dirname(install_path))
    return LAUNCHER.format(what=what, up=up, prefix=PREFIX.lstrip("/"), body=body)


def write(path: str, text: str, mode: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)


def pins() -> list:
    """(name, version) of each line of ``dom0-requirements.txt``."""
    text = open(os.path.join(HERE, "dom0-requirements.txt"), encoding="utf-8").read()
    return re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)


def fetch_wheels(cache: str, python: str) -> list:
    """The pinned dom0 wheels (hash-checked by pip), downloaded once into ``cache``: only
    those, not a wheel an earlier pin left there."""
    os.makedirs(cache, exist_ok=True)
    subprocess.check_call([python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--require-hashes", "-d", cache, "-r",
                           os.path.join(HERE, "dom0-requirements.txt")] + WHEEL_TARGET)
    wheels = []
    for name, ver in pins():
        # a wheel's file name spells the project with "_" for "-" and ".", case as published
        prefix = "{}-{}-".format(re.sub(r"[-_.]+", "_", name), ver).lower()
        found = [w for w in glob.glob(os.path.join(cache, "*.whl")) if os.path.basename(w).lower().startswith(prefix)]
        if len(found) != 1:
            raise SystemExit("build_rpm: expected one wheel of {}=={} in {}, found {}".format(name, ver, cache, found))
        wheels += found
    return wheels


def git_output(root: str, args: list) -> str:
    """What ``git -C root ARGS`` prints; SystemExit naming ``root`` where that is no checkout."""
    try:
        done = subprocess.run(["git", "-C", root] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)
    except OSError as err:
        raise SystemExit("build_rpm: git cannot run ({}): the RPM carries only the files git tracks "
                         "under xapi_numa/".format(err.strerror or err)) from None
    if done.returncode:
        raise SystemExit("build_rpm: {} is not a git checkout ({}): the RPM carries only the files git tracks "
                         "under xapi_numa/; build from a clone".format(root, done.stderr.strip() or "git failed"))
    return done.stdout


def tracked_package_files(root: str) -> list:
    """The files of ``xapi_numa`` that git tracks in the checkout at ``root`` (paths from
    ``root``), as its working tree has them: not an editor's backup, a scratch module never
    added, bytecode, or an API-mode module built for this machine's Python.  A tracked file
    deleted in the working tree is left out, as it is from what runs here."""
    top = git_output(root, ["rev-parse", "--show-toplevel"]).strip()
    if os.path.realpath(top) != os.path.realpath(root):  # a tree unpacked inside another checkout
        raise SystemExit("build_rpm: {} is not a git checkout (it lies inside {}): the RPM carries only the "
                         "files git tracks under xapi_numa/; build from a clone".format(root, top))
    names = [n for n in git_output(root, ["ls-files", "-z", "--", "xapi_numa"]).split("\0") if n]
    files = [n for n in names if os.path.isfile(os.path.join(root, n))]
    if "xapi_numa/__init__.py" not in files:
        raise SystemExit("build_rpm: git tracks no xapi_numa/__init__.py in {}".format(root))
    return files


def copy_package(dest: str, root: str = ROOT) -> None:
    """The xapi_numa files git tracks, into ``dest``."""
    for name in tracked_package_files(root):
        os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
        shutil.copy2(os.path.join(root, name), os.path.join(dest, name))


def copy_docs(dest: str, root: str = ROOT) -> None:
    """README.md and the tracked docs/*.md into ``dest`` (one folder): the messages that send an
    admin to a document name it there, /opt/xapi-numa/doc, and a dom0 has no checkout."""
    names = [n for n in git_output(root, ["ls-files", "-z", "--", "README.md", "docs"]).split("\0")
             if n.endswith(".md") and os.path.isfile(os.path.join(root, n))]
    os.makedirs(dest)
    for name in names:
        shutil.copy2(os.path.join(root, name), os.path.join(dest, os.path.basename(name)))


def find_python36():
    """A working CPython 3.6 on this machine (python3.6 on PATH or a pyenv install), or None."""
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    candidates = [shutil.which("python3.6"), "/usr/bin/python3.6"]
    for root in filter(None, roots):
        candidates += sorted(glob.glob(os.path.join(root, "versions", "3.6*", "bin", "python3.6")))
    for exe in filter(None, candidates):
        if not os.access(exe, os.X_OK):
            continue
        try:  # a pyenv shim for a version not selected exits non-zero
            out = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2])"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, universal_newlines=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.strip() == "(3, 6)":
            return exe
    return None


def compile_for_python36(python_dir: str) -> bool:
    """Byte-compile for dom0's 3.6 (faster plugin calls), where a 3.6 is at hand."""
    exe = find_python36()
    if exe is None:
        return False
    subprocess.check_call([exe, "-m", "compileall", "-q", python_dir], stdout=subprocess.DEVNULL)
    return True


def normalise_modes(payload: str) -> None:
    """Folders and programs 0755, every other file 0644: the spec takes modes as staged,
    and unzipping, compiling and copying leave them as the build machine's umask makes
    them (under umask 0002 or 0000, a lib/python root runs from would be writable by others)."""
    for dirpath, dirnames, filenames in os.walk(payload):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            os.chmod(path, 0o755 if os.stat(path).st_mode & 0o111 else 0o644)


def stage(payload: str, libdir: str, wheels: list) -> None:
    private = payload + PREFIX
    python_dir = os.path.join(private, "lib", "python")
    os.makedirs(python_dir)
    copy_package(python_dir)
    copy_docs(os.path.join(private, "doc"))
    for whl in wheels:
        with zipfile.ZipFile(whl) as z:
            z.extractall(python_dir)
    if glob.glob(os.path.join(python_dir, "XenAPI*")):
        raise SystemExit("build_rpm: a wheel brought XenAPI: dom0's own XenAPI.py must not be shadowed")
    if not compile_for_python36(python_dir):
        print("build_rpm: no CPython 3.6 here: the RPM ships no bytecode (dom0 compiles in memory)",
              file=sys.stderr)
    for name in ("libxenuma.so", "libxenuma.h"):
        src = os.path.join(libdir, name)
        if not os.path.isfile(src):
            raise SystemExit("build_rpm: {} missing: run make dom0-lib".format(src))
        shutil.copy2(src, os.path.join(private, "lib", name))
    write(os.path.join(private, "libexec", "numa"), plugin_body(), 0o644)
    # irqbalance's policy script, for the IRQs xapi-numad aligns (see backends/dom0.py)
    shutil.copy2(os.path.join(HERE, "irqbalance-policy"), os.path.join(private, "libexec", "irqbalance-policy"))
    os.chmod(os.path.join(private, "libexec", "irqbalance-policy"), 0o755)
    for name, (module, func) in sorted(console_scripts().items()):
        path = "/usr/bin/" + name
        write(payload + path, launcher(name, path, ENTRY_BODY.format(module=module, func=func)), 0o755)
    write(payload + PLUGIN, launcher("xapi host plugin 'numa'", PLUGIN, PLUGIN_BODY), 0o755)
    for unit in UNITS:
        text = open(os.path.join(HERE, unit), encoding="utf-8").read()
        # the unit in the tree names pip's /usr/local/bin; the RPM's launchers are in /usr/bin
        write(payload + UNIT_DIR + "/" + unit, text.replace("/usr/local/bin/", "/usr/bin/"), 0o644)
    write(payload + TMPFILES_DIR + "/xapi-numa.conf",
          open(os.path.join(HERE, "xapi-numa.tmpfiles"), encoding="utf-8").read(), 0o644)
    for folder in (STATE_DIR, RUN_DIR):  # the spec gives them their mode (0700)
        os.makedirs(payload + folder)
    normalise_modes(payload)


LICENSE_NAMES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")


def license_list(payload: str) -> list:
    """The %files lines that mark each bundled distribution's license files %license (in
    place, under our directory).  SystemExit where a bundled distribution brought none:
    the RPM would carry its code without its license."""
    python_dir = payload + PREFIX + "/lib/python"
    lines = []
    for dist_info in sorted(glob.glob(os.path.join(python_dir, "*.dist-info"))):
        found = sorted(os.path.join(dirpath, name) for dirpath, _, names in os.walk(dist_info) for name in names
                       if name.upper().startswith(LICENSE_NAMES))
        if not found:
            raise SystemExit("build_rpm: {} has no license file: the RPM must carry it".format(
                os.path.basename(dist_info)))
        lines += ["%license " + path[len(payload):] for path in found]
    return lines


def build(payload: str, out: str) -> str:
    top = os.path.abspath(os.path.join(out, "rpmbuild"))
    shutil.rmtree(top, ignore_errors=True)
    os.makedirs(top)
    licenses = license_list(payload)
    defines = {
        "_topdir": top, "payload": os.path.abspath(payload), "xn_version": version(), "xn_release": release(),
        "xn_prefix": PREFIX, "xn_unitdir": UNIT_DIR, "xn_tmpfilesdir": TMPFILES_DIR,
        # nothing outside our files: no /usr/lib/.build-id links, no stripping or bytecode
        # (dom0's 3.6 writes no __pycache__ it was not given; ours would be for this Python)
        "_build_id_links": "none", "debug_package": "%{nil}", "__os_install_post": "%{nil}",
    }
    if licenses:  # (rpmbuild refuses an empty list: a build with no wheels, as tests make)
        defines["xn_licenses"] = os.path.join(top, "licenses.files")
        with open(defines["xn_licenses"], "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in licenses))
    cmd = ["rpmbuild", "-bb", "--target", "x86_64"]
    for key, value in defines.items():
        cmd += ["--define", "{} {}".format(key, value)]
    subprocess.check_call(cmd + [os.path.join(HERE, "xapi-numa.spec")], stdout=subprocess.DEVNULL)
    rpms = glob.glob(os.path.join(top, "RPMS", "x86_64", "xapi-numa-*.x86_64.rpm"))
    if len(rpms) != 1:
        raise SystemExit("build_rpm: expected one RPM, found {}".format(rpms))
    final = os.path.join(out, os.path.basename(rpms[0]))
    shutil.copy2(rpms[0], final)
    return final


def sha256_of(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_packaged_library(rpm_path: str, libdir: str) -> str:
    """The RPM's libxenuma.so is the input file byte for byte (the file ``make dom0-lib``
    built, and the one ``make xen-test`` runs on real Xen); returns its sha256."""
    want = sha256_of(os.path.join(libdir, "libxenuma.so"))
    dump = subprocess.run(["rpm", "-qp", "--dump", rpm_path], stdout=subprocess.PIPE, universal_newlines=True,
                          check=True).stdout
    packaged = [line.split()[3] for line in dump.splitlines() if line.startswith(PREFIX + "/lib/libxenuma.so ")]
    if packaged != [want]:
        raise SystemExit("build_rpm: the RPM's libxenuma.so (sha256 {}) is not {}/libxenuma.so (sha256 {})"
                         .format(packaged, libdir, want))
    return want


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", default=os.path.join(ROOT, "build", "dom0"),
                        help="directory with libxenuma.so and libxenuma.h (make dom0-lib)")
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "rpm"))
    parser.add_argument("--python", default=sys.executable, help="a Python with pip, to fetch the wheels")
    args = parser.parse_args(argv)
    if shutil.which("rpmbuild") is None:
        print("build_rpm: rpmbuild not found (Debian: apt-get install rpm)", file=sys.stderr)
        return 1
    tracked_package_files(ROOT)  # outside a checkout: refused before anything is downloaded
    payload = os.path.join(args.out, "payload")
    shutil.rmtree(payload, ignore_errors=True)
    try:
        stage(payload, args.lib, fetch_wheels(os.path.join(args.out, "wheels"), args.python))
        rpm_path = build(payload, args.out)
        print("build_rpm: libxenuma.so sha256 {} (from {})".format(check_packaged_library(rpm_path, args.lib),
                                                                   args.lib), file=sys.stderr)
        print(rpm_path)
    except subprocess.CalledProcessError as err:
        print("build_rpm: {} failed (exit {})".format(err.cmd[0] if err.cmd[0] != args.python else "pip download",
                                                      err.returncode), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
