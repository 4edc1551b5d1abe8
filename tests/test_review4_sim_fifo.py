"""Review 4 (hostile input): a named pipe (FIFO) as a simulated host's state file.

``sim init --force``, ``sim run`` and any query through ``sim:PATH`` block for ever in
open() waiting for a writer (store._looks_simulated and store._load open it to read),
where the state database's path is refused at once as "a device or other special file".
The rule: a clear refusal, never a hang."""
import os
import stat
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INIT = ["--nodes", "1", "--cpus-per-node", "1", "--memory-per-node", "64M"]


def _cli(argv, env):
    """The command in a child process: a FIFO blocks open(), so the test must be able to stop it."""
    try:
        done = subprocess.run([sys.executable, "-m", "xapi_numa.cli.main"] + argv, capture_output=True, text=True,
                              timeout=10, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        return None, "still running after 10 s (blocked opening the FIFO)"
    return done.returncode, done.stderr


@pytest.mark.parametrize("argv", [
    ["sim", "init", "{fifo}", "--force"] + INIT,
    ["sim", "run", "{fifo}", "--seconds", "1"],
    ["--backend", "sim:{fifo}", "topology"],
])
def test_a_fifo_as_the_state_file_is_refused_not_waited_on(tmp_path, argv):
    fifo = str(tmp_path / "host.json")
    os.mkfifo(fifo)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XAPI_NUMA_")}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["XAPI_NUMA_LEDGER"] = str(tmp_path / "ledger.db")
    code, err = _cli([a.format(fifo=fifo) for a in argv], env)
    assert code in (1, 2) and "internal error" not in err, (code, err)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
