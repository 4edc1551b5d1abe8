"""Review 3: docs/xapi-numad.md ('The thread starts with the first cycle ... (a `--hand-back` asks
nothing of xapi)') and ops/xapi_reader.py's docstring ('a ``--hand-back`` makes none, and
asks nothing of xapi').  But daemon.hand_back plans the backends' hand-back, whose
_due() asks the reader for each running guest's opt-out: that starts the reader thread,
which logs in and reads every VM record (waiting up to 5 s on a wedged xapi), for an
answer a hand-back (enabled=False: everything goes back) never uses."""
import types

from test_daemon import swapped_host

from xapi_numa import daemon


def test_hand_back_without_no_xapi_reads_nothing_from_xapi(request, tmp_path, monkeypatch):
    path = str(tmp_path / "h.json")
    sim, _, _ = swapped_host(path)
    monkeypatch.setenv("XAPI_NUMA_INVENTORY", str(tmp_path / "no-inventory"))
    calls = []
    session = types.SimpleNamespace(xenapi=types.SimpleNamespace(VM=types.SimpleNamespace(
        get_all_records=lambda: calls.append("VM.get_all_records") or {})))

    def login():
        calls.append("login")
        return session
    monkeypatch.setattr(daemon, "local_login", login)
    spec = "sim:" + path
    args = daemon.parse_args(["--backend", spec, "--ledger", str(tmp_path / "l.db"), "--hand-back"])
    rt, reader = daemon.build_runtime(args, spec, sim)
    if reader is not None:
        request.addfinalizer(reader.close)
    assert rt.backends is not None
    daemon.hand_back(rt)
    assert calls == [], calls
