"""xapi-numa-rrdd: the protocol v2 file it writes, read back by a reader written here.

The reader below follows xen-api's rrd-transport (``rrd_protocol_v2``: header,
data CRC-32 over timestamp and values, metadata CRC-32, count, big-endian
timestamp and values, metadata length and JSON) and shares no code with
``xapi_numa.backends.rrdd``.  Expected values come from ``xapi-numa memory
--json`` on the same simulated host, not from the metrics module.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import xmlrpc.client
import zlib
from http.server import BaseHTTPRequestHandler, HTTPServer

import attrs
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.ops import metrics, observe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [sys.executable, "-m", "xapi_numa.cli"]
PLUGIN = [sys.executable, "-m", "xapi_numa.rrdd_plugin"]
PAGE = 4096


# --- an independent reader of protocol v2 ------------------------------------------------------

class BadFile(Exception):
    pass


def read_v2(blob: bytes, stamp: str = "double") -> dict:
    """Parse and check a v2 payload; {"timestamp", "sources": [(name, fields, value)]}.
    The timestamp is a double since xen-api v24.40 (Read.timestamp: Int64.float_of_bits),
    a uint64 of seconds before (``stamp="seconds"``)."""
    if blob[:11] != b"DATASOURCES":
        raise BadFile("header string")
    data_crc, meta_crc, count = struct.unpack_from(">III", blob, 11)
    data_start = 11 + 12
    data_end = data_start + 8 + 8 * count
    if zlib.crc32(blob[data_start:data_end]) & 0xFFFFFFFF != data_crc:
        raise BadFile("data checksum")
    (meta_len,) = struct.unpack_from(">I", blob, data_end)
    meta = blob[data_end + 4:data_end + 4 + meta_len]
    if len(meta) != meta_len:
        raise BadFile("metadata truncated")
    if zlib.crc32(meta) & 0xFFFFFFFF != meta_crc:
        raise BadFile("metadata checksum")
    # xcp-rrdd reads the datasources object as an ordered list of pairs (names repeat per VM)
    doc = json.loads(meta.decode("utf-8"), object_pairs_hook=list)
    (key, pairs), = doc
    if key != "datasources" or len(pairs) != count:
        raise BadFile("metadata does not list {} data sources".format(count))
    (timestamp,) = struct.unpack_from(">d" if stamp == "double" else ">Q", blob, data_start)
    sources = []
    for i, (name, fields) in enumerate(pairs):
        fields = dict(fields)
        raw = blob[data_start + 8 + 8 * i:data_start + 16 + 8 * i]
        if fields["value_type"] == "int64":
            (value,) = struct.unpack(">q", raw)
        elif fields["value_type"] == "float":
            (value,) = struct.unpack(">d", raw)
        else:
            raise BadFile("value_type " + fields["value_type"])
        sources.append((name, fields, value))
    return {"timestamp": timestamp, "sources": sources}


def by_owner_name(parsed: dict) -> dict:
    out = {}
    for name, fields, value in parsed["sources"]:
        key = (fields["owner"], name)
        assert key not in out, "published twice: {}".format(key)
        out[key] = (fields, value)
    return out


def test_reader_rejects_a_corrupted_file(tmp_path, host):
    path, _ = host
    out = tmp_path / "m.bin"
    run_once(path, out, "all")
    good = out.read_bytes()
    read_v2(good)
    count, = struct.unpack_from(">I", good, 19)
    meta_len, = struct.unpack_from(">I", good, 23 + 8 + 8 * count)
    end = 23 + 8 + 8 * count + 4 + meta_len  # the file is longer: room to grow, zeros
    for offset, what in ((0, "header string"), (11 + 12 + 8, "data checksum"), (end - 3, "metadata checksum")):
        bad = bytearray(good)
        bad[offset] ^= 0x01
        with pytest.raises(BadFile, match=what):
            read_v2(bytes(bad))


# --- a simulated host --------------------------------------------------------------------------

def cli(*args):
    proc = subprocess.run(CLI + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def host(tmp_path):
    """2 nodes x 4 pCPUs x 4G: A at home on node 1; B on node 0; C asks for node 0 but spills."""
    path = str(tmp_path / "host.json")
    cli("sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "4G")
    cli("sim", "create", path, "A", "--vcpus", "2", "--memory", "1G", "--soft", "node:1", "--load", "busy")
    cli("sim", "create", path, "B", "--vcpus", "2", "--memory", "2G", "--soft", "node:0")
    cli("sim", "create", path, "C", "--vcpus", "2", "--memory", "3G", "--soft", "node:0")
    uuids = {d.name: d.uuid for d in SimHypervisor(path).domains()}
    return path, uuids


def run_once(path, out, names="auto"):
    proc = subprocess.run(PLUGIN + ["--backend", "sim:" + path, "--once", "--file", str(out), "--names", names],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return read_v2(open(str(out), "rb").read())


def memory_by_name(path):
    rows = json.loads(cli("--backend", "sim:" + path, "memory", "--json"))
    return {r["name"]: {int(n): b for n, b in r["nodes"].items()} for r in rows}


def test_every_value_matches_the_host(tmp_path, host):
    path, uuids = host
    before = time.time()
    parsed = run_once(path, tmp_path / "m.bin", names="all")
    assert before - 1 <= parsed["timestamp"] <= time.time() + 1
    got = by_owner_name(parsed)
    memory = memory_by_name(path)
    assert memory["C"][0] and memory["C"][1], "the scenario needs C split over both nodes"
    homes = {"A": {1}, "B": {0}, "C": {0}}
    for vm, uuid in uuids.items():
        owner = "vm " + uuid
        if vm == "Domain-0":
            assert not [k for k in got if k[0] == owner], "dom0 is not published"
            continue
        for node, size in memory[vm].items():
            fields, value = got[(owner, "memory_numa_node_{}".format(node))]
            assert value == size and fields["value_type"] == "int64" and fields["units"] == "B"
            assert fields["type"] == "gauge"
        _, used = got[(owner, "numa_nodes")]
        assert used == sum(1 for b in memory[vm].values() if b // PAGE > 4096)
        fields, share = got[(owner, "numa_local_share")]
        total = sum(memory[vm].values())
        assert share == pytest.approx(sum(b for n, b in memory[vm].items() if n in homes[vm]) / total)
        assert fields["value_type"] == "float" and fields["min"] == "0.00" and fields["max"] == "1.00"
        fields, nonaffine = got[(owner, "numa_node_nonaffine_vcpus")]
        assert fields["type"] == "derive" and nonaffine == 0.0  # first sample: no time has passed
        _, outside = got[(owner, "numa_vcpus_outside_soft")]
        assert outside == 0
    assert got[("vm " + uuids["C"], "numa_nodes")][1] == 2
    assert got[("vm " + uuids["A"], "numa_local_share")][1] == 1.0
    assert got[("vm " + uuids["C"], "numa_local_share")][1] < 1.0


def test_a_node_counts_only_above_4096_pages():
    assert metrics.nodes_used({0: 4096, 1: 4097, 2: 0}) == 1


def test_xenserver_names_left_to_xapi_where_its_patched_xen_publishes_them(tmp_path, host):
    """The simulator offers the per-domain node-page query natively, as XenServer 9's Xen."""
    path, uuids = host
    got = by_owner_name(run_once(path, tmp_path / "m.bin", names="auto"))
    names = {name for _, name in got}
    assert names == {"numa_local_share", "numa_vcpus_outside_soft"}
    own = by_owner_name(run_once(path, tmp_path / "m.bin", names="own"))
    assert {name for _, name in own} == names


