"""The XenAPI client (backends/xapi.py): sessions, TLS, credentials, per-key writes, masks.

Issue 12 items 14-17 and 20, against the loopback XenAPI server (real XenAPI
client, real wire format), and an HTTPS copy of it on 127.0.0.1 with a
self-signed certificate made here with the openssl CLI.  Only loopback traffic.
"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import uuid as uuidlib

import pytest
from conftest import PLUGIN_DIR
from hypothesis import given
from hypothesis import strategies as st
from xapi_loopback import LoopbackXapi, _Handler, _Server

from xapi_numa.backends import xapi, xapi_owner_key
from xapi_numa.core.topology import Topology
from xapi_numa.errors import InvalidArgument, NumaError
from xapi_numa.plugin import protocol as proto

PLUGIN = os.path.join(PLUGIN_DIR, "numa")


def creds(url, password="xenroot"):
    return xapi.Credentials(url, "root", password)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- logout (item 16) -----------------------------------------------------------------------------
def test_logout_ends_the_session_on_the_server(pool):
    server, _ = pool
    session = xapi.login(creds(server.url), insecure=True)
    assert len(server.sessions) == 2  # the fixture's and ours
    xapi.logout(session)
    assert len(server.sessions) == 1


def test_logout_never_raises(pool):
    server, _ = pool
    session = xapi.login(creds(server.url), insecure=True)
    server.stop()  # the master went away
    xapi.logout(session)
    xapi.logout(None)
    xapi.logout(object())


def test_logout_leaves_a_plugin_session_alone(pool, monkeypatch):
    server, session = pool
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", server.url)
    handed = xapi.plugin_session(session._session)
    xapi.logout(handed)  # xapi owns it: logging it out would break xapi's own call
    assert session._session in server.sessions


# --- SESSION_INVALID (item 16) ----------------------------------------------------------------------
def test_invalid_plugin_session_is_session_invalid(pool, monkeypatch):
    server, _ = pool
    _, uuid = server.add_vm("vm", 2, 1 << 30)
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", server.url)
    bogus = xapi.plugin_session("OpaqueRef:" + str(uuidlib.uuid4()))
    with pytest.raises(xapi.XapiError) as err:
        xapi.vm_ref(bogus, uuid)
    assert err.value.code == "SESSION_INVALID"
    with pytest.raises(xapi.XapiError) as err:
        xapi.call(bogus.xenapi.VM.get_all)
    assert err.value.code == "SESSION_INVALID"


def test_plugin_answers_session_invalid_as_xapi_runs_it(pool):
    server, session = pool
    host = session.xenapi.host.get_all()[0]
    _, uuid = server.add_vm("vm", 2, 1 << 30)
    bogus = "OpaqueRef:" + str(uuidlib.uuid4())
    call = proto.build_call("get_policy", bogus, {"vm": uuid})
    done = subprocess.run([PLUGIN, call], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=120, env=server.plugin_env(host))
    result = proto.parse_response(done.stdout)
    assert result["Status"] == "Failure", result
    # xapi's parameter is the session's handle (it was the client's fault text, 'You must log in')
    assert result["ErrorDescription"] == ["SESSION_INVALID", bogus], result


def test_a_logged_in_session_survives_expiry(pool):
    """The client logs in again by itself when the session it logged in expires."""
    server, _ = pool
    session = xapi.login(creds(server.url), insecure=True)
    server.sessions.clear()
    assert sorted(xapi.call(session.xenapi.VM.get_all)) == sorted(server.control_domains.values())  # dom0s alone
    xapi.logout(session)


# --- pool URL, password file (items 17, 20) ------------------------------------------------------------
def test_plain_http_is_refused_without_insecure():
    url = "http://127.0.0.1:{}".format(closed_port())
    with pytest.raises(InvalidArgument) as err:
        xapi.login(creds(url))
    assert err.value.field == "--pool"
    assert "https" in err.value.message and "--insecure" in err.value.message


@pytest.mark.parametrize("url", ["not a url", "", "ftp://master", "https://", "https://master:port",
                                 "master.example", "https://mas ter", "https://[::1",
                                 "https://master:\u0664\u0664\u0663", "https://master:99999"])
def test_a_url_that_is_not_one_is_refused(url):
    with pytest.raises(InvalidArgument) as err:
        xapi.login(creds(url), insecure=True)
    assert err.value.field == "--pool" and "allowed" in err.value.message


def test_password_file_that_is_a_directory(tmp_path):
    with pytest.raises(InvalidArgument) as err:
        xapi.credentials("https://master", "root", str(tmp_path))
    assert err.value.field == "--password-file" and "not a regular file" in err.value.message


def test_password_file_that_cannot_be_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("x")
    with pytest.raises(InvalidArgument) as err:
        xapi.credentials("https://master", "root", str(secret / "below"))  # ENOTDIR
    assert err.value.field == "--password-file" and "cannot read" in err.value.message
    os.symlink(str(tmp_path / "gone"), str(tmp_path / "dangling"))
    with pytest.raises(InvalidArgument) as err:
        xapi.credentials("https://master", "root", str(tmp_path / "dangling"))
    assert err.value.field == "--password-file"


def test_password_file_that_is_a_fifo_does_not_block(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo), 0o600)
    with pytest.raises(InvalidArgument) as err:
        xapi.credentials("https://master", "root", str(fifo))
    assert "not a regular file" in err.value.message


def test_password_file_not_utf8_and_readable_by_others(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"\xff\xfe\x00")
    os.chmod(str(secret), 0o600)
    with pytest.raises(InvalidArgument) as err:
        xapi.credentials("https://master", "root", str(secret))
    assert "UTF-8" in err.value.message
    os.chmod(str(secret), 0o644)
    with pytest.raises(InvalidArgument) as err:
        xapi.credentials("https://master", "root", str(secret))
    assert "readable by others" in err.value.message
    assert repr(str(secret)) in err.value.message  # the whole path: the admin must find the file to chmod it


# --- HTTPS with --ca-file (item 17) ----------------------------------------------------------------------
class HttpsLoopbackXapi(LoopbackXapi):
    """The loopback server behind TLS with the given certificate."""

    def __init__(self, certfile, keyfile, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._certfile, self._keyfile = certfile, keyfile

    def start(self) -> str:
        self._server = _Server(("127.0.0.1", 0), requestHandler=_Handler, allow_none=True, logRequests=False)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._certfile, self._keyfile)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.register_instance(self)
        self.url = "https://127.0.0.1:{}".format(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url


@pytest.fixture
def https_pool(tmp_path):
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make a self-signed certificate")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)
    hosts = [("host0", Topology.uniform(2, 2, 1 << 30))]
    server = HttpsLoopbackXapi(cert, key, str(tmp_path), hosts, PLUGIN_DIR)
    server.start()
    yield server, cert
    server.stop()


def test_ca_file_verifies_a_self_signed_master(https_pool):
    server, cert = https_pool
    session = xapi.login(creds(server.url), ca_file=cert)
    try:
        assert sorted(xapi.call(session.xenapi.VM.get_all)) == sorted(server.control_domains.values())  # dom0s alone
        assert len(server.sessions) == 1
    finally:
        xapi.logout(session)
    assert not server.sessions


def test_self_signed_master_without_ca_file_is_refused_clearly(https_pool):
    server, _ = https_pool
    with pytest.raises(NumaError) as err:
        xapi.login(creds(server.url))
    assert "--ca-file" in err.value.message and not server.sessions


def test_another_ca_file_is_refused(https_pool, tmp_path):
    server, _ = https_pool
    other = str(tmp_path / "other.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(tmp_path / "other.key"), "-out", other, "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with pytest.raises(NumaError) as err:
        xapi.login(creds(server.url), ca_file=other)
    assert "--ca-file" in err.value.message and not server.sessions


def test_insecure_https_skips_verification(https_pool):
    server, _ = https_pool
    session = xapi.login(creds(server.url), insecure=True)
    assert len(server.sessions) == 1
    xapi.logout(session)


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_bad_ca_file_is_an_invalid_argument(https_pool, tmp_path, content):
    server, _ = https_pool
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidArgument) as err:
        xapi.login(creds(server.url), ca_file=str(path))
    assert err.value.field == "--ca-file"
    with pytest.raises(InvalidArgument) as err:
        xapi.login(creds(server.url), ca_file=str(tmp_path))  # a directory
    assert err.value.field == "--ca-file"


def test_wrong_password_is_xapis_error(https_pool):
    server, cert = https_pool
    with pytest.raises(xapi.XapiError) as err:
        xapi.login(creds(server.url, password="wrong"), ca_file=cert)
    assert err.value.code == "SESSION_AUTHENTICATION_FAILED"


# --- per-key writes and the owner token (item 14) --------------------------------------------------------
# The loopback server listens with socketserver's backlog of 5: more simultaneous
# connections than that wait a second for a SYN retry, slowing the test for nothing.
RACERS = 4


def race(n, fn):
    """Run fn(i) in n threads released together; returns results and exceptions."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as err:  # noqa: BLE001 - the test reports every one
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


