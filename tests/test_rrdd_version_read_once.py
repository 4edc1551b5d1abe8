"""xapi-numa-rrdd reads xcp-rrdd's version (which timestamp it reads) once per process.

While xcp-rrdd did not answer, every retry (every 5 s) ran ``rpm -q`` twice, for
xcp-rrdd and xapi-core.  It is read once, at start: a restarted or updated xcp-rrdd
restarts the plugin (its unit is ``PartOf=xcp-rrdd.service``).
"""
import threading

from test_rrdd import fake_rrdd, host  # noqa: F401 (host: the fixture)
from test_rrdd_one_copy import wait_until

from xapi_numa.backends import rrdd


def test_xcp_rrdds_version_is_read_once_while_it_fails(tmp_path, host, monkeypatch):  # noqa: F811
    from xapi_numa import rrdd_plugin
    path, _ = host
    sock, shm = str(tmp_path / "xcp-rrdd"), str(tmp_path / "metrics-xapi-numa")
    calls = []
    server = fake_rrdd(sock, shm, calls, deregister_fails=[True] * 1000)  # xcp-rrdd failing, retried
    asked = []

    def installed_version():
        asked.append(1)
        return (25, 1)
    monkeypatch.setattr(rrdd, "installed_version", installed_version)
    monkeypatch.setattr(rrdd_plugin, "RETRY", 0.05)
    stop = {"now": False}

    def watch():
        wait_until(lambda: [m for m, _ in list(calls)].count("500") >= 4)
        stop.update(now=True)
    threading.Thread(target=watch, daemon=True).start()
    args = rrdd_plugin.parse_args(["--backend", "sim:" + path, "--socket", sock, "--timestamp", "auto"])
    try:
        assert rrdd_plugin.run(args, stop) == 0
    finally:
        stop.update(now=True)
        server.shutdown()
    assert [m for m, _ in calls].count("500") >= 4, calls
    assert len(asked) == 1, "rpm -q of xcp-rrdd ran {} times in one process".format(len(asked))
