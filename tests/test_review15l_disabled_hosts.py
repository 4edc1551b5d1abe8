"""A disabled host (maintenance mode, an evacuation under way, a host the admin keeps new
VMs off) still runs its VMs and still answers its plugin: xapi forwards host.call_plugin
to it (message_forwarding.ml checks liveness, not ``enabled``).  `topology --pool` and
`vcpus --pool` left such a host out without a word, and with it every VM running there
(review 15l).  vm-start still asks enabled hosts only."""
import json

from xapi_numa.cli.main import main
from xapi_numa.ops import pool as pool_ops
from xapi_numa.ops import pool_queries

G = 1 << 30


def run(server, tmp_path, capsys, *argv):
    """The CLI in this process (so it runs this interpreter's code, 3.6 too)."""
    secret = tmp_path / "password"
    secret.write_text("xenroot\n")
    secret.chmod(0o600)
    capsys.readouterr()
    code = main(["--insecure", "--pool", server.url, "--user", "root", "--password-file", str(secret), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_disabled_host_and_its_vms_are_still_shown(pool, tmp_path, capsys):
    server, session = pool
    hosts = list(server.hosts)
    ref, uuid = server.add_vm("web", 2, G)
    session.xenapi.VM.start_on(ref, hosts[1], False, False)
    server.hosts[hosts[1]]["enabled"] = False  # xe host-disable (maintenance mode)
    answers = pool_queries.per_host(session, "host_topology")
    assert server.hosts[hosts[1]]["uuid"] in answers
    code, out, err = run(server, tmp_path, capsys, "vcpus", "--json")
    assert code == 0, err
    assert {r["uuid"]: r["host_uuid"] for r in json.loads(out) if r["name"] == "web"} == {
        uuid: server.hosts[hosts[1]]["uuid"]}
    code, out, err = run(server, tmp_path, capsys, "vcpus", "web")
    assert code == 0 and "web" in out, err
    ref2, uuid2 = server.add_vm("db", 2, G)  # a start still never goes there
    assert pool_ops.vm_start(session, uuid2)["host_uuid"] != server.hosts[hosts[1]]["uuid"]
