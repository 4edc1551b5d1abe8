"""Review 4 (hostile input): ``sim init`` on a PATH that is not a simulated host.

docs/simulator.md: "A path that names another kind of file is never replaced, even with --force,
and gets nothing made beside it (no PATH.lock)".  Found:

* ``sim init PATH`` (no --force) over an existing file that is no simulated host refuses
  ("already exists") but leaves ``PATH.lock`` beside it: the lock is taken before the
  existence check (store.create);
* ``sim init PATH --force`` over a character device that reads empty (``/dev/null``)
  replaced the device with a regular file, exit 0: an empty read counts as "an empty file
  made for it" (store._looks_simulated).  Run as root on /dev/null itself, it replaced
  the machine's /dev/null.
"""
import os
import stat

import pytest

from xapi_numa.cli.main import main

INIT = ["--nodes", "1", "--cpus-per-node", "1", "--memory-per-node", "64M"]


def test_a_refused_init_over_another_file_makes_no_lock_beside_it(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    capsys.readouterr()
    assert main(["sim", "init", str(notes)] + INIT) == 2  # refused input: docs/cli.md's exit statuses
    assert "already exists" in capsys.readouterr().err
    assert notes.read_text() == "my notes\n"
    assert sorted(os.listdir(str(tmp_path))) == ["notes.txt"]  # was also notes.txt.lock


def test_init_force_never_replaces_a_device(tmp_path, capsys):
    null = str(tmp_path / "null")
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of the test's own
    except (PermissionError, OSError) as err:
        pytest.skip("cannot make a device node here ({})".format(err))
    capsys.readouterr()
    code = main(["sim", "init", null, "--force"] + INIT)
    err = capsys.readouterr().err
    assert stat.S_ISCHR(os.lstat(null).st_mode), "the device was replaced by a regular file (exit {})".format(code)
    assert code != 0 and err, (code, err)
