"""XML-RPC transports that give up: each call to xapi or xcp-rrdd has a deadline.

The transports the ``XenAPI`` module and ``xmlrpc.client`` bring wait for
ever.  A wedged xapi (one that takes a connection and never answers: seen
while it waits on a stuck storage or database operation) would hang
xapi-numad's cycle, and with it homing and the recovery of movers, as well
as the plugin and the CLI.  Here every connection carries a socket timeout:
no call waits longer than ``timeout`` seconds for the next bytes of its
answer (xapi sends an answer whole, so in practice for the answer).
:func:`patience` lengthens it for one call known to take long
(``VM.start_on``); :func:`deadline` shortens it for a call that is only best
effort (a logout); :func:`exactly` sets it either way, for a call with a deadline of its
own (a host's plugin, each step of a pool start).

Three transports, one rule: :class:`UnixTransport` (HTTP over a Unix socket:
dom0's ``/var/lib/xcp/xapi``, which ``XenAPI.xapi_local()`` uses, and
xcp-rrdd's), :class:`HttpTransport` and :class:`HttpsTransport`.
"""
import contextlib
import http.client
import socket
import ssl
import xmlrpc.client
from typing import Callable, Iterator, Optional


class _Deadline:
    """What the three transports share: a timeout applied to every connection they hand out.

    ``timeout`` may change between calls (:func:`patience`); a kept-alive
    connection already open gets the new value too."""

    timeout = 60.0

    def single_request(self, host, handler, request_body, verbose=False):
        """xmlrpc.client closes a kept-alive connection after an Exception only: after a
        Ctrl-C (KeyboardInterrupt) it kept it with a request sent and its answer unread,
        and the next call on it (the logout on the way out) failed without being sent."""
        try:
            return super().single_request(host, handler, request_body, verbose)
        except BaseException:
            self.close()
            raise

    def _timed(self, connection: http.client.HTTPConnection) -> http.client.HTTPConnection:
        connection.timeout = self.timeout  # the next connect() uses it
        if connection.sock is not None:
            connection.sock.settimeout(self.timeout)
        return connection


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except FileNotFoundError as err:
            sock.close()
            # the socket is gone while its daemon restarts (xapi removes and makes it again):
            # the same as a daemon not listening, not a missing file of ours
            raise ConnectionRefusedError(err.errno, "nothing listens at {}: {}".format(
                self._path, err.strerror)) from None
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class UnixTransport(_Deadline, xmlrpc.client.Transport):
    """HTTP over the Unix socket at ``path``; a new connection per call (as xapi_local's)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        self.path = path
        self.timeout = timeout

    def make_connection(self, host):
        return self._timed(_UnixConnection(self.path, self.timeout))


class HttpTransport(_Deadline, xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host):
        return self._timed(super().make_connection(host))


class HttpsTransport(_Deadline, xmlrpc.client.SafeTransport):
    def __init__(self, timeout: float, context: Optional[ssl.SSLContext] = None) -> None:
        super().__init__(context=context)
        self.timeout = timeout

    def make_connection(self, host):
        return self._timed(super().make_connection(host))


def transport_of(proxy) -> Optional[_Deadline]:
    """The deadline transport behind an XML-RPC proxy (a ``XenAPI.Session``), or None."""
    try:
        transport = proxy("transport")  # ServerProxy's documented way round its __getattr__
    except (AttributeError, TypeError):
        return None
    return transport if isinstance(transport, _Deadline) else None


@contextlib.contextmanager
def _timeout_for_a_while(proxy, pick: Callable[[float], float]) -> Iterator[None]:
    transport = transport_of(proxy)
    if transport is None:
        yield
        return
    before = transport.timeout
    transport.timeout = pick(before)
    try:
        yield
    finally:
        transport.timeout = before


def patience(proxy, seconds: float):
    """Calls made through ``proxy`` inside the block wait up to ``seconds`` (at least
    the transport's own timeout); a proxy without a deadline transport is left alone."""
    return _timeout_for_a_while(proxy, lambda before: max(before, seconds))


def deadline(proxy, seconds: float):
    """Calls made through ``proxy`` inside the block wait at most ``seconds`` (a best-effort
    call such as a logout); a proxy without a deadline transport is left alone."""
    return _timeout_for_a_while(proxy, lambda before: min(before, seconds))


def exactly(proxy, seconds: float):
    """Calls made through ``proxy`` inside the block wait ``seconds``, be that longer or shorter
    than the transport's own timeout: a call whose caller has less time left than that
    (a pool start near its deadline) must not wait the transport's whole timeout."""
    return _timeout_for_a_while(proxy, lambda before: seconds)
