"""The dom0 build of libxenuma on real Xen 4.17 (make xen-test): the stock path, from the same binary.

``make dom0-lib`` builds ``build/dom0/libxenuma.so`` once on the host (zig cc,
glibc 2.17, Xen's headers only); the RPM ships that file, and the harness
ships it too, byte for byte, under ``/opt/xapi-numa/dom0-lib`` laid out as the
RPM's ``/opt/xapi-numa/lib``: the library, its header, and ``python/`` with the
``xapi_numa`` package copied the RPM's way (no API-mode module) and cffi.
Every check runs in a child process (dom0_lib_child.py) that imports the
backend from there, so it takes the RPM's code path: the API-mode import
fails, ``libxenuma_abi`` finds the library beside the package and opens it
with ``ffi.dlopen``.  Its answers are compared with the API-mode build this
pytest process uses (the ``hv`` fixture) and with Xen's own tools.

Stock Xen 4.17 has none of XenServer's patched calls: the library must find
that out at run time, and the ops must fall back (per-node claim -> one
host-wide claim, per-domain node pages -> debug key 'u').  The patched path
of the same C is tested against a fake libxenctrl (tests/test_native_c.py).
"""
import errno
import hashlib
import json
import os
import select
import subprocess
import sys

import pytest
from conftest import console, create_guest, debug_key_dump, expected_scheduler, wait_console, xl
from xenlib import live_domain

from dom0_lib_child import plain

# where the harness puts it (the variable: to try this file against a fake libxenctrl elsewhere)
LIBDIR = os.environ.get("XAPI_NUMA_TEST_DOM0_LIB", "/opt/xapi-numa/dom0-lib")
LIBRARY = os.path.join(LIBDIR, "libxenuma.so")
PRIVATE_PYTHON = os.path.join(LIBDIR, "python")
CHILD_PYTHON = os.environ.get("XAPI_NUMA_TEST_DOM0_PYTHON", sys.executable)  # dom0's python3
CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dom0_lib_child.py")
MIB = 1 << 20


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def host_sha256() -> str:
    """The sha256 the harness computed on the host, of build/dom0/libxenuma.so."""
    if not os.path.isfile(LIBRARY):
        pytest.fail("{} is missing: the harness ships build/dom0/libxenuma.so there (make dom0-lib)".format(LIBRARY))
    with open(os.path.join(LIBDIR, "SHA256SUMS")) as f:
        sums = {name: digest for digest, name in (line.split() for line in f if line.strip())}
    return sums["libxenuma.so"]


@pytest.fixture(scope="module")
def abi(tmp_path_factory):
    """abi(snippet, **env): run snippet in the child that loads xapi-numa as the RPM does;
    its answer, checked to have come from the dom0 build of libxenuma and nothing else."""
    child_env = {key: os.environ[key] for key in ("PATH", "LD_LIBRARY_PATH") if key in os.environ}
    child_env.update(PYTHONPATH=PRIVATE_PYTHON, PYTHONFAULTHANDLER="1")
    errors = tmp_path_factory.mktemp("abi") / "stderr"
    with open(str(errors), "w") as stderr:
        proc = subprocess.Popen([CHILD_PYTHON, "-s", CHILD], cwd="/", env=child_env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=stderr, text=True)

    def call(snippet: str, **env) -> dict:
        proc.stdin.write(json.dumps({"snippet": snippet, "env": env}) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 300)
        line = proc.stdout.readline() if ready else ""
        assert line, "the ABI-mode child {}: {}".format("died" if proc.poll() is not None else "did not answer",
                                                         errors.read_text()[-3000:])
        out = json.loads(line)
        assert "error" not in out, out["error"]
        assert out["loaded"] == [LIBRARY], out["loaded"]      # that file, and no API-mode module
        assert out["package"] == os.path.join(PRIVATE_PYTHON, "xapi_numa", "backends")
        assert out["ffi"] == "cffi.api"                       # ffi.dlopen: cffi's ABI mode
        return out

    yield call
    proc.stdin.close()
    proc.wait(timeout=60)


def same(value) -> object:
    """An API-mode answer in the child's JSON form."""
    return json.loads(json.dumps(plain(value)))


def test_it_is_the_library_built_on_the_host(abi, host_sha256):
    here = sha256(LIBRARY)
    out = abi("result = lib.xn_patched_ops()")
    # one line the harness looks for in the console: the file that ran is the host's build
    print("dom0-lib: sha256 {} loaded from {} (host build {})".format(out["sha256"][LIBRARY], LIBRARY, host_sha256))
    assert out["sha256"][LIBRARY] == here == host_sha256


