"""Every message that names a ``--pool`` URL says it whole (a password typed before the ``@`` said
as ``...@``, a query or fragment as ``?...``: they may hold a secret).

The messages cut the URL at 24 characters (``shown``'s limit for a bad value): "'https://xenserver-po...'",
and the credentials file's pool and the one typed, both cut there, read the same where the admin
was to see how they differ; the master's address and what follows it were cut the same way.
"""
import os

import pytest

from xapi_numa.backends.xapi_credentials import check_pool_url, credentials
from xapi_numa.errors import InvalidArgument

MASTER = "xenserver-master-01.corp.example.com"


@pytest.mark.parametrize("url, said", [
    ("http://" + MASTER, "'http://{}' is plain http".format(MASTER)),
    ("ftp://" + MASTER + "/", "'ftp://{}/' is not a URL of a pool master".format(MASTER)),
    ("https://root:hunter2@" + MASTER, "'https://...@{}' holds a user name or password".format(MASTER)),
    ("https://{}:8443/some/long/path/to/the/rpc?session_id=hunter2".format(MASTER),
     "'https://{0}:8443/some/long/path/to/the/rpc?...' has '/some/long/path/to/the/rpc?...' after the pool "
     "master's address '{0}:8443'".format(MASTER)),
])
def test_a_refused_pool_url_is_said_whole_but_for_its_secrets(url, said):
    with pytest.raises(InvalidArgument) as err:
        check_pool_url(url)
    message = err.value.message
    assert err.value.field == "--pool" and said in message, message  # before: 'https://xenserver-mas...'
    assert "hunter2" not in message, message


def test_the_credentials_files_pool_and_the_one_typed_are_told_apart(tmp_path, monkeypatch):
    for name in ("XAPI_NUMA_POOL_URL", "XAPI_NUMA_POOL_USER", "XAPI_NUMA_POOL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    saved, typed = "https://xenserver-pool-a.corp.example.com", "https://xenserver-pool-b.corp.example.com/?pw=hunter2"
    path = tmp_path / "credentials"
    path.write_text("url={}\nusername=root\npassword=secret\n".format(saved))
    os.chmod(str(path), 0o600)
    with pytest.raises(InvalidArgument) as err:
        credentials(typed, config=str(path))
    message = err.value.message
    assert "are for {!r}, not 'https://xenserver-pool-b.corp.example.com/?...'".format(saved) in message, message
    assert "hunter2" not in message and "secret" not in message, message