@pytest.mark.parametrize("field, setter", [("other_config", xapi.set_other_config),
                                           ("VCPUs_params", xapi.set_vcpus_param)])
def test_racing_writers_of_one_key_never_see_map_duplicate_key(pool, field, setter):
    server, _ = pool
    ref, _ = server.add_vm("vm", 2, 1 << 30, other_config={"other": "kept"})
    sessions = [xapi.login(creds(server.url), insecure=True) for _ in range(RACERS)]
    try:
        for round_ in range(20):
            values = ["r{}-w{}".format(round_, i) for i in range(RACERS)]
            _, errors = race(RACERS, lambda i, values=values: setter(sessions[i], ref, "numa_k", values[i]))
            assert not errors, errors
            assert server.vms[ref][field]["numa_k"] in values
    finally:
        for s in sessions:
            xapi.logout(s)
    assert server.vms[ref]["other_config"]["other"] == "kept"


def test_exactly_one_of_racing_claims_wins(pool):
    server, _ = pool
    ref, _ = server.add_vm("vm", 2, 1 << 30)
    sessions = [xapi.login(creds(server.url), insecure=True) for _ in range(RACERS)]
    try:
        for _ in range(20):
            tokens = [str(uuidlib.uuid4()) for _ in range(RACERS)]
            won, errors = race(RACERS, lambda i, tokens=tokens: xapi_owner_key.claim_other_config_key(sessions[i], ref, "numa_owner",
                                                                                    tokens[i]))
            assert not errors, errors
            assert won.count(True) == 1, won
            winner = won.index(True)
            assert server.vms[ref]["other_config"]["numa_owner"] == tokens[winner]
            # a loser's release leaves the winner's claim; the winner's own release drops it
            loser = (winner + 1) % RACERS
            assert not xapi_owner_key.release_other_config_key(sessions[loser], ref, "numa_owner", tokens[loser])
            assert server.vms[ref]["other_config"]["numa_owner"] == tokens[winner]
            assert xapi_owner_key.claim_other_config_key(sessions[winner], ref, "numa_owner", tokens[winner])  # idempotent
            assert xapi_owner_key.release_other_config_key(sessions[winner], ref, "numa_owner", tokens[winner])
            assert "numa_owner" not in server.vms[ref]["other_config"]
    finally:
        for s in sessions:
            xapi.logout(s)


