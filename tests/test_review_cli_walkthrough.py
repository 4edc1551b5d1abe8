"""What a first walk through the README's commands on the simulated host found: a
backend xapi-numad cannot use is a refused flag (exit 2, named as xapi-numa names it)."""
import pytest

from xapi_numa import daemon


@pytest.mark.parametrize("spec, detail", [("foo", "unknown backend 'foo'"), ("sim:", "sim: needs a path")])
def test_a_backend_that_is_none_is_a_refused_flag_of_xapi_numad(spec, detail, capsys, monkeypatch, tmp_path):
    """The unit's RestartPreventExitStatus=2 keeps systemd from retrying a flag xapi-numad
    refuses; a wrong --backend was exit 1 (retried five times) and named "backend"."""
    monkeypatch.delenv("XAPI_NUMA_BACKEND", raising=False)
    ledger = str(tmp_path / "l.db")
    assert daemon._run(daemon.parse_args(["--backend", spec, "--no-xapi", "--ledger", ledger])) == 2
    err = capsys.readouterr().err.strip()
    assert err == "xapi-numad: error: --backend: {} (allowed: xen, or sim:PATH for a simulated host stored at " \
                  "PATH)".format(detail), err
    monkeypatch.setenv("XAPI_NUMA_BACKEND", spec)
    assert daemon._run(daemon.parse_args(["--no-xapi", "--ledger", ledger])) == 2
    assert capsys.readouterr().err.startswith("xapi-numad: error: $XAPI_NUMA_BACKEND: " + detail)
    assert not (tmp_path / "l.db").exists()
