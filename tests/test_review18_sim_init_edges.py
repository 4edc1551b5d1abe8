"""``sim init`` at the edges a review (rB) found.

* The host's file deleted, its state database still there and xapi-numad of the old
  host holding it: the in-use checks were skipped (they ran only where the file was)
  and the database was deleted under the running daemon.
* A path in a folder that does not exist: the error named a lock file, not the path.
* A directory where SQLite's files of the database go: the host was replaced, then the
  clean-up failed with an internal error (exit 70)."""
import os

from xapi_numa.cli.main import main
from xapi_numa.ops import instance_lock

INIT = ["--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "1G"]


def _init(path: str, *more: str) -> int:
    return main(["sim", "init", path] + INIT + list(more))


def test_a_gone_host_file_still_refuses_while_its_daemon_holds_the_database(tmp_path, capsys):
    host = str(tmp_path / "h.json")
    assert _init(host) == 0
    db = host + ".ledger.db"
    with open(db, "w") as f:
        f.write("a database a daemon holds")
    daemon = instance_lock.acquire("sim:" + host)  # (as xapi-numad --backend sim:h.json holds it)
    try:
        os.unlink(host)
        capsys.readouterr()
        assert _init(host) != 0
        err = capsys.readouterr().err
        assert "xapi-numad runs for the simulated host" in err, err
        assert os.path.exists(db) and not os.path.exists(host)  # nothing changed
    finally:
        os.close(daemon)
    assert _init(host) == 0 and not os.path.exists(db)  # once it has stopped


def test_a_path_in_a_missing_folder_names_the_folder(tmp_path, capsys):
    capsys.readouterr()
    assert _init(str(tmp_path / "nodir" / "x.json")) != 0
    err = capsys.readouterr().err
    assert "its folder {} does not exist".format(tmp_path / "nodir") in err, err
    assert "lock" not in err and not os.path.exists(str(tmp_path / "nodir"))


def test_a_directory_where_the_database_goes_is_refused_before_anything_changes(tmp_path, capsys):
    host = str(tmp_path / "h.json")
    assert _init(host) == 0
    with open(host) as f:
        before = f.read()
    os.mkdir(host + ".ledger.db-wal")
    capsys.readouterr()
    code = _init(host, "--force", "--nodes", "4")
    err = capsys.readouterr().err
    assert code not in (0, 70) and "is a directory where the host's state database goes" in err, err
    with open(host) as f:
        assert f.read() == before  # the old host is still there
