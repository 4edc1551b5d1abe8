"""Review 4 (hostile input): ``move-memory --lock-fd`` takes any number of up to 40
digits, and one past a C int reached ``os.fstat``: ``internal error: OverflowError``,
exit 70, where a smaller bad descriptor is refused naming the flag (exit 2)."""
import pytest

from xapi_numa.cli.main import main


@pytest.fixture
def host(tmp_path, monkeypatch):
    path = str(tmp_path / "host.json")
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "2G"]) == 0
    assert main(["sim", "create", path, "a", "--vcpus", "1", "--memory", "256M", "--type", "pvh"]) == 0
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + path)
    return path


def test_a_lock_fd_beyond_a_c_int_is_refused_naming_the_flag(host, capsys):
    """``--lock-fd 2147483647`` is refused (exit 2, "not an open descriptor"); one more was
    ``internal error: OverflowError: Python int too large to convert to C int``, exit 70."""
    capsys.readouterr()
    assert main(["move-memory", "a", "--to", "1", "--no-xapi", "--lock-fd", "2147483647"]) == 2
    capsys.readouterr()
    code = main(["move-memory", "a", "--to", "1", "--no-xapi", "--lock-fd", "2147483648"])
    err = capsys.readouterr().err
    assert code == 2 and "--lock-fd" in err and "internal error" not in err, (code, err)