def test_claim_refuses_an_empty_token(pool):
    server, session = pool
    ref, _ = server.add_vm("vm", 2, 1 << 30)
    with pytest.raises(InvalidArgument):
        xapi_owner_key.claim_other_config_key(session, ref, "numa_owner", "")


def test_set_to_same_value_and_remove_are_quiet(pool):
    server, session = pool
    ref, _ = server.add_vm("vm", 2, 1 << 30, other_config={"numa_k": "a"})
    xapi.set_other_config(session, ref, "numa_k", "a")
    xapi.set_other_config(session, ref, "numa_k", None)
    xapi.set_other_config(session, ref, "numa_k", None)
    assert "numa_k" not in server.vms[ref]["other_config"]


# --- VCPUs_params["mask"] (item 15) ---------------------------------------------------------------------
def test_uniform_mask():
    mask = xapi.parse_mask("0,1,2")
    assert not mask.per_vcpu and mask.cpus == {0, 1, 2}
    assert mask.for_vcpu(0) == mask.for_vcpu(7) == {0, 1, 2}
    assert xapi.format_mask(mask) == "0,1,2"
    assert xapi.format_mask({5, 1}) == "1,5"  # one CPU set for every vCPU


def test_per_vcpu_mask_as_xenopsd_applies_it():
    mask = xapi.parse_mask("0,1;2,3")
    assert mask.per_vcpu
    assert mask.for_vcpu(0) == {0, 1} and mask.for_vcpu(1) == {2, 3}
    assert mask.for_vcpu(2) == {0, 1}  # vCPUs past the list take the first entry
    assert mask.cpus == {0, 1, 2, 3} and frozenset(mask) == {0, 1, 2, 3}
    assert xapi.format_mask(mask) == "0,1;2,3"


def test_entries_equal_to_the_first_at_the_end_change_nothing():
    assert xapi.parse_mask("0,1;0,1") == xapi.parse_mask("0,1")
    assert xapi.parse_mask("0;1;0") == xapi.parse_mask("0;1")
    assert xapi.parse_mask("0;0;1").per_vcpu


