"""The CLI's ``place --vm`` words its refusals with its own options, the plugin's place with its own.

The place's checks of the VM's record (``start_placement.startable``, ``not_placed_elsewhere``) are
the plugin's and the CLI's, and so were their words: the CLI told its user to pass ``dry_run=true``
(its option is ``--dry-run``) or to release ``here with force=true`` (the plugin's release argument;
the CLI's ``release --force`` drops only this host's reservation and undoes no other host's pin).
"""
import pytest

from test_cli_place_startable import PLACE_ARGS, _make
from test_plugin import err, run
from test_review19_what_if_guest_mask import cli_env
from xapi_numa.cli.main import main
from xapi_numa.state.ledger import Ledger

G = 1 << 30
PLUGIN_WORDS = ("dry_run=true", "here with force=true")


@pytest.mark.parametrize("database", [False, True])
@pytest.mark.parametrize("how, cli_says", [
    ("running", "or --dry-run"), ("template", "or --dry-run"), ("snapshot", "or --dry-run"),
    ("placed_elsewhere", "fn=release args:vm=")])
def test_the_cli_place_names_its_own_options_the_plugins_place_its_own(pool, monkeypatch, capsys, how, cli_says,
                                                                       database):
    server, session = pool
    hosts = session.xenapi.host.get_all()
    ref = _make(server, session, hosts, server.add_vm("web", 2, G)[0], how)
    uuid = server.vms[ref]["uuid"]
    if database:  # (none: the first place here checks before making it)
        Ledger(server.ledgers[hosts[0]])
    cli_env(server, hosts[0], monkeypatch)
    plugin = " ".join(err(run(server, hosts[0], session._session, "place", {"vm": uuid})))
    assert any(words in plugin for words in PLUGIN_WORDS), plugin  # the plugin's place keeps its words
    capsys.readouterr()
    assert main(["place", "--vm", uuid] + PLACE_ARGS) in (1, 2)
    said = capsys.readouterr().err
    assert cli_says in said and not any(words in said for words in PLUGIN_WORDS), said  # before: the plugin's
