"""A pool member's HOST_IS_SLAVE answer names the master's address; the login goes there.

The address was put in brackets whenever it held a ``:``, so an IPv6 master given already
in brackets (``[fd00::1]``) became ``https://[[fd00::1]]``, which no client can reach
(urlsplit: "Invalid IPv6 URL"): the login failed although the master was there.  Now the
address is bracketed once, whether xapi gave it bare or bracketed, and the URL keeps the
member's scheme, port and trailing ``/``."""
import urllib.parse

import pytest

from xapi_numa.backends import xapi


@pytest.mark.parametrize("given, port, expected", [
    ("fd00::1", "", "https://[fd00::1]"),
    ("[fd00::1]", "", "https://[fd00::1]"),
    ("fe80::1", ":8443", "https://[fe80::1]:8443/"),
    ("[fe80::1]", ":8443", "https://[fe80::1]:8443/"),
    (" [fe80::1] ", ":8443", "https://[fe80::1]:8443/"),
    ("192.0.2.10", ":8443", "https://192.0.2.10:8443/"),
])
def test_the_login_moves_to_the_masters_address_bracketed_once(monkeypatch, given, port, expected):
    tried = []

    def login_once(creds, ca_file=None, insecure=False, sessions=None):
        tried.append(creds.url)
        if len(tried) == 1:
            raise xapi.XapiError(["HOST_IS_SLAVE", given])
        urllib.parse.urlsplit(creds.url).port  # what the XML-RPC client reads: must be a URL
        return "session at " + creds.url
    monkeypatch.setattr(xapi, "_login_once", login_once)
    member = "https://member.example" + port + ("/" if port else "")
    assert xapi.login(xapi.Credentials(member, "root", "pw")) == "session at " + expected
    assert urllib.parse.urlsplit(tried[1]).hostname == given.strip().strip("[]")