@pytest.mark.parametrize("text, fragment", [
    ("", "not a mask"), ("0-3", "ignores"), ("0, 1", "ignores"), ("0,1;", "ignores"), (";0", "ignores"),
    ("0,,1", "ignores"), ("0x3", "decimal"), ("+1", "decimal"), ("1_0", "decimal"), ("١", "ignores"),
    ("99999999", "too large"),
])
def test_bad_masks_are_refused_clearly(text, fragment):
    with pytest.raises(InvalidArgument) as err:
        xapi.parse_mask(text)
    assert err.value.field == "VCPUs_params:mask" and fragment in err.value.message


cpu_sets = st.frozensets(st.integers(0, 511), min_size=1, max_size=12)


@given(st.lists(cpu_sets, min_size=1, max_size=6))
def test_mask_round_trip(entries):
    mask = xapi.VcpuMask(entries)
    text = xapi.format_mask(mask)
    assert xapi.parse_mask(text) == mask
    assert xapi.format_mask(xapi.parse_mask(text)) == text
    assert all(mask.for_vcpu(i) == (entries[i] if i < len(entries) else entries[0]) for i in range(8))


def test_format_mask_refuses_an_empty_set():
    with pytest.raises(InvalidArgument):
        xapi.format_mask(set())


def test_json_result_of_plugin_get_policy_still_works(pool):
    """A valid plugin session keeps working through the same error mapping."""
    server, session = pool
    host = session.xenapi.host.get_all()[0]
    _, uuid = server.add_vm("vm", 2, 1 << 30, other_config={"numa_mode": "strict", "numa_nodes": "1"})
    call = proto.build_call("get_policy", session._session, {"vm": uuid})
    done = subprocess.run([PLUGIN, call], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=120, env=server.plugin_env(host))
    result = proto.parse_response(done.stdout)
    assert result["Status"] == "Success", result
    assert json.loads(result["Value"])["mode"] == "strict"


def test_a_pool_member_given_for_the_master_logs_in_at_the_master(monkeypatch):
    """xapi answers a login on a pool member with HOST_IS_SLAVE and the master's address."""
    tried = []

    def login_once(creds, ca_file=None, insecure=False, sessions=None):
        tried.append(creds.url)
        if len(tried) == 1:
            raise xapi.XapiError(["HOST_IS_SLAVE", "192.0.2.10"])
        return "session at " + creds.url
    monkeypatch.setattr(xapi, "_login_once", login_once)
    creds = xapi.Credentials("https://member.example:8443/", "root", "pw")
    assert xapi.login(creds) == "session at https://192.0.2.10:8443/"
    tried.clear()

    def master_down(creds, ca_file=None, insecure=False, sessions=None):
        tried.append(creds.url)
        if len(tried) == 1:
            raise xapi.XapiError(["HOST_IS_SLAVE", "fd00::1"])
        raise NumaError("cannot reach the pool master at fd00::1: refused")
    monkeypatch.setattr(xapi, "_login_once", master_down)
    with pytest.raises(NumaError) as err:
        xapi.login(xapi.Credentials("https://member.example", "root", "pw"))
    assert tried[1] == "https://[fd00::1]" and "member.example is a pool member; its master is at fd00::1" in str(err.value)


def test_every_numa_error_laid_out_for_xapi_reads_back_as_its_message():
    """The plugin lays a NumaError out as a XenAPI failure (errors.failure_details) and a
    pool client shows it from that layout (errors.failure_message): the two directions
    must agree for every kind, or a host's refusal is printed raw."""
    import errno

    from xapi_numa import errors

    samples = [errors.InvalidArgument("nodes", "node 5 does not exist", "0..1"), errors.NoCapacity("full", ("a",)),
               errors.NoHost("none left", ["h1"]), errors.UnknownVM("vm-x"), errors.NotRunning("vm-x"),
               errors.NotRunning("vm-x", "host-u", "h1"), errors.HypervisorError(errno.EBUSY, "pausing domain 3"),
               errors.BackendUnavailable("no /proc/xen"), errors.StateError("cannot write /var/lib/x"),
               errors.VmBusy("placed elsewhere", ("vm", "vm-x", "host-u")), errors.NotMovable("vm-x", "a PV guest"),
               errors.NotMovable("vm-x", "a PV guest", "Café ☕"),
               errors.NumaError("plain")]
    for err in samples:
        details = errors.failure_details(err)
        assert details[0] == err.code
        shown = xapi.XapiError(details).message
        assert shown == err.message, (type(err).__name__, details, shown)
