"""The C library's own unit tests, compiled and run here.

Pure parts (console-dump parser, page layouts, the mover's batch record) need
only a C compiler.  Run-time detection of XenServer's patched libxenctrl
calls needs libxen-dev: one test binary, built once against the real
libxenctrl, is run against it (stock) and, through LD_LIBRARY_PATH, against a
fake libxenctrl built without and with the patched calls.  The page mover
(scan, move, recovery) runs the same way over the fake's guest-memory model
and a fake libxenforeignmemory, also under AddressSanitizer and UBSan.
"""
import os
import shutil
import sys
import subprocess

import pytest
from conftest import missing, needs

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "libxenuma")
SRC = os.path.join(LIB, "src")
TESTS = os.path.join(LIB, "tests")
CC = shutil.which("gcc") or shutil.which("cc")
WARN = ["-Wall", "-Wextra", "-Werror"]
HAVE_XEN_DEV = os.path.exists("/usr/include/xenctrl.h")


def library_sources() -> list:
    """libxenuma/SOURCES, the one list of the library's C files."""
    with open(os.path.join(LIB, "SOURCES")) as f:
        return [os.path.join(SRC, line.strip()) for line in f if line.strip() and not line.startswith("#")]


def compile_c(args: list) -> None:
    subprocess.check_call([CC, "-std=gnu11", "-O2", *WARN, *args])


HEADER = os.path.join(SRC, "libxenuma.h")


def release_pair(directory, hidden=()) -> str:
    """``directory`` holding this release's libxenuma.so, as the Makefile builds it, and the
    libxenuma.h beside it, as the ABI loader finds them; the functions named in ``hidden``
    are kept local by a version script (a library older than its header)."""
    os.makedirs(str(directory), exist_ok=True)
    flags = []
    if hidden:
        script = os.path.join(str(directory), "older.map")
        with open(script, "w") as f:
            f.write("{ global: *; local: %s; };\n" % "; ".join(hidden))
        flags = ["-Wl,--version-script=" + script]
    compile_c(["-fPIC", "-shared", *flags, "-o", os.path.join(str(directory), "libxenuma.so"),
               *library_sources(), "-lxenctrl", "-lxenforeignmemory", "-lxentoollog", "-ldl"])
    shutil.copyfile(HEADER, os.path.join(str(directory), "libxenuma.h"))
    return str(directory)


