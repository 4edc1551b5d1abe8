"""A ``--pool`` URL with a path (or a query, or a fragment) is refused before any network call.

``https://master/some/path`` passed the URL check, and the XML-RPC client posted the login to
that path: the master answered HTTP 404, said as "cannot reach the pool master at master: xapi
answered HTTP 404 Not Found", as if xapi were away.  A pool master's URL is its address:
``https://HOST[:PORT]``, a trailing ``/`` accepted (xapi takes XML-RPC at ``/``); anything else
after the address is refused naming --pool and that form, and nothing is sent."""
import os
import re
import socket

import pytest

from xapi_numa.backends import xapi
from xapi_numa.backends.xapi_credentials import check_pool_url
from xapi_numa.cli.main import main
from xapi_numa.errors import InvalidArgument


def _no_network(*args, **kwargs):
    raise AssertionError("a network call was made: {} {}".format(args, kwargs))


@pytest.mark.parametrize("tail", ["/some/path", "/RPC2x", "//", "/?x=1", "?x=1", "#top", "/#", "/?"])
def test_a_pool_url_with_a_path_is_refused_naming_pool_before_any_network_call(tmp_path, capsys, monkeypatch, tail):
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    os.chmod(str(pw), 0o600)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    capsys.readouterr()
    url = "https://master.example:8443" + tail
    code = main(["--pool", url, "--user", "root", "--password-file", str(pw), "vm-start", "web"])
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    said = re.sub(r"([?#]).*", r"\1...", tail)  # (a query or fragment is not quoted: it may hold a secret)
    assert "--pool" in err and "has {!r} after the pool master's address 'master.example:8443'".format(said) in err, err
    assert "https://HOST[:PORT][/]" in err, err
    assert "Traceback" not in err and "404" not in err, err


@pytest.mark.parametrize("url", ["https://master.example", "https://master.example/", "https://[fd00::1]:8443/",
                                 "HTTPS://Master.Example:443"])
def test_a_pool_url_that_is_an_address_with_or_without_a_trailing_slash_is_taken(url):
    assert check_pool_url(url).hostname in ("master.example", "fd00::1")


def test_a_pool_url_ending_in_a_slash_logs_in(pool):
    server, _ = pool
    session = xapi.login(xapi.Credentials(server.url + "/", "root", "xenroot"), insecure=True)
    try:
        assert xapi.call(session.xenapi.pool.get_all)
    finally:
        xapi.logout(session)
    with pytest.raises(InvalidArgument) as err:
        xapi.login(xapi.Credentials(server.url + "/some/path", "root", "xenroot"), insecure=True)
    assert err.value.field == "--pool" and "'/some/path'" in err.value.message, err.value.message


@pytest.mark.parametrize("url", ["https://fd00::1", "https://fd00::1/", "https://fd00::1:443", "http://fe80::1"])
def test_an_ipv6_master_without_brackets_is_refused_saying_they_are_needed(url):
    """IPv6 masters are taken (https://[fd00::1]); typed bare, the refusal said only "not a URL of a
    pool master (allowed: https://HOST[:PORT][/] ...)", which an IPv6 address seems to be."""
    with pytest.raises(InvalidArgument) as err:
        check_pool_url(url, insecure=True)
    said = err.value.message
    assert err.value.field == "--pool" and "an IPv6 address goes in brackets: https://[fd00::1]" in said, said


@pytest.mark.parametrize("url", ["https://m/?password=hunter2", "https://m?session_id=OpaqueRef:hunter2",
                                 "https://m/x#hunter2", "https://m:8443/?user=root&pw=hunter2"])
def test_a_query_or_fragment_refused_is_not_quoted(url):
    """A query or fragment may carry a secret (a password, a session id copied from a console URL):
    the refusal quoted it ("has '/?password=hunter2' after ..."), as it never quotes a password
    typed before the '@'.  It names what follows the address without it."""
    with pytest.raises(InvalidArgument) as err:
        check_pool_url(url)
    said = err.value.message
    assert "hunter2" not in said and "after the pool master's address" in said and "..." in said, said
