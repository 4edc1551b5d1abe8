"""The plugin's ``place vm=... dry_run=true start_owner=...`` answered the dry run and ignored the
token without a word: a dry run holds nothing, and a pool vm-start sends its token only with its
place (and release) of the VM, never with its dry runs.  The pair is now refused, naming
start_owner, before anything is read."""
import pytest

from xapi_numa.errors import InvalidArgument
from xapi_numa.ops import start_hold
from xapi_numa.ops.pool import vm_start
from xapi_numa.plugin.functions import FUNCTIONS

VM = "01234567-89ab-cdef-0123-456789abcdef"


class NoHost:
    """A context that fails the test if the function reads anything before refusing."""

    def __getattr__(self, name: str):
        raise AssertionError("read {} before refusing".format(name))


@pytest.mark.parametrize("dry_run", ["true", " TRUE "])
def test_a_dry_run_with_a_start_owner_is_refused_naming_it(dry_run):
    with pytest.raises(InvalidArgument) as refused:
        FUNCTIONS["place"](NoHost(), {"vm": VM, "dry_run": dry_run, "start_owner": "token"})
    err = refused.value
    assert err.field == "start_owner" and "dry_run=true" in err.detail and "holds nothing" in err.detail, err.message
    assert "start_owner without dry_run" in err.allowed, err.message


def test_a_pool_start_never_sends_its_token_with_a_dry_run_and_still_starts(pool, monkeypatch):
    """(what the refusal rests on) vm-start's place and release carry its token, its dry runs none"""
    server, session = pool
    ref, uuid = server.add_vm("web", 1, 256 << 20)
    sent = []
    run_plugin = server.run_plugin

    def recorded(host, session_id, fn, args, path=None):
        sent.append((fn, dict(args)))
        return run_plugin(host, session_id, fn, args, path)

    monkeypatch.setattr(server, "run_plugin", recorded)
    vm_start(session, uuid)
    assert session.xenapi.VM.get_power_state(ref) == "Running"
    places = [args for fn, args in sent if fn == "place"]
    assert any(start_hold.START_OWNER_ARG in args for args in places), sent  # its own place
    assert any(args.get("dry_run") == "true" for args in places), sent
    assert not [a for a in places if start_hold.START_OWNER_ARG in a and a.get("dry_run") == "true"], sent
