"""The CLI's ``vnuma VM --store`` refuses a VM xapi never starts in its own words, the plugin's
``vnuma_plan`` in its own.

``--store`` plans through the pool: the VM's host's plugin (``vnuma_plan`` with ``store=true``) refused a
template or a snapshot offering ``store=false``, and the CLI passed that on to its user, who has no such
argument (a plan not kept is ``vnuma`` without ``--store``).  ``pool_plan`` now refuses it itself, before
any host is asked, in the words its caller passes (``cli.vnuma.NO_STORE_SAID``); the plugin's answer is
as before.
"""
import pytest

from test_plugin import err, run
from test_review19_what_if_guest_mask import cli_env
from xapi_numa.cli import vnuma as cli_vnuma
from xapi_numa.cli.main import main
from xapi_numa.ops import plugin_words
from xapi_numa.ops.vnuma_xapi import VNUMA_KEY

G = 1 << 30


def pool_cli(server, host, monkeypatch) -> None:
    """The CLI on ``host``, its pool the loopback's (through its master, as root)."""
    cli_env(server, host, monkeypatch)
    monkeypatch.setenv("XAPI_NUMA_POOL_URL", server.url)
    monkeypatch.setenv("XAPI_NUMA_POOL_USER", "root")


@pytest.mark.parametrize("host", [[], ["--host", "host1"]])
@pytest.mark.parametrize("flag, kind", [("is_a_template", "template"), ("is_a_snapshot", "snapshot")])
def test_vnuma_store_refuses_a_vm_that_never_starts_naming_its_own_option(pool, monkeypatch, capsys, flag, kind,
                                                                         host):
    server, session = pool
    hosts = session.xenapi.host.get_all()
    ref, uuid = server.add_vm("golden", 2, G)
    server.vms[ref][flag] = True
    plugin = " ".join(err(run(server, hosts[1], session._session, "vnuma_plan", {"vm": uuid, "store": "true"})))
    assert kind in plugin and plugin_words.NO_STORE_SAID in plugin, plugin  # the plugin's keeps its words
    pool_cli(server, hosts[0], monkeypatch)
    asked = server.plugin_calls
    capsys.readouterr()
    assert main(["--insecure", "vnuma", uuid, "--store"] + host) == 2
    said = capsys.readouterr().err
    assert kind in said and "store=false" not in said, said  # before: the plugin's argument
    assert cli_vnuma.NO_STORE_SAID in said and "Traceback" not in said, said
    assert server.plugin_calls == asked  # refused before any host is asked (before: each one's dry run, the plan)
    assert VNUMA_KEY not in server.vms[ref]["other_config"]