def test_the_file_keeps_its_size_and_grows_only_by_being_made_anew(tmp_path, host):
    """xcp-rrdd maps the file once, at registration: it grew with every VM started and was
    cut back as they stopped, and a reading past the mapping failed for good."""
    from xapi_numa.backends import rrdd
    path, _ = host
    hv = SimHypervisor(path)
    snap = observe.take(hv, with_pages=True)
    long, _ = metrics.collect(snap, hv.capabilities(), metrics.NonaffineTally(), "all")
    short, _ = metrics.collect(snap, hv.capabilities(), metrics.NonaffineTally(), "own")
    out = rrdd.PluginFile(str(tmp_path / "m.bin"))
    assert out.write(rrdd.encode(long, 1.5)) is True                 # made: register now
    size = os.path.getsize(out.path)
    assert size % PAGE == 0 and size >= 2 * len(rrdd.encode(long, 1.5))
    assert out.write(rrdd.encode(short, 2.5)) is False               # in place, same size
    blob = open(out.path, "rb").read()
    assert len(blob) == size and read_v2(blob)["timestamp"] == 2.5 and len(read_v2(blob)["sources"]) == 2 * 3
    assert blob[len(rrdd.encode(short, 2.5)):] == bytes(size - len(rrdd.encode(short, 2.5)))  # nothing stale
    huge = list(long) * (size // len(rrdd.encode(long, 1.5)) + 1)
    assert out.write(rrdd.encode(huge, 3.5)) is True and os.path.getsize(out.path) > size   # anew, bigger
    assert not os.path.exists(out.path + ".tmp")


def test_the_timestamp_is_a_double_unless_xcp_rrdd_is_older_than_v24_40(tmp_path, host):
    from xapi_numa.backends import rrdd
    assert rrdd.timestamp_format(None) == "double" and rrdd.timestamp_format((25, 6)) == "double"
    assert rrdd.timestamp_format((24, 40)) == "double" and rrdd.timestamp_format((24, 39)) == "seconds"
    payload = rrdd.encode([], 1700000000.25, "double")
    assert read_v2(payload)["timestamp"] == 1700000000.25
    assert read_v2(rrdd.encode([], 1700000000.75, "seconds"), "seconds")["timestamp"] == 1700000000


def test_time_outside_soft_affinity_accumulates_per_vcpu(host):
    """Two samples 10 s apart with one of A's two vCPUs away from node 1: 5 s per vCPU."""
    path, uuids = host
    hv = SimHypervisor(path)
    snap = observe.take(hv, with_pages=True)
    a = next(d for d in snap.domains if d.name == "A")
    away = [attrs.evolve(v, cpu=0, state="running") if v.vcpu == 0 else attrs.evolve(v, state="running")
            for v in snap.vcpus[a.domid]]
    vcpus = dict(snap.vcpus)
    vcpus[a.domid] = tuple(away)
    first = attrs.evolve(snap, vcpus=vcpus)
    second = attrs.evolve(first, time=first.time + 10.0)
    caps = hv.capabilities()
    _, tally = metrics.collect(first, caps, metrics.NonaffineTally(), "all")
    sources, tally = metrics.collect(second, caps, tally, "all")
    got = metrics.by_name(sources)
    assert got[("vm " + a.uuid, "numa_node_nonaffine_vcpus")].value == pytest.approx(5.0)
    assert got[("vm " + a.uuid, "numa_vcpus_outside_soft")].value == 1
    assert got[("vm " + uuids["B"], "numa_node_nonaffine_vcpus")].value == 0.0


def test_bad_arguments_are_one_line_errors(tmp_path, host):
    path, _ = host
    for args, text in ((["--once"], "--once: needs --file PATH"),
                       (["--once", "--file", str(tmp_path), "--names", "all"], "Is a directory"),
                       (["--once", "--file", str(tmp_path / "x"), "--names", "every"], "names: unknown choice")):
        proc = subprocess.run(PLUGIN + ["--backend", "sim:" + path] + args, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT)
        assert proc.returncode == 1 and text in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# --- registration with a stand-in xcp-rrdd on a Unix socket ----------------------------------------

class UnixHTTPServer(HTTPServer):
    address_family = socket.AF_UNIX

    def server_bind(self):
        self.socket.bind(self.server_address)
        self.server_name, self.server_port = "localhost", 0


def fake_rrdd(sock_path, shm_path, calls, register_answer=0.7, mapped=None, deregister_fails=None):
    """xcp-rrdd's plugin calls as xapi-idl declares them, recording what it was sent.  As
    xcp-rrdd, the first registration of a uid opens the file and maps it (``mapped``: uid ->
    the size mapped; a file that is not there is an exception, which its handler answers
    with HTTP 401), and only a deregistration forgets it."""
    mapped = {} if mapped is None else mapped

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            params, method = xmlrpc.client.loads(body)
            calls.append((method, params))
            uid = params[0].get("uid") if params and isinstance(params[0], dict) else None
            if method == "Plugin.Local.register" and uid not in mapped:
                try:
                    mapped[uid] = os.path.getsize(shm_path)
                    calls.append(("mapped", mapped[uid]))
                except OSError:
                    calls.append(("401", uid))
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            if method == "Plugin.Local.deregister":
                if deregister_fails and deregister_fails.pop(0):
                    calls.append(("500", uid))
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                mapped.pop(uid, None)
            value = {"Plugin.get_path": shm_path, "Plugin.Local.register": register_answer,
                     "Plugin.Local.deregister": ""}.get(method)
            result = ({"Status": "Success", "Value": value} if value is not None
                      else {"Status": "Failure", "ErrorDescription": ["UNKNOWN_RPC", method]})
            out = xmlrpc.client.dumps((result,), methodresponse=True).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = UnixHTTPServer(sock_path, Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop_cleanly(proc):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()


def killed_unless_stopped(proc, server):
    if proc.poll() is None:
        proc.kill()
    server.shutdown()


def test_registers_writes_where_told_and_cleans_up_on_sigterm(tmp_path, host):
    path, uuids = host
    sock, shm = str(tmp_path / "xcp-rrdd"), str(tmp_path / "metrics-xapi-numa")
    calls = []
    server = fake_rrdd(sock, shm, calls)
    proc = subprocess.Popen(PLUGIN + ["--backend", "sim:" + path, "--socket", sock, "--names", "all"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT)
    try:
        deadline = time.time() + 30
        while not os.path.exists(shm) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert os.path.exists(shm), proc.stderr.read() if proc.poll() is not None else "no file written"
        time.sleep(0.3)
        parsed = read_v2(open(shm, "rb").read())
        assert ("vm " + uuids["A"], "memory_numa_node_1") in by_owner_name(parsed)
        proc.send_signal(signal.SIGHUP)  # nothing to reload: ignored, not an exit without deregistering
        time.sleep(0.3)
        assert proc.poll() is None
        stop_cleanly(proc)
    finally:
        killed_unless_stopped(proc, server)
    methods = [m for m, _ in calls]
    assert methods[0] == "Plugin.get_path" and calls[0][1] == ({"uid": "xapi-numa"},)
    assert ("Plugin.Local.register", ({"uid": "xapi-numa", "info": "Five_Seconds", "protocol": "V2"},)) in calls
    assert methods[-1] == "Plugin.Local.deregister"
    assert "401" not in methods, "registered before its file was there: xcp-rrdd could not map it"
    assert not os.path.exists(shm), "the file xcp-rrdd reads is removed on exit"


def test_more_vms_than_the_file_has_room_for_make_it_anew_and_registered_again(tmp_path, host):
    path, _ = host
    sock, shm = str(tmp_path / "xcp-rrdd"), str(tmp_path / "metrics-xapi-numa")
    calls, mapped = [], {}
    server = fake_rrdd(sock, shm, calls, mapped=mapped)
    proc = subprocess.Popen(PLUGIN + ["--backend", "sim:" + path, "--socket", sock, "--names", "all"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT)
    try:
        deadline = time.time() + 30
        while "xapi-numa" not in mapped and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        first = mapped.get("xapi-numa")
        assert first == os.path.getsize(shm), (first, calls[-3:])
        hv = SimHypervisor(path)
        for i in range(40):
            hv.create("more{}".format(i), 1, 16 << 20, load="idle")
        while time.time() < deadline and (mapped.get("xapi-numa") or 0) <= first:
            time.sleep(0.1)
        time.sleep(1.0)
        assert mapped["xapi-numa"] == os.path.getsize(shm) > first, "xcp-rrdd maps the file it reads"
        assert len(read_v2(open(shm, "rb").read()[:mapped["xapi-numa"]])["sources"]) > 40
        stop_cleanly(proc)
    finally:
        killed_unless_stopped(proc, server)
    assert "401" not in [m for m, _ in calls]


def test_xcp_rrdd_away_is_retried_not_fatal(tmp_path, host):
    path, _ = host
    proc = subprocess.Popen(PLUGIN + ["--backend", "sim:" + path, "--socket", str(tmp_path / "none")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT)
    # its first complaint (its SIGTERM handler is in place by then), not a fixed sleep that a
    # loaded machine can outlast while the interpreter still starts
    first = proc.stderr.readline()
    time.sleep(0.5)
    assert proc.poll() is None, "it must keep running while xcp-rrdd is away: " + first
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    err = first + proc.stderr.read()
    assert "xcp-rrdd at" in first and "retrying" in first and "Traceback" not in err


def test_a_register_answer_that_is_no_number_is_a_clear_complaint(tmp_path, host):
    path, _ = host
    sock, shm = str(tmp_path / "xcp-rrdd"), str(tmp_path / "metrics-xapi-numa")
    server = fake_rrdd(sock, shm, [], register_answer="soon")
    proc = subprocess.Popen(PLUGIN + ["--backend", "sim:" + path, "--socket", sock],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT)
    try:
        first = proc.stderr.readline()
        assert proc.poll() is None, first
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        server.shutdown()
    err = first + proc.stderr.read()
    assert "answered Plugin.Local.register with 'soon'" in first and "Traceback" not in err, err


def run_in_process(path, sock, seconds, monkeypatch, until=None):
    """xapi-numa-rrdd's loop in this process for ``seconds``, retrying at once; with
    ``until``, as soon as it holds (``seconds`` is then only a hang guard)."""
    from xapi_numa import rrdd_plugin
    monkeypatch.setattr(rrdd_plugin, "RETRY", 0.1)
    stop = {"now": False}
    timer = threading.Timer(seconds, lambda: stop.update(now=True))
    timer.start()
    if until is not None:
        def watch():
            while not stop["now"]:
                if until():
                    stop.update(now=True)
                time.sleep(0.1)
        threading.Thread(target=watch, daemon=True).start()
    args = rrdd_plugin.parse_args(["--backend", "sim:" + path, "--socket", sock, "--names", "all",
                                   "--timestamp", "double"])
    try:
        return rrdd_plugin.run(args, stop)
    finally:
        timer.cancel()


def test_a_first_snapshot_that_fails_is_taken_again_before_registering(tmp_path, host, monkeypatch):
    """The file's object was kept before its first write: a first snapshot that failed left no
    file, and the loop only registered from then on (xcp-rrdd: 401, for good)."""
    from xapi_numa.errors import BackendUnavailable
    path, uuids = host
    sock, shm = str(tmp_path / "xcp-rrdd"), str(tmp_path / "metrics-xapi-numa")
    calls, mapped, seen = [], {}, []
    server = fake_rrdd(sock, shm, calls, mapped=mapped)
    real = observe.take

    def fails_first(*args, **kwargs):
        if not seen:
            seen.append(1)
            raise BackendUnavailable("the hypervisor is busy")
        seen.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(observe, "take", fails_first)
    try:
        assert run_in_process(path, sock, 3.0, monkeypatch) == 0
    finally:
        server.shutdown()
    methods = [m for m, _ in calls]
    assert "401" not in methods and "Plugin.Local.register" in methods and len(seen) > 2


def test_a_deregistration_that_fails_is_made_again_before_registering(tmp_path, host, monkeypatch):
    """After the file was made anew, one failed deregistration left xcp-rrdd mapping the old,
    replaced file for good (register keeps a registration it has)."""
    path, _ = host
    sock, shm = str(tmp_path / "xcp-rrdd"), str(tmp_path / "metrics-xapi-numa")
    calls, mapped = [], {}
    server = fake_rrdd(sock, shm, calls, mapped=mapped, deregister_fails=[False, True])
    hv = SimHypervisor(path)

    def grow():
        for i in range(40):
            hv.create("more{}".format(i), 1, 16 << 20, load="idle")
    threading.Timer(1.5, grow).start()

    def mapped_again() -> bool:  # after the failed deregistration (a busy machine takes longer than 6 s)
        methods = [m for m, _ in list(calls)]
        return "500" in methods and "mapped" in methods[methods.index("500"):]
    try:
        assert run_in_process(path, sock, 120.0, monkeypatch, until=mapped_again) == 0
    finally:
        server.shutdown()
    methods = [m for m, _ in calls]
    failed = methods.index("500")  # the deregistration after the file was made anew, bigger
    sizes = [size for m, size in calls if m == "mapped"]
    later = [size for m, size in calls[failed:] if m == "mapped"]
    assert later and later[0] > sizes[0], calls   # mapped afresh, at its new size, all the same


def test_the_rates_interval_is_the_payloads_own_timestamps(tmp_path, host):
    """xcp-rrdd divides a derive by the difference of the payloads' timestamps: with whole
    seconds (an xcp-rrdd before v24.40), the tally's interval must be whole seconds too."""
    from xapi_numa import rrdd_plugin
    from xapi_numa.backends import rrdd
    path, _ = host
    out = rrdd.PluginFile(str(tmp_path / "m.bin"))
    for stamp in ("seconds", "double"):
        tally, _ = rrdd_plugin.publish_once(SimHypervisor(path), out, metrics.NonaffineTally(), "all", stamp)
        stamped = read_v2(open(out.path, "rb").read(), stamp)["timestamp"]
        assert tally.time == stamped and (stamp == "double" or tally.time == int(tally.time))


def test_a_file_that_cannot_be_made_leaves_nothing_behind(tmp_path):
    """--file naming a directory: refused, and its page-sized .tmp stayed."""
    from xapi_numa.backends import rrdd
    target = tmp_path / "dir.json"
    target.mkdir()
    with pytest.raises(OSError):
        rrdd.PluginFile(str(target)).write(b"x" * 100)
    assert sorted(os.listdir(str(tmp_path))) == ["dir.json"]


class StockXen:
    """The simulated host as stock Xen shows it: pages per node only through debug key
    'u' (counted: one scan reads every guest), and a clock the test moves."""

    def __init__(self, path: str) -> None:
        self.sim = SimHypervisor(path)
        self.now = 1000.0
        self.scans = 0

    def __getattr__(self, name):
        return getattr(self.sim, name)

    def capabilities(self):
        caps = self.sim.capabilities()
        return attrs.evolve(caps, features=dict(caps.features, node_pages="fallback"))

    def clock(self) -> float:
        return self.now

    def node_pages(self, domid):
        self.scans += 1
        return self.sim.node_pages(domid)


def test_on_stock_xen_pages_are_scanned_within_the_daemons_limits_and_the_last_reading_stands(tmp_path, host):
    """Debug key 'u' walks every page under a lock: a reading every 5 s must not press it
    every 5 s.  Once per interval, the reading published in between; never on a big host."""
    from xapi_numa import rrdd_plugin
    from xapi_numa.backends import rrdd
    from xapi_numa.ops import page_scans
    path, uuids = host
    hv = StockXen(path)
    out = rrdd.PluginFile(str(tmp_path / "m.bin"))
    readings = page_scans.PageReadings(page_scans.ScanLimits(interval=600.0))
    tally = metrics.NonaffineTally()
    published = []
    for _ in range(12):  # a minute of xcp-rrdd readings
        tally, _ = rrdd_plugin.publish_once(hv, out, tally, "all", "double", readings)
        values = by_owner_name(read_v2(open(out.path, "rb").read()))
        published.append(values[("vm " + uuids["A"], "memory_numa_node_1")][1])
        hv.now += 5.0
    assert hv.scans == 3  # one scan of the three guests, not twelve
    assert published == [1 << 30] * 12  # A's reading stands between scans
    hv.now += 600.0
    rrdd_plugin.publish_once(hv, out, tally, "all", "double", readings)
    assert hv.scans == 6  # the next interval: scanned again
    big = page_scans.PageReadings(page_scans.ScanLimits(interval=600.0, max_memory=4 << 30))
    rrdd_plugin.publish_once(hv, out, tally, "all", "double", big)
    assert hv.scans == 6  # a host above the limit: never
    names = {name for name, _, _ in read_v2(open(out.path, "rb").read())["sources"]}
    assert "numa_local_share" not in names and "memory_numa_node_1" not in names


def test_the_page_scan_limits_are_checked(tmp_path, host):
    path, _ = host
    for flag, value in (("--page-scan-interval", "0.5"), ("--page-scan-max-memory", "-1")):
        proc = subprocess.run(PLUGIN + ["--backend", "sim:" + path, "--once", "--file", str(tmp_path / "x"),
                                        flag, value], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and flag in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
