"""Review 4 (hostile input): a VM name or key typed with bytes that are not UTF-8 (argv
carries them as surrogate escapes) reached SQLite, which cannot encode them: ``internal
error: UnicodeEncodeError``, exit 70.  The rule: a refusal naming the field (or "no such
VM"), never an internal error, nothing changed."""
import gc
import os

import pytest

from xapi_numa.cli.main import main

NOT_UTF8 = b"bad\xff".decode("utf-8", "surrogateescape")  # what argv holds for the byte 0xff


@pytest.fixture
def host(tmp_path, monkeypatch):
    path = str(tmp_path / "host.json")
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "2G"]) == 0
    assert main(["sim", "create", path, "a", "--vcpus", "1", "--memory", "256M", "--type", "pvh"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + path)
    return path


def _files(host):
    folder = os.path.dirname(host)
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, name))}


@pytest.mark.parametrize("argv", [
    ["vnuma", NOT_UTF8, "--vcpus", "2", "--memory", "1G"],   # internal error: UnicodeEncodeError (ledger query)
    ["release", "adhoc-" + NOT_UTF8],                        # internal error: UnicodeEncodeError (ledger query)
])
def test_a_name_that_is_not_utf8_is_refused_or_not_found_never_an_internal_error(host, capsys, argv):
    main(["reservations"])  # the state database exists before the call: its creation is no change
    gc.collect()  # (and that call's connection is closed: its WAL checkpointed now, not during the next)
    before = _files(host)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (1, 2) and "internal error" not in err, (code, err)
    assert _files(host) == before


# ``move-memory --lock-fd`` past a C int: Review 4 (hostile input): ``move-memory --lock-fd`` takes any number of up to 40 digits, and one past a C int reached ``os.fstat``: ``internal error: OverflowError``, exit 70, where a smaller bad descriptor is refused naming the flag (exit 2).
def test_a_lock_fd_beyond_a_c_int_is_refused_naming_the_flag(host, capsys):
    """``--lock-fd 2147483647`` is refused (exit 2, "not an open descriptor"); one more was
    ``internal error: OverflowError: Python int too large to convert to C int``, exit 70."""
    capsys.readouterr()
    assert main(["move-memory", "a", "--to", "1", "--no-xapi", "--lock-fd", "2147483647"]) == 2
    capsys.readouterr()
    code = main(["move-memory", "a", "--to", "1", "--no-xapi", "--lock-fd", "2147483648"])
    err = capsys.readouterr().err
    assert code == 2 and "--lock-fd" in err and "internal error" not in err, (code, err)


LONG = "a" * 5000


@pytest.mark.parametrize("argv", [
    ["vcpus", LONG],                                          # no such VM or domain: <5000 characters>
    ["memory", LONG],                                         # argparse: unrecognized arguments: <5000>
    ["place", "--vcpus", "1", "--memory", "1G", "--mode", LONG],
    ["sim", "create", "{host}", "x", "--vcpus", "1", "--memory", "64M", "--load", LONG],
])
def test_a_long_value_is_quoted_by_its_start_not_in_full(host, capsys, argv):
    """An error repeats at most a few hundred characters of what was typed, and says how long it was."""
    capsys.readouterr()
    try:
        code = main([a.replace("{host}", host) for a in argv])
    except SystemExit as done:  # argparse's refusals exit from inside main
        code = done.code
    err = capsys.readouterr().err
    assert code == 2 or code == 1, err
    assert len(err) < 1000 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "characters cut]" in err, err
