"""An RPM upgrade restarts the services once the old package is gone, not in ``%post``.

On ``rpm -U`` rpm runs the new package's ``%post`` *before* the old package's
``%preun``, the removal of the old package's files and its ``%postun``; ``%posttrans``
comes last.  The spec restarted xapi-numad and xapi-numa-rrdd in ``%post``: they came
up on a tree still holding the old package's files (a module the new one no longer
ships was still importable) and before its scriptlets ran.  Here an upgrade really
runs in a scratch root, the old build carrying a file the new one does not: every
start and restart must come after that file is gone, and nothing may stop the
services after that.  The old package's ``%preun``/``%postun`` must act only on an
erase.
"""
import sys

import pytest
import rpm_scratch

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="the RPM build runs on the build machine's Python")

OLD_ONLY = "/opt/xapi-numa/lib/python/xapi_numa/_only_in_the_old_build.py"
UNITS = "xapi-numad.service xapi-numa-rrdd.service"
LIFECYCLE = ("start", "restart", "try-restart", "stop", "disable")


def verb(line: str) -> str:
    return line.split()[1]


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rpm-upgrade")
    old = rpm_scratch.build(tmp / "old", "1", extra_files=[OLD_ONLY])
    new = rpm_scratch.build(tmp / "new", "2")
    return old, new


def test_first_install_enables_then_starts_once_installed(builds, tmp_path):
    _, new = builds
    root = rpm_scratch.scratch_root(tmp_path)
    rpm_scratch.rpm(root, "-i", new)
    done = rpm_scratch.calls(root)
    assert [line for line in done if verb(line) in ("enable", "start")] == ["systemctl enable " + UNITS,
                                                                            "systemctl start " + UNITS], done


def test_upgrade_restarts_after_the_old_files_are_gone_and_stops_nothing(builds, tmp_path):
    old, new = builds
    root = rpm_scratch.scratch_root(tmp_path, watch=OLD_ONLY)
    rpm_scratch.rpm(root, "-i", old)
    rpm_scratch.calls(root)
    rpm_scratch.rpm(root, "-U", new)
    done = rpm_scratch.calls(root)
    assert not (root / OLD_ONLY.lstrip("/")).exists()
    lifecycle = [line for line in done if verb(line) in LIFECYCLE]
    assert lifecycle == ["systemctl try-restart " + UNITS], \
        "an upgrade is one restart of whichever runs, once the old package is gone: {}".format(done)
    reload_at = max(i for i, line in enumerate(done) if verb(line) == "daemon-reload")
    assert reload_at < done.index(lifecycle[0]), "units read again before the restart: {}".format(done)


def test_erase_stops_and_disables(builds, tmp_path):
    _, new = builds
    root = rpm_scratch.scratch_root(tmp_path)
    rpm_scratch.rpm(root, "-i", new)
    rpm_scratch.calls(root)
    rpm_scratch.rpm(root, "-e", "xapi-numa")
    done = rpm_scratch.calls(root)
    assert [line for line in done if verb(line) in LIFECYCLE] == ["systemctl stop " + UNITS,
                                                                  "systemctl disable " + UNITS], done
    assert not (root / "opt" / "xapi-numa").exists()


def test_outside_systemd_an_install_enables_and_starts_nothing(builds, tmp_path):
    """An installer's chroot or an image build: enabled for the next boot, nothing started."""
    _, new = builds
    root = rpm_scratch.scratch_root(tmp_path, systemd_runs=False)
    rpm_scratch.rpm(root, "-i", new)
    done = rpm_scratch.calls(root)
    assert done == ["systemctl enable " + UNITS], done


def test_a_systemctl_that_fails_is_a_warning_and_the_install_and_erase_go_on(builds, tmp_path):
    """A failed enable, start, stop or disable was silent: rpm said nothing, and the admin
    learnt at the next boot that the daemon never ran.  Each is now one line on rpm's
    stderr, and the transaction still succeeds (rpm_scratch.rpm checks its exit status)."""
    _, new = builds
    root = rpm_scratch.scratch_root(tmp_path, systemctl_fails=True)
    said = rpm_scratch.rpm(root, "-i", new).splitlines() + rpm_scratch.rpm(root, "-e", "xapi-numa").splitlines()
    warned = [line.split("'")[1] for line in said if line.startswith("xapi-numa: warning: 'systemctl ")]
    assert warned == ["systemctl enable " + UNITS, "systemctl daemon-reload", "systemctl start " + UNITS,
                      "systemctl stop " + UNITS, "systemctl disable " + UNITS, "systemctl daemon-reload"], said
    assert not [line for line in said if "See system logs" in line], "one line per failure: {}".format(said)
    assert not (root / "opt" / "xapi-numa").exists()
