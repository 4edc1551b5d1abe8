"""The CLI's ``xapi-numa release VM``.

The CLI's release asked xapi for the hold before knowing whether there was anything to
release: a VM with no reservation here was refused as held by a start, or while xapi could not
be read, instead of being told there is none.
"""
import time

from test_cli_release_start_hold import _placed_by_the_cli
from xapi_numa.cli.main import main
from xapi_numa.ops import start_hold


def test_the_cli_release_of_a_vm_with_no_reservation_says_so_without_asking_xapi(pool, monkeypatch, capsys):
    server, host, uuid = _placed_by_the_cli(pool, monkeypatch)
    assert main(["release", uuid]) == 0
    capsys.readouterr()
    asked = sum(server.calls.values())
    assert main(["release", uuid]) == 1
    said = capsys.readouterr().err
    assert "no reservation for {}".format(uuid) in said and sum(server.calls.values()) == asked, said
    # a start holding it, or this host's xapi away, is no reason to refuse: nothing here to release
    session = pool[1]
    session.xenapi.VM.add_to_other_config(session.xenapi.VM.get_by_uuid(uuid), start_hold.START_KEY,
                                          start_hold.start_token(time.time(), 300, uuid))
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", "http://127.0.0.1:9")
    assert main(["release", uuid]) == 1
    said = capsys.readouterr().err
    assert "no reservation for {}".format(uuid) in said and "cannot be read" not in said, said
    assert "vm-start" not in said and "Traceback" not in said, said
