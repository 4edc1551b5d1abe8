"""A refused login (wrong password: SESSION_AUTHENTICATION_FAILED) is said as a refused
login, naming the user (never the password) and where, not as "xapi unreachable".

xapi-numad logged it as "xapi unreachable: running without it" and retried after 1 s,
2 s, 4 s ...: a login refused now is refused again until an admin changes something,
and each try is one more failed login in xapi's log; it now waits the longest back-off
at once.  The CLI said "xapi refused: SESSION_AUTHENTICATION_FAILED root ...", naming
no host."""
import logging

from xapi_numa.backends import xapi
from xapi_numa.cli.main import main
from xapi_numa.ops.xapi_link import MAX_BACKOFF_S, XapiLink, local_login

SECRET = "not-the-password-42"


def test_xapi_numad_says_the_login_was_refused_and_waits_the_longest_back_off(pool, monkeypatch, caplog):
    server, _ = pool
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", server.url)
    monkeypatch.setenv("XAPI_NUMA_POOL_PASSWORD", SECRET)
    now = [100.0]
    link = XapiLink(local_login, lambda: now[0])
    with caplog.at_level(logging.WARNING):
        assert link.use(lambda s: xapi.call(s.xenapi.VM.get_all)) is None
    said = [r for r in caplog.records if r.name == "xapi-numad"]
    assert len(said) == 1 and "refused the login" in said[0].getMessage() and "unreachable" not in said[0].getMessage()
    fields = said[0].fields
    assert fields["user"] == "root" and fields["xapi"] == server.url and fields["retry_in"] == MAX_BACKOFF_S
    assert SECRET not in repr(fields)
    logins = server.calls["session.login_with_password"]
    now[0] += MAX_BACKOFF_S - 1  # no new try within the back-off
    assert link.use(lambda s: xapi.call(s.xenapi.VM.get_all)) is None
    assert server.calls["session.login_with_password"] == logins


def test_the_cli_says_whose_login_where_was_refused(pool, tmp_path, capsys):
    server, _ = pool
    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    code = main(["--insecure", "--pool", server.url, "--user", "root", "--password-file", str(secret), "topology"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "refused the login of user 'root'" in err and "127.0.0.1" in err, err
    assert SECRET not in err and "unreachable" not in err and "Traceback" not in err
