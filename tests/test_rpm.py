"""Installable on a dom0: the glibc 2.17 libxenuma, its ABI-mode loading, and the RPM.

* ``packaging/dom0-lib.sh`` (``make dom0-lib``) builds libxenuma with zig for
  glibc 2.17; ``objdump -T`` must show no newer symbol version, and cffi's ABI
  mode must open it and call its pure functions with no Xen running.
* ``packaging/build_rpm.py`` (``make rpm``) builds the RPM; it is installed into
  a scratch root (``rpm --root``), its xapi plugin is run there as xapi runs it
  (one methodCall in argv[1], one methodResponse on stdout) against a simulated
  host, then it is erased and nothing of ours may be left.

Skipped, saying why, where the build tools are absent (``.ci/run`` installs them).
"""
import errno
import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import xmlrpc.client

import pytest
from conftest import missing

# The RPM is built by the build machine's Python (make test runs this file); dom0's 3.6
# runs its payload in test_py36.  Under make test-py36 there is nothing of ours to test here.
pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="the RPM build runs on the build machine's Python")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = "opt/xapi-numa"
OUTSIDE_PREFIX = {"etc/xapi.d/plugins/numa", "usr/bin/xapi-numa", "usr/bin/xapi-numad", "usr/bin/xapi-numa-rrdd",
                  "usr/lib/systemd/system/xapi-numad.service", "usr/lib/systemd/system/xapi-numa-rrdd.service",
                  "usr/lib/tmpfiles.d/xapi-numa.conf", "var/lib/xapi-numa", "run/xapi-numa"}
GLIBC_MAX = (2, 17)


