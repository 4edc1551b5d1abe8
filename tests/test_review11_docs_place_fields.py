"""Review 11 (docs against code): the local `place --json` and the plugin's `place` answer
the same question (where would this VM go, and what was reserved) with the same field
names.  The CLI's answer lacked the plugin's "vm", "max_distance" and "headroom" (the
figures vm-placement ranks hosts by), the plugin's lacked the CLI's "reservation".
The CLI's also says, in "xapi", whether it read the host's guest mask from this host's
xapi (review 19); the plugin always reads it, so its answer has no such field."""
import json
import os
import subprocess
import sys

from test_plugin import ok, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli_json(server, host, *args):
    env = dict(os.environ, XAPI_NUMA_LEDGER=server.ledgers[host])
    done = subprocess.run([sys.executable, "-m", "xapi_numa.cli", "--backend", "sim:" + server.sims[host].path]
                          + list(args) + ["--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_cli_and_the_plugin_place_answer_with_the_same_fields(ctx):
    server, session, host, sid = ctx
    plugin_what_if = ok(run(server, host, sid, "place", {"vcpus": "2", "memory": "1G"}))
    cli_what_if = cli_json(server, host, "place", "--vcpus", "2", "--memory", "1G", "--dry-run")
    assert cli_what_if.pop("xapi").startswith("not consulted")  # (a simulated host)
    assert sorted(cli_what_if) == sorted(plugin_what_if), (sorted(cli_what_if), sorted(plugin_what_if))
    for field in ("nodes", "memory", "overhead", "max_distance", "headroom", "reserved", "reservation", "vm"):
        assert cli_what_if[field] == plugin_what_if[field], field  # same units, same values
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    placed = ok(run(server, host, sid, "place", {"vm": uuid}))
    assert placed["reserved"] is True and placed["reservation"]["vm"] == uuid
    assert placed["reservation"]["total"] == sum(placed["reservation"]["nodes"].values())
    assert "owner" not in placed["reservation"]  # the owner token stays the placing call's
    reserved = cli_json(server, host, "place", "--vcpus", "1", "--memory", "256M")
    assert reserved.pop("xapi").startswith("not consulted")
    assert sorted(reserved) == sorted(placed) and reserved["reservation"]["vm"].startswith("adhoc-")