def run_counts(exe: str, *args: str, env: dict = None) -> tuple:
    proc = subprocess.run([exe, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed, failed = (int(x.split()[0]) for x in proc.stdout.strip().splitlines()[-1].split(", "))
    return passed, failed


@needs(CC is not None, "no C compiler")
@pytest.mark.parametrize("test_source, unit, at_least", [
    ("test_udump.c", "udump.c", 19),
    ("test_pagelayout.c", "pagelayout.c", 36),
    ("test_batchrecord.c", "batchrecord.c", 77),
])
def test_c_unit_tests(tmp_path, test_source, unit, at_least):
    exe = str(tmp_path / test_source.replace(".c", ""))
    compile_c(["-o", exe, "-I", SRC, os.path.join(TESTS, test_source), os.path.join(SRC, unit)])
    passed, failed = run_counts(exe)
    assert failed == 0 and passed >= at_least


def build_fake_xenctrl(directory: str, patched: bool) -> str:
    """fake_xenctrl.c as libxenctrl.so.4.17 (same soname and symbol version as Xen 4.17's), and
    beside it fake_xenforeignmemory.c as libxenforeignmemory.so.1 (mapping the fake's frames)."""
    os.makedirs(directory, exist_ok=True)
    xenctrl = os.path.join(directory, "libxenctrl.so.4.17")
    compile_c(["-fPIC", "-shared", *(["-DFAKE_XC_PATCHED"] if patched else []),
               "-Wl,-soname,libxenctrl.so.4.17",
               "-Wl,--version-script=" + os.path.join(TESTS, "fake_xenctrl.map"),
               "-o", xenctrl, os.path.join(TESTS, "fake_xenctrl.c")])
    compile_c(["-fPIC", "-shared", "-Wl,-soname,libxenforeignmemory.so.1",
               "-Wl,--version-script=" + os.path.join(TESTS, "fake_xenforeignmemory.map"),
               "-o", os.path.join(directory, "libxenforeignmemory.so.1"),
               os.path.join(TESTS, "fake_xenforeignmemory.c"), xenctrl])
    return directory


@pytest.fixture(scope="module")
def patched_ops_binary(tmp_path_factory):
    base = tmp_path_factory.mktemp("patched-ops")
    exe = str(base / "test_patched_ops")
    compile_c(["-I", SRC, "-o", exe, os.path.join(TESTS, "test_patched_ops.c"), *library_sources(),
               "-lxenctrl", "-lxenforeignmemory", "-lxentoollog", "-ldl"])
    return {"exe": exe, "stock": build_fake_xenctrl(str(base / "stock"), False),
            "patched": build_fake_xenctrl(str(base / "patched"), True)}


@needs(CC is not None and HAVE_XEN_DEV, "needs a C compiler and libxen-dev")
@pytest.mark.parametrize("mode, at_least", [("real", 2), ("stock", 18), ("patched", 23)])
def test_patched_calls_are_found_at_run_time(patched_ops_binary, mode, at_least):
    env = dict(os.environ)
    env.pop("FAKE_XC_FAIL", None)
    if mode != "real":
        env["LD_LIBRARY_PATH"] = patched_ops_binary[mode]
    passed, failed = run_counts(patched_ops_binary["exe"], mode, env=env)
    assert failed == 0 and passed >= at_least


@needs(CC is not None and HAVE_XEN_DEV, "needs a C compiler and libxen-dev")
def test_library_builds_with_warnings_as_errors(tmp_path):
    """Every file in SOURCES, as the Makefile's shared library."""
    out = str(tmp_path / "libxenuma.so")
    compile_c(["-fPIC", "-shared", "-o", out, *library_sources(),
               "-lxenctrl", "-lxenforeignmemory", "-lxentoollog", "-ldl"])
    assert exported_functions(out) == header_functions()


def header_functions() -> set:
    """The functions libxenuma.h declares (read as the ABI loader reads them)."""
    from xapi_numa.backends.libxenuma_abi import functions
    with open(HEADER) as f:
        names = set(functions(f.read()))
    assert {"xn_open", "xn_patched_ops", "xn_mig_record_busy", "xn_page_layout"} <= names
    return names


def exported_functions(library: str) -> set:
    """The xn_ symbols a shared library exports: the header's functions and nothing else (no
    internal helper, which the next release may change under whoever linked against it)."""
    symbols = subprocess.run(["nm", "-D", "--defined-only", library], stdout=subprocess.PIPE,
                             universal_newlines=True, check=True).stdout.split()
    return {s for s in symbols if s.startswith("xn_")}


SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"]


def sanitizers_work(tmp_path) -> bool:
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    return subprocess.run([CC, *SANITIZERS, "-o", str(tmp_path / "probe"), str(probe)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


@needs(CC is not None and HAVE_XEN_DEV, "needs a C compiler and libxen-dev")
@pytest.mark.parametrize("sanitize", [False, True], ids=["plain", "asan-ubsan"])
def test_page_mover_over_the_fake(patched_ops_binary, tmp_path, sanitize):
    """Scan, move and recovery against the fake's guest memory: contents kept, frames on the
    node asked for, nothing leaked or freed under a mapping, the pause given back once."""
    if sanitize and not sanitizers_work(tmp_path):
        pytest.skip("this compiler cannot build with AddressSanitizer and UBSan")
    exe = str(tmp_path / "test_pagemove")
    compile_c([*(SANITIZERS if sanitize else []), "-I", SRC, "-o", exe, os.path.join(TESTS, "test_pagemove.c"),
               *library_sources(), "-lxenctrl", "-lxenforeignmemory", "-lxentoollog", "-ldl"])
    env = dict(os.environ, LD_LIBRARY_PATH=patched_ops_binary["stock"])
    env.pop("FAKE_XC_FAIL", None)
    passed, failed = run_counts(exe, env=env)
    assert failed == 0 and passed >= 100


PY_OVER_FAKE = r"""
import os, signal, sys, tempfile, time
os.environ["XAPI_NUMA_RUN_DIR"] = run = tempfile.mkdtemp()
from xapi_numa.backends.xen import XenHypervisor
from xapi_numa.errors import HypervisorError
from xapi_numa.ops.move_recovery import recover
from xapi_numa.state.db import Database
from xapi_numa.state.moves import MoveJournal

hv = XenHypervisor()
ram = [g for g, c in enumerate(hv.memory_map(1).classes) if c == 0][:8]
# a refused pause is a failure, never an empty batch that went well
os.environ["FAKE_XC_FAIL"] = "xc_domain_pause=EPERM"
try:
    print("pause refused:", hv.move_pages(1, ram, 1))
except HypervisorError as err:
    print("pause refused raised", err.errno_name)
del os.environ["FAKE_XC_FAIL"]
# a foreground scan killed in its probe pause writes no journal row: the sweep finds it
pid = os.fork()
if pid == 0:
    hv.memory_map(1, probe_ms=20000)
    os._exit(0)
while not os.listdir(run) or not next(d for d in hv.domains() if d.domid == 1).paused:
    time.sleep(0.05)
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
notes = recover(hv, MoveJournal(Database(os.path.join(tempfile.mkdtemp(), "state.db"))))
print("after recover: paused", next(d for d in hv.domains() if d.domid == 1).paused, "records", os.listdir(run),
      "notes", len(notes))
# a scan's probe pause beside a running move: each under its own record (they shared one,
# and the scan made the move fail EBUSY)
# The move starts once the scan's first pass over the paused guest is over: a frame the
# scan still maps cannot be freed (that move would rightly say "verify", a frame stuck);
# the pass maps the guest's RAM 1024 pages at a time (pagescan.c's SCAN_CHUNK).
import ctypes
unmaps = ctypes.CDLL("libxenctrl.so.4.17").fake_xc_paused_unmaps
unmaps.restype = ctypes.c_uint32
passes = -(-sum(1 for c in hv.memory_map(1).classes if c == 0) // 1024)
before = unmaps()
pid = os.fork()
if pid == 0:
    hv.memory_map(1, probe_ms=8000)
    os._exit(0)
while unmaps() - before < passes:
    time.sleep(0.05)
beside = hv.move_pages(1, ram, 1)
os.waitpid(pid, 0)
print("move beside a probe:", beside.stage, beside.moved, "records", os.listdir(run),
      "paused", next(d for d in hv.domains() if d.domid == 1).paused)
try:
    hv.move_pages(1, ram, 256)
except HypervisorError as err:
    print("node 256 refused", err.errno_name)
# a batch names the VM whose domain it must be, checked once the batch is mapped: another's
# (the fake's handle of domain 1 ends in 01) is refused before any pause, nothing moved
try:
    hv.move_pages(1, ram, 1, uuid="00000000-0000-0000-0000-0000000000ff")
except HypervisorError as err:
    print("another VM's domain:", err.errno_name, "no longer VM" in err.message, os.listdir(run),
          next(d for d in hv.domains() if d.domid == 1).paused)
mine = next(d for d in hv.domains() if d.domid == 1).uuid
print("its own domain:", mine.endswith("01"), hv.move_pages(1, ram, 1, uuid=mine).stage)
# a batch kept paused (its copy back failed) while another recovery holds its record:
# the mover waits for it instead of reporting the guest still paused
import fcntl
from xapi_numa.ops.move_recovery import finish_kept_batch
kept = hv.move_pages(1, ram, 1, fault="copy-back")
record_path = os.path.join(run, "move-1.batch")
pid = os.fork()
if pid == 0:
    fd = os.open(record_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    time.sleep(1.0)
    os.close(fd)
    hv.recover_move(1)
    os._exit(0)
time.sleep(0.3)
still, told = finish_kept_batch(hv, next(d for d in hv.domains() if d.domid == 1), "batch failed")
os.waitpid(pid, 0)
print("kept batch:", kept.stage, "still paused", still, "paused", next(d for d in hv.domains() if d.domid == 1).paused,
      "records", os.listdir(run))
# a record its writer was killed writing (old, its process gone) is swept by recovery, never by a
# listing; one its writer (alive: this process) is still writing is not, even old and unlocked
dead = os.fork()
if dead == 0:
    os._exit(0)
os.waitpid(dead, 0)
old_tmp = os.path.join(run, "move-7.batch.new.{0}.{0}.0".format(dead))
live_tmp = os.path.join(run, "move-7.batch.new.{0}.{0}.9".format(os.getpid()))
for name in (old_tmp, live_tmp):
    with open(name, "wb") as f:
        f.truncate(1 << 20)
    os.utime(name, (time.time() - 3600, time.time() - 3600))
listed = (hv.batch_records(), len(os.listdir(run)))
swept = recover(hv, MoveJournal(Database(os.path.join(tempfile.mkdtemp(), "state.db"))))
print("listed:", listed, "swept:", [os.path.basename(live_tmp)] == os.listdir(run), len(swept))
os.unlink(live_tmp)
# a record this version cannot read: named, with what to do
with open(os.path.join(run, "move-1.batch"), "wb") as f:
    f.write(b"\0" * 8192)
try:
    hv.recover_move(1)
except HypervisorError as err:
    print("unreadable record:", err.errno_name, "xl unpause 1" in err.message)
try:
    hv.move_pages(1, ram, 1)
except HypervisorError as err:
    print("move beside it:", err.errno_name, "awaits recovery at" in err.message)
os.unlink(os.path.join(run, "move-1.batch"))
# a kept batch recovered while a scan holds its probe record: the batch's recovery stands
kept = hv.move_pages(1, ram, 1, fault="copy-back")
pid = os.fork()
if pid == 0:
    hv.memory_map(1, probe_ms=12000)  # beyond the mover's wait for a busy record (10 s)
    os._exit(0)
while not os.path.exists(os.path.join(run, "move-1.probe")):
    time.sleep(0.05)
still, told = finish_kept_batch(hv, next(d for d in hv.domains() if d.domid == 1), "batch failed")
os.waitpid(pid, 0)
print("beside a scan:", kept.stage, "still paused", still, "records", os.listdir(run))
# a mover killed between raising max_pages (the toolstack had capped it) and giving it back:
# recovery sets the toolstack's value again, from the batch record, and says so
xc = ctypes.CDLL("libxenctrl.so.4.17")
def max_pages_of_1():
    return next(d for d in hv.domains() if d.domid == 1).max_memory // 4096
toolstack_max = max_pages_of_1()
cap = next(d for d in hv.domains() if d.domid == 1).memory // 4096 - 100
xc.xc_domain_setmaxmem(None, 1, ctypes.c_uint64(cap * 4))
many = [g for g, c in enumerate(hv.memory_map(1).classes) if c == 0][:512]
pid = os.fork()
if pid == 0:
    os.environ["FAKE_XC_DIE_AFTER_RAISE"] = "1"
    hv.move_pages(1, many, 1)
    os._exit(0)
os.waitpid(pid, 0)
raised = max_pages_of_1()
note = hv.recover_move(1) or ""
print("raise a dead mover left:", raised > cap, max_pages_of_1() == cap, "set back to the toolstack's" in note)
xc.xc_domain_setmaxmem(None, 1, ctypes.c_uint64(toolstack_max * 4))
# a gfn the guest gave back (its balloon driver) after the scan: left out, the rest of the batch moves
gone = ctypes.c_uint64(ram[3])
xc.xc_domain_decrease_reservation(None, 1, ctypes.c_ulong(1), 0, ctypes.byref(gone))
given = hv.move_pages(1, ram, 0)
print("given back since the scan:", given.stage, given.error, given.granted, given.moved + given.fallback)
# a start's read of the domains: UUIDs without names, one record at a time
import uuid as uuidlib
listed = hv.domains()
# Xen's flags say HVM for PVH too; what is emulated tells them apart
os.environ["FAKE_XC_HVM"] = "1"
hvm = [d.type for d in hv.domains()]
os.environ["FAKE_XC_HVM"] = "dom0"  # the emulation Xen gives a PVH dom0
print("types:", [d.type for d in listed], hvm, [d.type for d in hv.domains()])
del os.environ["FAKE_XC_HVM"]
print("uuids agree:", hv.domain_uuids() == {d.domid: d.uuid for d in listed} and len(listed) > 1,
      all(str(uuidlib.UUID(d.uuid)) == d.uuid for d in listed), hv.domain(1) == listed[1], hv.domain(4000))
fresh, reads = XenHypervisor(), []  # a fresh process: what a start reads of xenstore
fresh._xenstore.read = lambda path, real=fresh._xenstore.read: reads.append(path) or real(path)
fresh.domain_uuids(), fresh.domain(1, named=False)
unnamed = list(reads)
print("xenstore reads unnamed:", unnamed, "named:", fresh.domain(1).name == listed[1].name, reads)
# 4 hotplug CPUs beyond the 4 online: an unpinned vCPU's hard map has all 8 set
os.environ["FAKE_XC_HOTPLUG_CPUS"] = "4"
wide = XenHypervisor()
print("hotplug: hard", sorted(wide.vcpus(1)[0].hard), "topology", sorted(wide.topology().all_cpus))
del os.environ["FAKE_XC_HOTPLUG_CPUS"]
# 2 of the 4 CPUs parked (smt=0): Xen still gives each its node; the online count tells them apart
os.environ["FAKE_XC_PARKED_CPUS"] = "2"
parked = hv.topology()
print("parked:", sorted(parked.all_cpus), parked.node_cpus == {0: {0}, 1: {2}}, sorted(hv.vcpus(1)[0].hard))
os.environ["FAKE_XC_POOLLESS_CPU"] = "0"  # CPU 0 online, in no pool: online all the same
print("parked, one in no pool:", sorted(hv.topology().all_cpus))
del os.environ["FAKE_XC_PARKED_CPUS"], os.environ["FAKE_XC_POOLLESS_CPU"]
# Xen's node 0 offline: node 1 is not our node 0 (claims, affinities and moves would go to the wrong node)
os.environ["FAKE_XC_OFFLINE_NODE"] = "0"
try:
    print("gap:", hv.node_memory())
except HypervisorError as err:
    print("gap refused", err.errno_name, err.message)
"""


@needs(CC is not None and HAVE_XEN_DEV, "needs a C compiler and libxen-dev")
def test_the_python_binding_over_the_fake(patched_ops_binary, tmp_path):
    """The Xen adapter itself, over the fake libxenctrl: a pause the hypervisor refuses
    was reported as a successful empty batch (the move then said done), and a probe
    killed before any journal row left the guest paused for good."""
    try:
        import xapi_numa._libxenuma  # noqa: F401
    except ImportError:
        missing("the cffi module is built by `make native`")
    env = dict(os.environ, LD_LIBRARY_PATH=patched_ops_binary["stock"],
               PYTHONPATH=os.path.dirname(LIB))
    env.pop("FAKE_XC_FAIL", None)
    env.pop("FAKE_XC_OFFLINE_NODE", None)
    proc = subprocess.run([sys.executable, "-c", PY_OVER_FAKE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "pause refused raised EPERM" in proc.stdout
    assert "after recover: paused False records [] notes 1" in proc.stdout, proc.stdout
    assert "move beside a probe: done 8 records [] paused False" in proc.stdout, proc.stdout
    assert "node 256 refused EINVAL" in proc.stdout, proc.stdout
    assert "another VM's domain: ESTALE True [] False" in proc.stdout, proc.stdout
    assert "its own domain: True done" in proc.stdout, proc.stdout
    assert "kept batch: copy-back still paused False paused False records []" in proc.stdout, proc.stdout
    assert "listed: ([], 2) swept: True 1" in proc.stdout, proc.stdout
    assert "unreadable record: EPROTO True" in proc.stdout and "move beside it: EEXIST True" in proc.stdout
    assert "beside a scan: copy-back still paused False records []" in proc.stdout, proc.stdout
    assert "uuids agree: True True True None" in proc.stdout, proc.stdout
    assert "raise a dead mover left: True True True" in proc.stdout, proc.stdout
    assert "given back since the scan: done 0 1 7" in proc.stdout, proc.stdout
    assert "types: ['pv', 'pvh'] ['pv', 'hvm'] ['pv', 'pvh']" in proc.stdout, proc.stdout
    assert "xenstore reads unnamed: [] named: True ['/local/domain/1/name']" in proc.stdout, proc.stdout
    assert "hotplug: hard [0, 1, 2, 3] topology [0, 1, 2, 3]" in proc.stdout, proc.stdout
    assert "parked: [0, 2] True [0, 2]" in proc.stdout, proc.stdout
    assert "parked, one in no pool: [0, 2]" in proc.stdout, proc.stdout
    assert "gap refused ENOTSUP node ids with gaps (online nodes 1)" in proc.stdout, proc.stdout
