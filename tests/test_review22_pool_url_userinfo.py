"""A ``--pool`` URL with a user name or password in it is refused, and never echoed.

``https://root:s3cret@master`` passed the URL check: the XML-RPC client sent
``root:s3cret`` to the master as HTTP Basic auth beside the login of --user and
--password-file, and a refusal of the URL echoed it (``'http://root:s3cret@...' is plain
http``: the password on stderr, in a CI log).  Now such a URL is refused naming --pool and
where its user and password go, showing it as ``https://...@master`` (review 22)."""
import os

import pytest

from xapi_numa.backends.xapi_credentials import credentials
from xapi_numa.cli.main import main
from xapi_numa.errors import InvalidArgument


@pytest.mark.parametrize("url", ["https://root:s3cret@127.0.0.1:1", "http://root:s3cret@127.0.0.1:1",
                                 "https://root:s3cret@[::1]:1/", "https://s3cret@127.0.0.1:99999"])
def test_a_pool_url_with_credentials_is_refused_without_showing_them(tmp_path, capsys, url):
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    os.chmod(str(pw), 0o600)
    capsys.readouterr()
    code = main(["--pool", url, "--user", "root", "--password-file", str(pw), "vm-placement", "web"])
    err = capsys.readouterr().err
    assert code == 2 and "--pool" in err and "...@" in err, (code, err)
    assert "s3cret" not in err and "Traceback" not in err, err


def test_the_credentials_files_pool_is_named_without_its_password(tmp_path, monkeypatch):
    for name in ("XAPI_NUMA_POOL_PASSWORD", "XAPI_NUMA_POOL_USER", "XAPI_NUMA_POOL_URL"):
        monkeypatch.delenv(name, raising=False)
    saved = tmp_path / "credentials"
    saved.write_text("url=https://root:s3cret@pool-a.example\nusername=root\npassword=x\n")
    os.chmod(str(saved), 0o600)
    with pytest.raises(InvalidArgument) as err:
        credentials("https://pool-b.example", config=str(saved))
    assert "pool-a" in err.value.message and "s3cret" not in err.value.message, err.value.message


def test_an_ipv6_master_with_a_port_is_still_a_pool_url():
    from xapi_numa.backends.xapi_credentials import check_pool_url
    assert check_pool_url("https://[fd00::1]:8443").hostname == "fd00::1"
