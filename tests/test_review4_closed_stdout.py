"""Review 4 (hostile environment): ``xapi-numa ... >&-`` (standard output closed, as a
careless cron line or a daemon wrapper leaves it).  Python then has ``sys.stdout = None``;
``main`` wraps it in GuardedOutput anyway, so the first print is ``internal error:
AttributeError: 'NoneType' object has no attribute 'write'`` and every command, ``--help``
and ``--version`` included, ends with "Exception ignored in: <GuardedOutput ...>
Traceback ... AttributeError: 'NoneType' object has no attribute 'flush'" and exit 120.
A full disk (``> /dev/full``) is said in one line ("cannot write the output"); a closed
output should be too, with no traceback."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["topology"]])
def test_a_closed_standard_output_shows_no_traceback(tmp_path, argv):
    path = str(tmp_path / "host.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("XAPI_NUMA_")}
    env.update(PYTHONPATH=REPO, XAPI_NUMA_BACKEND="sim:" + path, XAPI_NUMA_LEDGER=str(tmp_path / "ledger.db"))
    subprocess.run([sys.executable, "-m", "xapi_numa.cli.main", "sim", "init", path, "--nodes", "1",
                    "--cpus-per-node", "1", "--memory-per-node", "64M"], check=True, env=env, capture_output=True)
    done = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", "xapi_numa.cli.main"] + argv,
                          env=env, stderr=subprocess.PIPE, text=True, timeout=60)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, (done.returncode, done.stderr)
    assert done.returncode != 70 and done.returncode != 120, (done.returncode, done.stderr)
