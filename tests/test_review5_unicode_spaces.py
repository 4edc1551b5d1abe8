"""Review 5: "only ASCII spaces are stripped around ... policy words and UUIDs
(numbers.trim) instead of str.strip()" -- but three readers of a UUID or a policy word
still str.strip() what was typed before checking it, so a no-break or em space around
it is taken away there and refused everywhere else:

* ``xapi-numa release`` (cli/placing.py cmd_release: ``args.vm.strip()`` before
  parse_uuid): '\u2003<uuid>' releases that VM's reservation, while
  ``place --vm '\u2003<uuid>'`` refuses it (exit 2);
* the pool's VM lookup (backends/xapi.py vm_ref_by_name_or_uuid: ``ref.strip()``,
  used by vm-start, vm-placement, vnuma --store): '\u2003<uuid>' is that VM;
* the plugin's ``vnuma_plan`` (plugin/functions.py: ``args.get("mode").strip()``):
  mode='\u2003split' is split.
"""
import os
import subprocess
import sys

import pytest
from test_plugin import err, run

from xapi_numa.backends import xapi
from xapi_numa.errors import NumaError

EM = "\u2003"
NBSP = "\u00a0"
UUID = "aaaaaaaa-0000-4000-8000-000000000009"


def _cli(env, *argv):
    return subprocess.run([sys.executable, "-m", "xapi_numa.cli", *argv], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture
def sim(tmp_path):
    env = dict(os.environ, XAPI_NUMA_RUN_DIR=str(tmp_path), PYTHONPATH=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    env.pop("XAPI_NUMA_LEDGER", None)
    path = str(tmp_path / "h.json")
    done = _cli(env, "sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "4G")
    assert done.returncode == 0, done.stderr
    env["XAPI_NUMA_BACKEND"] = "sim:" + path
    return env


@pytest.mark.parametrize("space", [EM, NBSP])
def test_release_refuses_a_uuid_with_unicode_spaces_as_place_does(sim, space):
    done = _cli(sim, "place", "--vcpus", "1", "--memory", "64M", "--vm", space + UUID)
    assert done.returncode == 2, done.stderr  # place refuses it (numbers.trim)
    done = _cli(sim, "place", "--vcpus", "1", "--memory", "64M", "--vm", UUID)
    assert done.returncode == 0, done.stderr
    done = _cli(sim, "release", space + UUID)
    assert done.returncode == 2 and "not a UUID" in done.stderr, (done.returncode, done.stderr)
    assert UUID in _cli(sim, "reservations").stdout  # nothing released


def test_the_pools_vm_lookup_refuses_a_uuid_with_an_em_space(ctx):
    server, session, _, _ = ctx
    _, uuid = server.add_vm("db", 2, 1 << 30)
    with pytest.raises(NumaError):
        xapi.vm_ref_by_name_or_uuid(session, EM + uuid)


def test_the_plugins_vnuma_plan_refuses_a_mode_with_an_em_space(ctx):
    server, _, host, sid = ctx
    _, uuid = server.add_vm("db", 2, 1 << 30)
    answer = err(run(server, host, sid, "vnuma_plan", {"vm": uuid, "mode": EM + "split", "half": "0"}))
    assert answer[0] == "NUMA_INVALID_ARGUMENT" and answer[1] == "mode", answer
