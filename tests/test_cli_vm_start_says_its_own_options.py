"""The CLI's ``vm-start`` words a host's refusal of its place in its own words, not the plugin's.

A pool start's place is the chosen host's plugin's ``place``, whose refusals offer its callers its
arguments: a VM not halted ``dry_run=true``, one another host placed ``force=true`` (a release
``here``).  ``vm-start`` passed them on: a VM started meanwhile by xapi's own ``xe vm-start`` (after
vm-start's own check, before its place) was offered a dry run, which vm-start has none of; one whose
earlier place its release could not undo (that host's plugin gone, say) was told to release it with
an argument of no command it has.  It now reads the VM again and says either refusal as it says them
itself (:func:`ops.pool._halted`; the other host's place with the release the CLI's ``place --vm``
names, ``cli.placing.FORCE_SAID``); the plugin's own answers keep their words.
"""
from test_cli_vnuma_store_says_its_own_options import pool_cli
from test_plugin import err, ok, run
from xapi_numa.cli import placing
from xapi_numa.cli.main import main
from xapi_numa.ops import plugin_words
from xapi_numa.ops import pool as pool_ops

G = 1 << 30
PLUGIN_WORDS = (plugin_words.DRY_RUN_SAID, plugin_words.FORCE_SAID)


def _vm_start(server, hosts, monkeypatch, capsys, uuid) -> str:
    pool_cli(server, hosts[0], monkeypatch)
    capsys.readouterr()
    assert main(["--insecure", "vm-start", uuid]) in (1, 2)
    return capsys.readouterr().err


def test_vm_start_of_a_vm_started_meanwhile_says_its_own_words(pool, monkeypatch, capsys):
    server, session = pool
    hosts = session.xenapi.host.get_all()
    ref, uuid = server.add_vm("web", 2, G)
    release = pool_ops._release_earlier_place

    def started_meanwhile(*args, **kwargs):  # xapi's own vm-start, after vm-start's check, before its place
        session.xenapi.VM.start_on(ref, hosts[2], False, False)
        return release(*args, **kwargs)
    monkeypatch.setattr(pool_ops, "_release_earlier_place", started_meanwhile)
    said = _vm_start(server, hosts, monkeypatch, capsys, uuid)
    assert "is Running" in said and not any(words in said for words in PLUGIN_WORDS), said  # before: dry_run=true
    assert "vm-start starts a halted VM" in said and "Traceback" not in said, said
    plugin = " ".join(err(run(server, hosts[0], session._session, "place", {"vm": uuid})))
    assert plugin_words.DRY_RUN_SAID in plugin, plugin  # the plugin's place keeps its words


def test_vm_start_of_a_vm_another_host_placed_names_the_release_it_can_use(pool, monkeypatch, capsys):
    server, session = pool
    hosts = session.xenapi.host.get_all()
    ref, uuid = server.add_vm("web", 2, G)
    placer = ok(run(server, hosts[1], session._session, "place", {"vm": uuid}))
    assert placer["reserved"]
    server.without_plugin.add(hosts[1])  # its release there fails: the place there stands
    said = _vm_start(server, hosts, monkeypatch, capsys, uuid)
    here = session.xenapi.host.get_uuid(hosts[1])
    assert "is placed by host " + here in said and placing.FORCE_SAID in said, said
    assert "with force=true" not in said and "Traceback" not in said, said  # before: the plugin's argument
    assert server.vms[ref]["power_state"] == "Halted"
    plugin = " ".join(err(run(server, hosts[0], session._session, "place", {"vm": uuid})))
    assert "with " + plugin_words.FORCE_SAID in plugin, plugin  # the plugin's place keeps its words