def test_patched_calls_are_absent_and_reported_as_fallbacks(abi, hv):
    out = abi("import errno\n"
              "buf = ffi.new('uint64_t[]', 2)\n"
              "result = {'patched': lib.xn_patched_ops(),\n"
              "          'node_pages_native': lib.xn_node_pages_native(hv._h, 0, 2, buf),\n"
              "          'features': hv.capabilities().features,\n"
              "          'node_claims': hv.capabilities().node_claims}")["result"]
    assert out["patched"] == 0                                 # stock libxenctrl: looked up, not found
    assert out["node_pages_native"] == -errno.ENOSYS
    assert out["node_claims"] is False
    assert out["features"]["node_pages"] == "fallback" and out["features"]["node_claims"] == "unavailable"
    assert out["features"]["claims"] == "native"
    assert out["features"] == same(hv.capabilities().features)


def test_topology_and_node_memory_agree_with_the_api_build(abi, hv):
    before = hv.node_memory()
    out = abi("result = {'topology': hv.topology(), 'nodes': hv.node_memory(), 'scheduler': hv.scheduler(),\n"
              "          'cpupools': hv.cpupools(), 'cpumap_bytes': lib.xn_cpumap_bytes(hv._h),\n"
              "          'dom0': [(v.vcpu, v.hard, v.soft) for v in hv.vcpus(0)],\n"
              "          'domains': [(d.domid, d.name, d.uuid, d.vcpus, d.max_memory, d.type)\n"
              "                      for d in hv.domains()]}")["result"]
    after = hv.node_memory()
    topo = hv.topology()
    assert len(topo.nodes) == 2
    # sizes, CPUs, distances, cores and sockets are fixed: equal; free memory moves with
    # the host (scrubbing, other guests' teardown): within what the API build saw around it
    fixed = same(topo)
    for node in fixed["nodes"] + out["topology"]["nodes"]:
        node.pop("memory_free")
    assert out["topology"] == fixed
    assert [n["size"] for n in out["nodes"]] == [n.size for n in before] == [n.size for n in after]
    for node, a, b in zip(out["nodes"], before, after):
        low, high = min(a.free, b.free), max(a.free, b.free)
        assert low - 64 * MIB <= node["free"] <= high + 64 * MIB, (node, a, b)
    assert out["scheduler"] == hv.scheduler()
    assert out["cpupools"] == same(hv.cpupools())
    assert out["dom0"] == same([(v.vcpu, v.hard, v.soft) for v in hv.vcpus(0)])
    assert out["domains"] == same([(d.domid, d.name, d.uuid, d.vcpus, d.max_memory, d.type) for d in hv.domains()])
    assert [d[1] for d in out["domains"]][0] == "Domain-0"


def test_node_pages_come_from_the_debug_key(abi, hv, guests):
    domid = guests("abi-soft1", cpus_soft="node:1")
    out = abi("result = hv.node_pages({})".format(domid))["result"]
    dump = debug_key_dump()[domid]
    assert {int(n): p for n, p in out.items()} == {n: dump.get(n, 0) for n in (0, 1)} == hv.node_pages(domid)
    assert out["1"] * 4096 >= 128 * MIB and out["0"] == 0


