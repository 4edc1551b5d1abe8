"""Review 4 (hostile input): a ``--pool`` URL holding a control character that is not
whitespace (``\\x01``, ``\\x7f``) passes the URL check (it refuses whitespace and
non-ASCII only) and fails in http.client: "cannot reach the pool master at 127.0.0.1:
xapi's answer broke off: InvalidURL: URL can't contain control characters", exit 1, as
if the master were down.  The rule: a refusal naming --pool, exit 2, before any
connection."""
import os

import pytest

from xapi_numa.cli.main import main


def topology_through(url, tmp_path, capsys):
    """(exit status, stderr) of ``topology --pool URL`` with a good user and password file."""
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    os.chmod(str(pw), 0o600)
    capsys.readouterr()
    code = main(["--pool", url, "--user", "root", "--password-file", str(pw), "topology"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("url", ["https://127.0.0.1:1/\x01", "https://127.0.0.1:1#\x7f", "https://127.0.0.1\x01:1"])
def test_a_pool_url_with_a_control_character_is_refused_naming_the_flag(tmp_path, capsys, url):
    code, err = topology_through(url, tmp_path, capsys)
    assert code == 2 and "--pool" in err, (code, err)
