import os

import pytest
from hypothesis import HealthCheck, settings

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
