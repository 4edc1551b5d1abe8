"""xapi-numa-rrdd --uid: xcp-rrdd joins the uid to its shared-memory directory
(/dev/shm/metrics) unchecked, so a '/' or '..' put the file (and its removal at exit)
elsewhere and the plugin died with an OS error naming a path, not the flag
(review 15g's finding).  Refused now, naming --uid and what it may hold."""
import pytest

from xapi_numa import rrdd_plugin


@pytest.mark.parametrize("uid", ["../etc", "a/b", ".hidden", "", "x" * 65, "caf\u00e9", "a b"])
def test_a_uid_xcp_rrdd_would_turn_into_another_path_is_refused(uid, capsys):
    with pytest.raises(SystemExit) as caught:
        rrdd_plugin.parse_args(["--uid", uid, "--file", "/tmp/x"])
    assert caught.value.code == 2
    assert "--uid" in capsys.readouterr().err


@pytest.mark.parametrize("uid", ["xapi-numa", "xapi_numa.test", "numa2"])
def test_plain_names_are_taken(uid):
    assert rrdd_plugin.parse_args(["--uid", uid]).uid == uid
