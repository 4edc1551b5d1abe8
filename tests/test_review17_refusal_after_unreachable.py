"""xapi-numad logs each change of its xapi link's state once: a login refused after xapi
was unreachable (xapi back after a toolstack restart, the password changed meanwhile)
is such a change.

The link said an outage once, whatever came after: "xapi unreachable" stood in the log
for as long as the login was refused, an admin looking for a stopped toolstack."""
import logging

from xapi_numa.backends import xapi
from xapi_numa.ops.xapi_link import MAX_BACKOFF_S, XapiLink


class FakeSession:
    pass


def refused():
    return xapi.LoginRefused(["SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"], "root",
                             "xapi at unix:/var/lib/xcp/xapi")


def said(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "xapi-numad"]


def test_a_refusal_after_unreachable_is_logged_once(caplog):
    now = [0.0]
    answers = [ConnectionRefusedError(111, "connection refused"), refused(), refused(),
               ConnectionRefusedError(111, "connection refused"), FakeSession()]

    def login():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    link = XapiLink(login, lambda: now[0])
    with caplog.at_level(logging.INFO):
        assert link.use(lambda s: "ok") is None      # xapi away
        now[0] += 1.0
        assert link.use(lambda s: "ok") is None      # back, refusing the login: said
        assert said(caplog)[-1] == "xapi refused the login: running without it"
        assert link.refusal is not None and "refused the login of user 'root'" in link.refusal
        now[0] += MAX_BACKOFF_S
        assert link.use(lambda s: "ok") is None      # refused again: not said again
        now[0] += MAX_BACKOFF_S
        assert link.use(lambda s: "ok") is None      # away again: said
        assert link.refusal is None
        now[0] += MAX_BACKOFF_S
        assert link.use(lambda s: "ok") == "ok"
    assert said(caplog) == ["xapi unreachable: running without it", "xapi refused the login: running without it",
                            "xapi unreachable: running without it", "xapi reachable again"]
    refusal = [r for r in caplog.records if r.getMessage().startswith("xapi refused the login")][0]
    assert refusal.fields["user"] == "root" and refusal.fields["retry_in"] == MAX_BACKOFF_S
    assert link.refusal is None
