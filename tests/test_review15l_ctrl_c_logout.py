"""Ctrl-C while a call to the pool master is under way still logs the session out (review 15l).

xmlrpc.client's transport closes its kept-alive connection after an Exception, not after a
KeyboardInterrupt: the connection stayed with a request sent and its answer unread, so the
logout pool_session sends on the way out failed at once (http.client's CannotSendRequest,
swallowed as a logout must be) and the session stayed on the master until xapi expired it
(24 hours), one more for every interrupted command.
"""
import os
import signal
import subprocess
import sys
import time

import xapi_numa

REPO = os.path.dirname(os.path.dirname(os.path.abspath(xapi_numa.__file__)))


def test_an_interrupted_command_logs_its_session_out(pool, tmp_path):
    server, _ = pool
    secret = tmp_path / "password"
    secret.write_text("xenroot\n")
    secret.chmod(0o600)
    before = set(server.sessions)
    server.delays["host.get_all_records"] = 5.0  # the master is slow: the admin gives up
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "xapi_numa.cli", "--insecure", "--pool", server.url, "--user",
                             "root", "--password-file", str(secret), "topology"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    for _ in range(400):
        if server.calls["host.get_all_records"]:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert server.calls["session.logout"] == 1
    assert set(server.sessions) == before
