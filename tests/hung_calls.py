"""Test helpers for calls that must not hang: a guard thread that turns a hang into a
failure, and the loopback pool with short deadlines whose plugin can be made to hang."""
import contextlib
import threading
import types
from typing import Callable, Iterator

from xapi_loopback import LoopbackXapi
from xapi_numa.backends import xapi

GUARD = 60.0  # seconds past which a call counts as hung (the deadlines the tests set are a few seconds)


def within(fn: Callable[[], object], seconds: float = GUARD) -> object:
    """``fn()``'s result or exception, from a thread; fails the test if it takes ``seconds``."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed back to the test
            box["error"] = err
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the call hung: it has no deadline"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@contextlib.contextmanager
def pool_with_a_hang(pool, monkeypatch) -> Iterator[tuple]:
    """The loopback pool with short deadlines (a call's 1 s, a host query's 2 s, a host's
    place, settle or plan 1 s; VM.start_on's 25 s), a session, and
    ``hang(when)``: from then on a plugin call for which ``when(host_ref, fn, args)`` holds
    waits (until the test ends) before it is answered."""
    server, _ = pool
    monkeypatch.setattr(xapi, "CALL_TIMEOUT", 1.0)
    monkeypatch.setattr(xapi, "QUERY_TIMEOUT", 2.0)
    monkeypatch.setattr(xapi, "PLACE_TIMEOUT", 1.0)
    monkeypatch.setattr(xapi, "LONG_CALL_TIMEOUT", 25.0)
    session = xapi.login(xapi.Credentials(server.url, "root", "xenroot"), insecure=True)
    release = threading.Event()
    real = LoopbackXapi.host_call_plugin

    def hang(when: Callable[[str, str, dict], bool]) -> None:
        def call_plugin(self, session_id, host, plugin, fn, args):
            if when(host, fn, args):
                release.wait(40)
            return real(self, session_id, host, plugin, fn, args)
        monkeypatch.setattr(server, "host_call_plugin", types.MethodType(call_plugin, server))
    try:
        yield server, session, hang
    finally:
        release.set()