def load_build_rpm():
    spec = importlib.util.spec_from_file_location("build_rpm", os.path.join(ROOT, "packaging", "build_rpm.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def have_dom0_toolchain():
    """Why the glibc 2.17 build cannot run here, or None."""
    if shutil.which("objdump") is None:
        return "objdump (binutils) is not installed"
    if subprocess.run(["dpkg", "-s", "libxen-dev"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
        return "libxen-dev is not installed"
    if subprocess.run([sys.executable, "-m", "ziglang", "version"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode:
        return "ziglang is not installed in this Python (make dom0-lib installs it)"
    return None


@pytest.fixture(scope="module")
def dom0_lib(tmp_path_factory):
    """A directory with the zig-built libxenuma.so and its libxenuma.h."""
    why = have_dom0_toolchain() if shutil.which("dpkg") else "not a Debian machine (dpkg missing)"
    if why:
        missing("cannot build libxenuma for glibc 2.17: " + why)
    out = tmp_path_factory.mktemp("dom0-lib")
    proc = subprocess.run(["sh", os.path.join(ROOT, "packaging", "dom0-lib.sh"), str(out), sys.executable],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0, proc.stdout
    return str(out)


def glibc_versions(path):
    out = subprocess.run(["objdump", "-T", path], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    return {tuple(int(x) for x in v.split(".")) for v in re.findall(r"GLIBC_([0-9][0-9.]*[0-9])", out)}


def test_dom0_library_needs_nothing_newer_than_glibc_2_17(dom0_lib):
    versions = glibc_versions(os.path.join(dom0_lib, "libxenuma.so"))
    assert versions, "no versioned glibc symbol at all: objdump output not understood"
    assert max(versions) <= GLIBC_MAX, "needs GLIBC_{}".format(".".join(map(str, max(versions))))


def test_dom0_library_links_only_xen_and_libc(dom0_lib):
    out = subprocess.run(["objdump", "-p", os.path.join(dom0_lib, "libxenuma.so")], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    needed = set(re.findall(r"NEEDED\s+(\S+)", out))
    assert "libxenctrl.so.4.17" in needed
    assert needed <= {"libxenctrl.so.4.17", "libxenforeignmemory.so.1", "libxentoollog.so.1", "libc.so.6",
                      "libpthread.so.0", "libdl.so.2"}, needed


NO_XEN_CALLS = """
import errno, sys
from xapi_numa.backends.libxenuma_abi import load
ffi, lib = load([sys.argv[1]])
h = ffi.new("xn_handle **")
rc = lib.xn_open(h)          # no Xen here: a clean -errno, not a crash
if rc == 0:                  # on a Xen host after all: what it offers
    f = ffi.new("struct xn_features *")
    lib.xn_features(h[0], f)
    lib.xn_close(h[0])
print(rc, lib.xn_page_layout(ffi.new("uint8_t[4096]")), lib.XN_GFN_RAM)
"""


def test_abi_loader_calls_the_zig_library_without_xen(dom0_lib):
    # in a child: a crash in C must fail this test, not end the run
    proc = subprocess.run([sys.executable, "-c", NO_XEN_CALLS, dom0_lib], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rc, layout, ram = map(int, proc.stdout.split())
    assert rc <= 0 and (rc == 0 or -rc in (errno.ENOENT, errno.ENXIO, errno.EACCES, errno.EPERM, errno.ENODEV)), rc
    assert layout == ram


def crafted_pages():
    """Pages for the layout recogniser: zero, random, and the shapes it looks for."""
    rng = random.Random(18)
    pages = [bytes(4096), bytes(rng.getrandbits(8) for _ in range(4096))]
    vcpu_info_like = bytearray(4096)
    for off in range(0, 4096, 64):  # evtchn_upcall_pending/mask bytes and a time version per slot
        vcpu_info_like[off + 1] = 1
    pages.append(bytes(vcpu_info_like))
    ones = bytes([0xFF]) * 4096
    pages.append(ones)
    return pages


def test_abi_and_api_modes_agree_on_page_layouts(dom0_lib):
    from xapi_numa.backends.libxenuma_abi import load

    ffi, lib = load([dom0_lib])
    results = []
    for page in crafted_pages():
        buf = ffi.new("uint8_t[]", page)
        results.append(lib.xn_page_layout(buf))
    assert set(results) <= {lib.XN_GFN_RAM, lib.XN_GFN_VCPU_INFO, lib.XN_GFN_EVTCHN}
    assert results[0] == lib.XN_GFN_RAM  # an empty page is plain RAM
    try:
        from xapi_numa._libxenuma import ffi as api_ffi, lib as api_lib
    except ImportError:
        missing("no API-mode module here to compare with (libxen-dev absent at install)")
    expected = [api_lib.xn_page_layout(api_ffi.new("uint8_t[]", p)) for p in crafted_pages()]
    assert results == expected


def test_abi_loader_says_where_it_looked(tmp_path):
    from xapi_numa.backends.libxenuma_abi import load

    with pytest.raises(ImportError, match=re.escape(str(tmp_path))):
        load([str(tmp_path)])


# --- the RPM -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rpm_file(dom0_lib, tmp_path_factory):
    if shutil.which("rpmbuild") is None or shutil.which("rpm") is None:
        missing("rpmbuild is not installed (Debian: apt-get install rpm; .ci/run does)")
    out = tmp_path_factory.mktemp("rpm")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "packaging", "build_rpm.py"), "--lib", dom0_lib,
                           "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def rpm_query(*args):
    return subprocess.run(["rpm"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout


def test_each_commit_builds_a_release_that_upgrades_the_last(rpm_file):
    """Every RPM was xapi-numa-0.1.0-1: ``rpm -U`` of a later build said it was already
    installed, so no upgrade (and no restart scriptlet) could happen.  The release is the
    commit's committer time (tests/test_pkg_rpm_release.py: the same from a shallow clone)."""
    release = rpm_query("-qp", "--queryformat", "%{RELEASE}", rpm_file)
    stamp = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%ct", "HEAD"], stdout=subprocess.PIPE,
                           universal_newlines=True).stdout.strip()
    if not stamp:
        assert release == "0.local"
        return
    committed = time.strftime("%Y%m%d%H%M%S", time.gmtime(int(stamp)))
    # rpm compares the time first; an edited tree's build is newer than its commit's
    assert re.fullmatch(committed + r"\.g[0-9a-f]{7,}(\.dirty[0-9]{14})?", release), release


def test_payload_is_ours_only_and_has_no_xenapi(rpm_file):
    files = [f.lstrip("/") for f in rpm_query("-qlp", rpm_file).split()]
    assert files, "empty payload"
    stray = [f for f in files if not (f == PREFIX or f.startswith(PREFIX + "/") or f in OUTSIDE_PREFIX)]
    assert not stray, "outside our directory: {}".format(stray)
    assert OUTSIDE_PREFIX <= set(files)
    assert not [f for f in files if "xenapi" in f.lower()], "dom0's own XenAPI.py must not be shadowed"
    for needed in ("lib/libxenuma.so", "lib/libxenuma.h", "lib/python/xapi_numa/__init__.py",
                   "lib/python/attr/__init__.py", "lib/python/cffi/__init__.py", "lib/python/pycparser/__init__.py"):
        assert PREFIX + "/" + needed in files, needed
    assert [f for f in files if re.search(r"_cffi_backend\.cpython-36m-x86_64-linux-gnu\.so$", f)]
    assert not [f for f in files if "_libxenuma" in f], "no API-mode module built for the build machine's Python"


def test_the_bundled_distributions_licenses_are_named_and_shipped(rpm_file):
    """PyPI's attrs, cffi and pycparser as the RPM bundles them: each license file their
    wheels carry is marked %license, and License: names their licenses."""
    license_tag = rpm_query("-qp", "--queryformat", "%{LICENSE}", rpm_file)
    assert license_tag == "LGPL-2.1-only AND MIT AND BSD-3-Clause", license_tag
    listed = rpm_query("-qp", "--queryformat", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", rpm_file).splitlines()
    marked = sorted(path for flags, path in (line.split(" ", 1) for line in listed) if "l" in flags)
    lib = "/" + PREFIX + "/lib/python/"
    assert marked == [lib + "attrs-22.2.0.dist-info/LICENSE", lib + "cffi-1.15.1.dist-info/LICENSE",
                      lib + "pycparser-2.21.dist-info/LICENSE"], marked


def test_requirements_name_xen_and_old_glibc_only(rpm_file):
    requires = rpm_query("-qp", "--requires", rpm_file).split("\n")
    glibc = [tuple(int(x) for x in m.group(1).split("."))
             for r in requires for m in [re.search(r"\(GLIBC_([0-9.]+)\)", r)] if m]
    assert glibc and max(glibc) <= GLIBC_MAX
    assert any(r.startswith("libxenctrl.so.4.17()") for r in requires)
    assert not [r for r in requires if "XenAPI" in r], requires
    # dom0's CPython 3.6 only (tests/test_pkg_rpm_python_abi.py), never the build machine's
    assert [r for r in requires if "python(abi)" in r] == ["python(abi) = 3.6"], requires


def test_scripts_enable_and_stop_the_daemon(rpm_file):
    scripts = rpm_query("-qp", "--scripts", rpm_file)
    # systemd 219 (a XenServer 8 dom0) has no --now: enable and start, stop and disable
    assert "--now" not in scripts
    for verb in ("enable", "start", "stop", "disable"):
        assert "systemctl {} xapi-numad.service".format(verb) in scripts


def spec_scriptlet(name: str) -> str:
    """The body of scriptlet ``%name`` of the spec, with the spec's own shell macros
    (``%define xn_... \\`` lines) expanded as rpmbuild expands them."""
    text = open(os.path.join(ROOT, "packaging", "xapi-numa.spec")).read()
    body = text.split("\n%{}\n".format(name), 1)[1]
    body = re.split(r"\n%[a-z]+\n", "\n" + body, 1)[0]
    for macro, definition in re.findall(r"^%define (xn_\w+) ((?:.*\\\n)*.*)$", text, re.M):
        body = body.replace("%{" + macro + "}", definition.replace("\\\n", "\n").replace("%%", "%"))
    return body


START = "start xapi-numad.service xapi-numa-rrdd.service"
RESTART = "try-restart xapi-numad.service xapi-numa-rrdd.service"
RELINK = ["is-enabled --quiet xapi-numa-rrdd.service", "reenable xapi-numa-rrdd.service"]
TMPFILES = "systemd-tmpfiles --create /usr/lib/tmpfiles.d/xapi-numa.conf"


@pytest.mark.parametrize("steps, systemd_runs, calls", [
    ([("post", 1), ("posttrans", 0)], False, ["enable xapi-numad.service xapi-numa-rrdd.service"]),  # a chroot
    ([("post", 1), ("posttrans", 0)], True, ["enable xapi-numad.service xapi-numa-rrdd.service", TMPFILES,
                                             "daemon-reload", START]),
    # an upgrade: the new %post, the old %preun and %postun, the new %posttrans; it restarts
    # only at the end, and re-links an enabled metrics plugin (wanted by xcp-rrdd since 2026-12-05)
    ([("post", 2), ("preun", 1), ("postun", 1), ("posttrans", 0)], True,
     RELINK + [TMPFILES, "daemon-reload", RESTART]),
    ([("post", 2), ("preun", 1), ("postun", 1), ("posttrans", 0)], False, RELINK),
    ([("preun", 0)], False, ["xapi-numad --hand-back --no-xapi", "disable xapi-numad.service xapi-numa-rrdd.service"]),
    ([("preun", 0)], True, ["stop xapi-numad.service xapi-numa-rrdd.service", "xapi-numad --hand-back --no-xapi",
                            "disable xapi-numad.service xapi-numa-rrdd.service"]),
    ([("preun", 1)], True, []),
    ([("postun", 0)], True, ["daemon-reload"]),
    ([("postun", 1)], True, []),
])
def test_scriptlets_enable_offline_and_start_only_where_systemd_runs(tmp_path, steps, systemd_runs, calls):
    """Installed where systemd is not running (a host installer's supplemental pack, an
    image build, rpm --root) the units were never enabled: nothing ran at any boot.  The
    scriptlets run here in rpm's order (tests/test_pkg_rpm_upgrade.py runs them in rpm)."""
    done, _ = run_scriptlets(tmp_path, steps, systemd_runs)
    assert done == calls


SYSTEMCTL_FAILS = "echo \"Failed to $1 unit: Access denied\" >&2; echo 'See system logs' >&2; exit 1\n"


def run_scriptlets(tmp_path, steps, systemd_runs, systemctl_fails=False):
    """The spec's scriptlets run in order with a recording systemctl (failing, with two
    lines of complaint, where ``systemctl_fails``): what was called, and their stderr."""
    if shutil.which("sh") is None:
        pytest.skip("no sh")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    fails = SYSTEMCTL_FAILS if systemctl_fails else ""
    (bin_dir / "systemctl").write_text("#!/bin/sh\necho \"$*\" >> {}\n{}".format(log, fails))
    (bin_dir / "systemd-tmpfiles").write_text("#!/bin/sh\necho \"systemd-tmpfiles $*\" >> {}\n".format(log))
    # the removal hands back dom0's backend work: a daemon that fails (no Xen here) must not stop it
    (bin_dir / "xapi-numad").write_text("#!/bin/sh\necho \"xapi-numad $*\" >> {}\nexit 1\n".format(log))
    for name in ("systemctl", "systemd-tmpfiles", "xapi-numad"):
        (bin_dir / name).chmod(0o755)
    run_dir = tmp_path / "run-systemd-system"
    if systemd_runs:
        run_dir.mkdir()
    env = dict(os.environ, PATH="{}:{}".format(bin_dir, os.environ.get("PATH", "")))
    errors = []
    for scriptlet, arg in steps:
        script = spec_scriptlet(scriptlet).replace("/run/systemd/system", str(run_dir)).replace(
            "/usr/bin/xapi-numad", str(bin_dir / "xapi-numad")).replace(
            "%{xn_services_todo}", str(tmp_path / "services-todo")).replace(
            "%{xn_prefix}", str(tmp_path / "prefix")).replace("%{xn_tmpfilesdir}", "/usr/lib/tmpfiles.d")
        done = subprocess.run(["sh", "-e", "-c", script, "scriptlet", str(arg)], env=env, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=30)
        assert done.returncode == 0, "a failure in %{} failed the RPM transaction: {}".format(scriptlet, done.stderr)
        errors += done.stderr.splitlines()
    assert not (tmp_path / "services-todo").exists()
    return (log.read_text().splitlines() if log.exists() else []), errors


@pytest.mark.parametrize("steps, failing", [
    ([("post", 1), ("posttrans", 0)], ["enable xapi-numad.service xapi-numa-rrdd.service", "daemon-reload", START]),
    ([("preun", 0), ("postun", 0)], ["stop xapi-numad.service xapi-numa-rrdd.service",
                                     "disable xapi-numad.service xapi-numa-rrdd.service", "daemon-reload"]),
])
def test_a_step_that_fails_in_a_scriptlet_is_one_warning_line_and_the_transaction_goes_on(tmp_path, steps, failing):
    """An enable (or start, stop, disable, reload) that failed was silent (``>/dev/null 2>&1
    || :``): the admin learnt only at the next boot that nothing ran.  Each failure is one
    line on stderr naming the command, systemctl's first line and what to run."""
    _, errors = run_scriptlets(tmp_path, steps, systemd_runs=True, systemctl_fails=True)
    ours = [line for line in errors if "xapi-numad --hand-back failed" not in line]
    assert len(ours) == len(failing), errors
    for line, command in zip(ours, failing):
        verb = command.split()[0]
        assert line.startswith("xapi-numa: warning: 'systemctl {}' failed (exit 1: Failed to {} unit: Access denied); "
                               .format(command, verb)), line
        assert "run systemctl " + verb in line, line
    assert not [line for line in errors if "See system logs" in line], "more than one line per failure"


@pytest.fixture
def sim_host(tmp_path):
    path = str(tmp_path / "host.json")
    proc = subprocess.run([sys.executable, "-m", "xapi_numa.cli", "sim", "init", path, "--nodes", "2",
                           "--cpus-per-node", "4", "--memory-per-node", "4G"], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, proc.stderr
    return path


def installed_env(sim_path, root):
    """What xapi gives a plugin, plus the simulated backend; nothing of this checkout."""
    env = {"PATH": "/usr/bin:/bin", "XAPI_NUMA_BACKEND": "sim:" + sim_path, "HOME": str(root),
           "XAPI_NUMA_LEDGER": os.path.join(str(root), "..", "ledger.db")}
    return env


def call_plugin(argv, env, function, args):
    call = xmlrpc.client.dumps(("OpaqueRef:test-session", args), function)
    proc = subprocess.run(argv + [call], env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (result,), _ = xmlrpc.client.loads(proc.stdout)
    return result


def test_install_call_plugin_uninstall_in_a_scratch_root(rpm_file, sim_host, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["rpm", "--root", str(root), "--initdb"], check=True)
    before = set(walk(root))
    subprocess.run(["rpm", "--root", str(root), "--nodeps", "--noscripts", "-i", rpm_file], check=True)
    plugin = str(root / "etc" / "xapi.d" / "plugins" / "numa")
    assert os.access(plugin, os.X_OK)
    env = installed_env(sim_host, root)

    # as xapi runs it: the file itself (its #!/usr/bin/python3), one call in argv[1]
    result = call_plugin([plugin], env, "host_topology", {})
    assert result["Status"] == "Success", result
    topo = json.loads(result["Value"])
    assert len(topo["nodes"]) == 2
    failure = call_plugin([plugin], env, "no_such_function", {})
    assert failure["Status"] == "Failure" and failure["ErrorDescription"][0] == "UNKNOWN_XENAPI_PLUGIN_FUNCTION"

    # the CLI launcher, from its private directory
    cli = subprocess.run([str(root / "usr" / "bin" / "xapi-numa"), "--backend", "sim:" + sim_host, "topology",
                          "--json"], env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=120)
    assert cli.returncode == 0 and json.loads(cli.stdout), cli.stderr

    py36 = load_build_rpm().find_python36()
    if py36 is not None:  # dom0's interpreter: its private attrs, cffi's cp36 backend, libxenuma in ABI mode
        result = call_plugin([py36, plugin], env, "host_topology", {})
        assert result["Status"] == "Success", result
        probe = ("import sys; sys.path.insert(0, sys.argv[1]); import attr, cffi, _cffi_backend\n"
                 "from xapi_numa.backends import xen\n"
                 "assert attr.__version__ == '22.2.0' and cffi.__version__ == '1.15.1', (attr.__version__, cffi.__version__)\n"
                 "print(xen.lib.xn_page_layout(xen.ffi.new('uint8_t[4096]')), xen.ffi.dlopen.__module__)")
        proc = subprocess.run([py36, "-c", probe, str(root / PREFIX / "lib" / "python")], env=env, cwd="/",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[0] == "0"

    subprocess.run(["rpm", "--root", str(root), "--nodeps", "--noscripts", "-e", "xapi-numa"], check=True)
    left = [p for p in set(walk(root)) - before
            if not os.path.isdir(os.path.join(str(root), p)) and not is_rpm_db(p)]
    assert not left, "left behind: {}".format(sorted(left))
    ours = [p for p in walk(root) if "xapi-numa" in p or p.endswith("plugins/numa")]
    assert not ours, "left behind: {}".format(ours)


def walk(root):
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            yield os.path.relpath(os.path.join(dirpath, name), str(root))


def is_rpm_db(path):
    return path.startswith(("var/lib/rpm", "usr/lib/sysimage/rpm", "var/tmp"))


def test_make_install_on_a_dom0_installs_nothing_over_its_xenapi(tmp_path):
    """On a dom0 (its inventory file exists) `make install` refuses before pip runs."""
    inventory = tmp_path / "xensource-inventory"
    inventory.write_text("INSTALLATION_UUID='x'\n")
    # PYTHON=false: even if the guard were gone, nothing could be installed by this test
    proc = subprocess.run(["make", "-C", ROOT, "install", "XENSOURCE_INVENTORY=" + str(inventory), "PYTHON=false",
                           "DESTDIR=" + str(tmp_path / "dest")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    assert proc.returncode != 0
    assert "install the RPM instead" in proc.stdout
    assert "pip install" not in proc.stdout and not (tmp_path / "dest").exists()
