"""A login that fails once xapi's session ref is in our hands still logs that session out.

dom0's XenAPI.py before xen-api's CP-48623 (XenServer / XCP-ng 8.2 and earlier) reads the
API version in its ``_login`` right after storing the new session's ref: four more calls,
any of which xapi can refuse (an XenAPI.Failure).  ``xapi.log_in`` logged the session out
on any failure but an XapiError, which it re-raised at once: that session stayed on xapi
until it expired, and xapi-numad (``local_login``, which retries with back-off) left one
behind at each try."""
import pytest
import XenAPI

from xapi_numa.backends import xapi
from xapi_numa.ops.local_xapi import local_login


def test_a_failure_after_the_ref_arrived_leaves_no_session(pool, monkeypatch):
    server, _ = pool
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", server.url)
    monkeypatch.setenv("XAPI_NUMA_POOL_PASSWORD", "xenroot")
    before = set(server.sessions)
    real = XenAPI.Session._login

    def old_clients_login(self, method, params):
        real(self, method, params)  # the ref is stored; then the API version is read, and refused
        raise XenAPI.Failure(["INTERNAL_ERROR", "the version read failed"])
    monkeypatch.setattr(XenAPI.Session, "_login", old_clients_login)
    with pytest.raises(xapi.XapiError) as caught:
        local_login(5.0)
    assert caught.value.code == "INTERNAL_ERROR"
    assert set(server.sessions) == before


def test_a_refused_login_is_still_login_refused(pool, monkeypatch):
    server, _ = pool
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", server.url)
    monkeypatch.setenv("XAPI_NUMA_POOL_PASSWORD", "not the password")
    before = set(server.sessions)
    with pytest.raises(xapi.LoginRefused):
        local_login(5.0)
    assert set(server.sessions) == before
