"""A wedged xapi (it takes the connection and never answers) hangs nothing for ever.

Every XenAPI call waits at most a deadline (backends/rpc_transport.py): the
CLI says "no answer from xapi" and exits 1, xapi-numad counts xapi as
unreachable and backs off, and the calls known to take long (``VM.start_on``,
a host's plugin) wait longer.  Before the deadlines each of these waited for
ever; a guard thread turns such a hang into a failure here instead of a
stuck test run.
"""
import logging
import threading
import xmlrpc.client
from http.server import BaseHTTPRequestHandler

import pytest
from hung_calls import GUARD, within
from test_rrdd import UnixHTTPServer

from xapi_numa.backends import rpc_transport, xapi
from xapi_numa.cli.main import main
from xapi_numa.ops.xapi_link import XapiLink, local_login


def unix_xapi(path, wedged):
    """A stand-in xapi on a Unix socket: logs in and answers VM.get_all, or, while
    ``wedged`` is set, reads the request and never answers."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            params, method = xmlrpc.client.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if wedged.is_set():
                release.wait()
                return
            value = "OpaqueRef:session" if method == "session.login_with_password" else ["OpaqueRef:vm"]
            out = xmlrpc.client.dumps(({"Status": "Success", "Value": value},), methodresponse=True).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass
    server = UnixHTTPServer(path, Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, release


@pytest.fixture
def unix_socket(tmp_path, monkeypatch):
    monkeypatch.delenv("XAPI_NUMA_XENAPI_URL", raising=False)
    wedged = threading.Event()
    path = str(tmp_path / "xapi")
    server, release = unix_xapi(path, wedged)
    yield path, wedged
    release.set()
    server.shutdown()
    server.server_close()


def test_the_local_socket_answers_as_xapi_local_does(unix_socket):
    path, _ = unix_socket
    session = within(lambda: local_login(timeout=0.5, socket_path=path))
    assert xapi.call(session.xenapi.VM.get_all) == ["OpaqueRef:vm"]


def test_a_wedged_local_socket_is_a_connection_error_not_a_hang(unix_socket):
    path, wedged = unix_socket
    session = within(lambda: local_login(timeout=0.3, socket_path=path))
    wedged.set()
    with pytest.raises(ConnectionError, match="did not answer in time"):
        within(lambda: xapi.call(session.xenapi.VM.get_all))


def test_xapi_numad_backs_off_from_a_wedged_xapi_and_comes_back(pool, monkeypatch, caplog):
    server, _ = pool
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", server.url)
    monkeypatch.setenv("XAPI_NUMA_POOL_PASSWORD", server.password)
    now = [0.0]
    link = XapiLink(lambda: local_login(timeout=0.3), lambda: now[0])
    server.wedged.add("*")
    with caplog.at_level(logging.WARNING):
        assert within(lambda: link.use(lambda s: xapi.call(s.xenapi.VM.get_all))) is None
    assert any("unreachable" in r.getMessage() for r in caplog.records)
    server.wedged.clear()
    now[0] += 3600.0  # past any back-off
    assert within(lambda: link.use(lambda s: xapi.call(s.xenapi.VM.get_all))) is not None


def test_the_cli_says_no_answer_from_a_wedged_master(pool, tmp_path, monkeypatch, capsys):
    server, _ = pool
    monkeypatch.setattr(xapi, "CALL_TIMEOUT", 0.3)
    secret = tmp_path / "password"
    secret.write_text("xenroot\n")
    secret.chmod(0o600)
    server.wedged.add("*")
    code = within(lambda: main(["--insecure", "--pool", server.url, "--user", "root", "--password-file",
                                 str(secret), "topology"]))
    err = capsys.readouterr().err
    assert code == 1 and "no answer from xapi" in err and "did not answer in time" in err, err
    assert "Traceback" not in err and "internal error" not in err
    assert server.calls["session.logout"] == 0  # no logout over it: that would wait a second deadline


def test_a_long_call_waits_longer_and_the_deadline_comes_back(pool, monkeypatch):
    server, _ = pool
    monkeypatch.setattr(xapi, "CALL_TIMEOUT", 0.3)
    monkeypatch.setattr(xapi, "LONG_CALL_TIMEOUT", 30.0)
    session = xapi.login(xapi.Credentials(server.url, "root", "xenroot"), insecure=True)
    server.delays["VM.get_all"] = 1.0
    with pytest.raises(ConnectionError):
        within(lambda: xapi.call(session.xenapi.VM.get_all))
    assert within(lambda: xapi.call_long(session, session.xenapi.VM.get_all)) is not None
    assert rpc_transport.transport_of(session).timeout == 0.3


def test_patience_leaves_a_proxy_without_a_deadline_alone():
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1:9/")
    assert rpc_transport.transport_of(proxy) is None
    with rpc_transport.patience(proxy, 10.0):
        pass


# --- found by review ----------------------------------------------------------------------------
class _ReaderGone:
    """A standard output whose reader left (``xapi-numa topology | head -0``)."""
    encoding = "utf-8"
    errors = "strict"
    line_buffering = False

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_reader_that_left_is_still_no_error(tmp_path, monkeypatch, capsys):
    """BrokenPipeError is a ConnectionError: the 'no answer from xapi' branch caught it
    first, so `| head` exited 1 blaming xapi on a command that never asks it."""
    import sys
    path = str(tmp_path / "host.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "1G"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + path)
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", _ReaderGone())
    assert main(["topology"]) == 0
    assert "xapi" not in capsys.readouterr().err


def test_xapi_numad_does_not_log_out_over_a_wedged_xapi(pool, monkeypatch):
    """After a call timed out, the link logged out over the same wedged xapi and waited a
    second deadline; it now drops the session (xapi expires it)."""
    server, _ = pool
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", server.url)
    monkeypatch.setenv("XAPI_NUMA_POOL_PASSWORD", server.password)
    link = XapiLink(lambda: local_login(timeout=0.3), lambda: 0.0)
    assert within(lambda: link.use(lambda s: xapi.call(s.xenapi.VM.get_all))) is not None
    server.wedged.add("*")
    assert within(lambda: link.use(lambda s: xapi.call(s.xenapi.VM.get_all))) is None
    assert server.calls["session.logout"] == 0


def test_a_logout_waits_at_most_its_own_short_deadline(pool, monkeypatch):
    """A logout is best effort: over a xapi that stopped answering just then it gives up
    after LOGOUT_TIMEOUT, not after the session's whole call deadline."""
    server, _ = pool
    monkeypatch.setattr(xapi, "CALL_TIMEOUT", 3 * GUARD)  # a hang, as far as the guard can tell
    monkeypatch.setattr(xapi, "LOGOUT_TIMEOUT", 0.3)
    session = xapi.login(xapi.Credentials(server.url, "root", "xenroot"), insecure=True)
    server.wedged.add("session.logout")
    within(lambda: xapi.logout(session))
    assert server.calls["session.logout"] == 1
    assert rpc_transport.transport_of(session).timeout == 3 * GUARD


