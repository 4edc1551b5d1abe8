"""How xapi-numad (and the CLI's dry runs of it) log in to this host's xapi: over its local
socket (``$XAPI_NUMA_XENAPI_URL`` in tests), as ``$XAPI_NUMA_POOL_USER`` (root), with the
daemon's call deadline; and where that is, for log lines (:func:`xapi_address`)."""
import os
from typing import Optional

from xapi_numa.backends import xapi
from xapi_numa.backends.open import sim_path

# Seconds xapi-numad waits for one xapi call.  Its reads wait in a thread of their own
# (ops/xapi_reader), not in its cycle; a settle (made in the cycle) can wait this long.
DAEMON_CALL_TIMEOUT = 20.0


def xapi_address() -> str:
    """Where :func:`local_login` goes, for a log line that says what was unreachable."""
    return os.environ.get("XAPI_NUMA_XENAPI_URL") or "unix:" + xapi.LOCAL_SOCKET


def consulted_for(spec: str) -> bool:
    """Is this host's xapi read for the backend ``spec``?  Not on a simulated host, which has
    none, unless ``$XAPI_NUMA_XENAPI_URL`` names one (tests' loopback xapi): xapi-numad and the
    CLI's commands that read xapi keep this one rule (the CLI says "not consulted")."""
    return not sim_path(spec) or bool(os.environ.get("XAPI_NUMA_XENAPI_URL"))


def local_login(timeout: Optional[float] = None, socket_path: str = xapi.LOCAL_SOCKET) -> object:
    """A session with the local xapi (or $XAPI_NUMA_XENAPI_URL in tests); each call
    waits up to ``timeout`` seconds (DAEMON_CALL_TIMEOUT)."""
    session = xapi.local_session(DAEMON_CALL_TIMEOUT if timeout is None else timeout, socket_path)
    xapi.log_in(session, os.environ.get("XAPI_NUMA_POOL_USER", "root"), os.environ.get("XAPI_NUMA_POOL_PASSWORD", ""),
                "2.21", "xapi-numad", "xapi at " + xapi_address())
    return session