def test_node_claim_falls_back_to_one_host_wide_claim(abi, hv, guests, tmp_path):
    domid = guests("abi-claimer", maxmem=256)
    xl("mem-max", "abi-claimer", "256m")
    have = live_domain(hv, domid).memory >> 12
    extra = 16384                                 # 64 MiB beyond what it has
    per_node = {0: (have + extra) // 2, 1: have + extra - (have + extra) // 2}
    out = abi("from xapi_numa.core import actions as act\n"
              "from xapi_numa.errors import HypervisorError\n"
              "from xapi_numa.ops.executor import Executor\n"
              "from xapi_numa.state.db import Database\n"
              "try:\n"
              "    hv.claim({domid}, {pages0}, 0)\n"
              "    direct = 0\n"
              "except HypervisorError as err:\n"
              "    direct = err.errno\n"
              "ex = Executor(hv, Database({db!r}))\n"
              "outcomes = ex.apply([act.Reserve('vm-abi', {{0: {pages0} << 12, 1: {pages1} << 12}}, 60.0, 'abi'),\n"
              "                     act.ClaimReservation('vm-abi', {domid}, {{0: {pages0}, 1: {pages1}}})])\n"
              "result = {{'direct': direct, 'outcomes': [(o.status, o.detail) for o in outcomes],\n"
              "          'claimed': [d.claimed for d in hv.domains() if d.domid == {domid}],\n"
              "          'outstanding': hv.physinfo().outstanding_pages,\n"
              "          'claimed_by_ledger': ex.ledger.reservation('vm-abi').claimed}}"
              .format(domid=domid, pages0=per_node[0], pages1=per_node[1], db=str(tmp_path / "ledger.db")))["result"]
    try:
        assert out["direct"] == errno.ENOSYS            # no per-node claim in stock libxenctrl
        assert out["outcomes"][0][0] == "done"
        assert out["outcomes"][1] == ["done", "host-wide claim"], out["outcomes"]
        assert out["claimed"] == [extra << 12] and out["outstanding"] >= extra
        assert out["claimed_by_ledger"] is True
        # the API build sees the very claim the ABI build made
        assert [d.claimed for d in hv.domains() if d.domid == domid] == [extra << 12]
    finally:
        hv.claim(domid, 0)
    assert [d.claimed for d in hv.domains() if d.domid == domid] == [0]


def test_affinity_and_pause_writes_land_in_xen(abi, hv, guests):
    domid = guests("abi-pin")
    topo = hv.topology()
    out = abi("hv.set_vcpu_affinity({d}, 0, hard=frozenset({{0, 1, 2}}), soft=frozenset({{2}}))\n"
              "hv.set_vcpu_affinity({d}, 1, soft=hv.topology().cpus_of_nodes([1]))\n"
              "hv.set_node_affinity({d}, frozenset({{1}}))\n"
              "nodes = hv.node_affinity({d})\n"
              "hv.unpause({d})\n"
              "running = [x.paused for x in hv.domains() if x.domid == {d}]\n"
              "hv.pause({d})\n"
              "result = {{'vcpus': [(v.vcpu, v.hard, v.soft) for v in hv.vcpus({d})], 'nodes': nodes,\n"
              "          'paused': [running, [x.paused for x in hv.domains() if x.domid == {d}]]}}"
              .format(d=domid))["result"]
    vcpus = {v.vcpu: v for v in hv.vcpus(domid)}
    assert (vcpus[0].hard, vcpus[0].soft) == ({0, 1, 2}, {2})
    assert vcpus[1].soft == topo.cpus_of_nodes([1])
    assert out["vcpus"] == same([(v.vcpu, v.hard, v.soft) for v in hv.vcpus(domid)])
    listed = {int(line.split()[2]): line.rsplit("/", 1) for line in xl("vcpu-list", "abi-pin").splitlines()[1:]}
    assert listed[0][0].split()[-1] == "0-2" and listed[0][1].strip() == "2"
    assert out["nodes"] == [1] and hv.node_affinity(domid) == {1}
    assert out["paused"] == [[False], [True]]
    assert live_domain(hv, domid).paused


def test_page_move_through_the_abi_build(abi, hv, xen_cmdline, tmp_path):
    """The widest structs of the interface (scan stats, batch result) across cffi's ABI mode:
    a running PVH guest, held paused, is scanned alike by both builds, a batch of its memory
    moves to node 1, and the guest's own memory checker still passes afterwards."""
    if expected_scheduler(xen_cmdline) != "credit2":
        pytest.skip("page moves do not depend on the scheduler: they run in the credit2 boot only")
    name = "abi-mover"
    domid = create_guest(name, paused=False, memory=128, kind="pvh", initrd="/opt/guest/initrd-mem.cpio",
                         cpus_soft="node:0")
    try:
        wait_console(name, r"memcheck: pass 1 ok", timeout=180, untouched=True)
        hv.pause(domid)                     # held still: both builds must see the same memory
        expected = hv.memory_map(domid)
        before = debug_key_dump()[domid]
        run_dir = str(tmp_path / "run")
        out = abi("from xapi_numa.core import memory_move as pagemove\n"
                  "m = hv.memory_map({d})\n"
                  "gfns = pagemove.movable_gfns(m)[:512]\n"
                  "result = {{'classes': m.classes, 'busy': m.busy_grants, 'gfns': len(gfns),\n"
                  "          'move': hv.move_pages({d}, gfns, 1), 'paused': [x.paused for x in hv.domains()\n"
                  "                                                          if x.domid == {d}]}}"
                  .format(d=domid), XAPI_NUMA_RUN_DIR=run_dir)["result"]
        assert out["classes"] == same(expected.classes) and out["busy"] == expected.busy_grants
        move = out["move"]
        assert out["gfns"] == 512
        assert (move["stage"], move["error"], move["lost"], move["released"]) == ("done", 0, 0, 512), move
        assert move["moved"] == 512 and move["fallback"] == 0 and move["not_freed"] == 0
        assert out["paused"] == [True]                       # our pause: the mover gave back only its own
        after = debug_key_dump()[domid]
        assert after.get(1, 0) >= before.get(1, 0) + 512, (before, after)
        assert os.listdir(run_dir) == []                     # its batch record is gone
        seen = len(console(name))
        hv.unpause(domid)
        # the pass under way at the pause ends first; the next one ran wholly after the move
        wait_console(name, r"memcheck: pass \d+ ok[\s\S]*memcheck: pass \d+ ok", timeout=240, after=seen)
        assert "CORRUPT" not in console(name), console(name)[-2000:]
    finally:
        subprocess.run(["xl", "destroy", name], capture_output=True, timeout=60)