def test_a_start_xapi_does_not_answer_keeps_its_placement(pool, monkeypatch):
    """VM.start_on past its deadline (or a connection lost during it) released the
    reservation and the boot pin while xapi was still starting the VM: it then ran with
    its memory on both nodes and nothing left for xapi-numad to settle."""
    import time

    from xapi_numa.errors import NumaError
    from xapi_numa.ops import pool as pool_ops

    server, _ = pool
    monkeypatch.setattr(xapi, "CALL_TIMEOUT", 0.5)
    monkeypatch.setattr(xapi, "LONG_CALL_TIMEOUT", 1.0)
    session = xapi.login(xapi.Credentials(server.url, "root", "xenroot"), insecure=True)
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    server.delays["VM.start_on"] = 2.0  # xapi is slow (a big VM's scrub), not dead
    with pytest.raises(NumaError, match="may still be starting there"):
        within(lambda: pool_ops.vm_start(session, uuid))
    assert "numa_placed_nodes" in session.xenapi.VM.get_other_config(ref)
    for _ in range(300):  # xapi finishes the start it was given
        if session.xenapi.VM.get_power_state(ref) == "Running":
            break
        time.sleep(0.1)
    host = session.xenapi.VM.get_resident_on(ref)
    hv = server.sims[host]
    domid = next(d.domid for d in hv.domains() if d.uuid == uuid)
    assert sum(1 for n in hv.node_pages(domid).values() if n) == 1, hv.node_pages(domid)
