import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, settings

if sys.version_info < (3, 7):  # the suite also runs on dom0's Python 3.6 (make test-py36)
    _run = subprocess.run

    def _run_36(*args, capture_output=False, text=None, **kwargs):
        """subprocess.run as the tests write it, on 3.6 (no capture_output, no text)."""
        if capture_output:
            kwargs.setdefault("stdout", subprocess.PIPE)
            kwargs.setdefault("stderr", subprocess.PIPE)
        if text is not None:
            kwargs["universal_newlines"] = text
        return _run(*args, **kwargs)

    subprocess.run = _run_36

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

# tests/xen/dom0 runs inside dom0 of a real Xen host (make xen-test), not here.
collect_ignore = ["xen"]

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture
def fixture_text():
    def read(name: str) -> str:
        with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
            return f.read()

    return read


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN_DIR = os.path.join(REPO, "plugins")
SHARED = os.path.join(os.path.dirname(REPO), "shared")
# In CI (CI=true) .ci/run installs everything the suite needs: a missing tool or file
# there is a failure, never a skip that hides what was not tested.
IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> None:
    """Something this test needs is not here: skipped on a developer's machine, failed in CI."""
    if IN_CI:
        pytest.fail(reason + " (CI=true: .ci/run provides it, so this is a failure)")
    pytest.skip(reason)


def libxenuma():
    """The cffi API-mode module (``make native``): skipped where it is not built, failed in CI."""
    try:
        import xapi_numa._libxenuma as native
    except ImportError:
        missing("xapi_numa._libxenuma is built by `make native` (needs libxen-dev)")
    return native


def needs(present: bool, reason: str):
    """``skipif`` for a missing tool, except in CI, where the test runs (and fails)."""
    return pytest.mark.skipif(not present and not IN_CI, reason=reason + " (a failure when CI=true)")


@pytest.fixture
def pool(tmp_path):
    """A running loopback XenAPI pool of 3 simulated 2-node hosts, and a logged-in session."""
    import XenAPI

    from xapi_loopback import LoopbackXapi
    from xapi_numa.core.topology import Topology

    hosts = [(f"host{i}", Topology.uniform(2, 4, 4 << 30, [[10, 21], [21, 10]])) for i in range(3)]
    server = LoopbackXapi(str(tmp_path), hosts, PLUGIN_DIR)
    server.start()
    session = XenAPI.Session(server.url)
    session.xenapi.login_with_password("root", "xenroot", "2.21", "tests")
    yield server, session
    server.stop()


@pytest.fixture
def ctx(pool):
    """The pool's server and session, its first host (where plugins are called) and the session id."""
    server, session = pool
    return server, session, session.xenapi.host.get_all()[0], session._session
