"""What the RPM declares besides its files: its scriptlets' need of systemd, its licenses,
and the folders it owns (an independent packager's review).

* The scriptlets run systemctl, yet nothing said so: rpm could order systemd after us in
  a transaction, or remove it before our ``%preun``.  ``Requires(post|preun|postun)``.
* ``License:`` named ours only, while the RPM carries attrs, cffi and pycparser; their
  license files were not marked ``%license``.  Here stand-in wheels of the three are
  staged as build_rpm.py stages PyPI's: each license file must be marked, and a wheel
  with none refuses the build.
* ``/var/lib/xapi-numa`` (the state database) and ``/run/xapi-numa`` (locks, batch
  records) belonged to no package.  /run is a tmpfs: systemd-tmpfiles makes it from a
  file the package ships, with the mode the code makes it with.
"""
import os
import re
import subprocess
import sys
import zipfile

import pytest
import rpm_scratch

from xapi_numa.backends import dom0, xen_records
from xapi_numa.ops import instance_lock
from xapi_numa.state import db

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="the RPM build runs on the build machine's Python")

BUNDLED = {"attrs": ("22.2.0", "MIT"), "cffi": ("1.15.1", "MIT"), "pycparser": ("2.21", "BSD-3-Clause")}


def stand_in_wheel(folder, name: str, version: str, license_file: bool = True) -> str:
    """A wheel of ``name`` as PyPI's looks to build_rpm.py: the package, and its dist-info
    with a LICENSE (unless not ``license_file``)."""
    path = os.path.join(str(folder), "{}-{}-py3-none-any.whl".format(name, version))
    info = "{}-{}.dist-info/".format(name, version)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(name + "/__init__.py", "")
        z.writestr(info + "METADATA", "Name: {}\nVersion: {}\n".format(name, version))
        if license_file:
            z.writestr(info + "LICENSE", "the license of {}\n".format(name))
    return path


def build_with_wheels(tmp, wheels) -> str:
    rpm_scratch.need_rpmbuild()
    module = rpm_scratch.load_build_rpm()
    module.release = lambda: "1"
    payload = os.path.join(str(tmp), "payload")
    module.stage(payload, rpm_scratch.fake_lib(os.path.join(str(tmp), "lib")), wheels)
    return module.build(payload, str(tmp))


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rpm-contents")
    wheels = [stand_in_wheel(tmp, name, version) for name, (version, _) in sorted(BUNDLED.items())]
    return build_with_wheels(tmp, wheels)


def query(rpm_path: str, fmt: str) -> list:
    out = subprocess.run(["rpm", "-qp", "--queryformat", fmt, rpm_path], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def test_the_scriptlets_require_systemd(ours):
    needs = set(query(ours, "[%{REQUIRENAME} %{REQUIREFLAGS:deptype}\n]"))
    assert {"systemd post", "systemd preun", "systemd postun"} <= needs, sorted(needs)


def test_license_names_every_bundled_distribution_and_marks_their_license_files(ours):
    (license_tag,) = query(ours, "%{LICENSE}")
    terms = license_tag.split(" AND ")
    assert terms[0] == "LGPL-2.1-only" and {spdx for _, spdx in BUNDLED.values()} <= set(terms), license_tag
    listed = query(ours, "[%{FILEFLAGS:fflags} %{FILENAMES}\n]")
    marked = {path for flags, path in (line.split(" ", 1) for line in listed) if "l" in flags}
    assert marked == {"/opt/xapi-numa/lib/python/{}-{}.dist-info/LICENSE".format(name, version)
                      for name, (version, _) in BUNDLED.items()}, sorted(marked)


def test_a_bundled_wheel_without_a_license_file_refuses_the_build(tmp_path):
    wheels = [stand_in_wheel(tmp_path, "attrs", "22.2.0"), stand_in_wheel(tmp_path, "pycparser", "2.21", False)]
    with pytest.raises(SystemExit, match=re.escape("pycparser-2.21.dist-info has no license file")):
        build_with_wheels(tmp_path, wheels)
    assert not list(tmp_path.glob("*.rpm"))


def test_the_state_and_run_folders_are_the_packages_root_only(ours):
    files = {path: (mode, flags) for mode, flags, path in
             (line.split(" ", 2) for line in query(ours, "[%{FILEMODES:perms} %{FILEFLAGS:fflags}. %{FILENAMES}\n]"))}
    state = os.path.dirname(db.DEFAULT_PATH)
    assert files[state][0] == "drwx------", files.get(state)
    # /run is a tmpfs: the package owns the folder, never puts it there (%ghost); systemd-tmpfiles makes it
    assert files["/run/xapi-numa"][0] == "drwx------" and "g" in files["/run/xapi-numa"][1]
    assert "/usr/lib/tmpfiles.d/xapi-numa.conf" in files
    # every user of /run/xapi-numa names that folder (the daemon, the plugin and the CLI alike)
    assert {instance_lock.RUN_DIR, xen_records.RUN_DIR, dom0.DEFAULT_RUN_DIR} == {"/run/xapi-numa"}


def test_systemd_tmpfiles_makes_the_run_folder_as_the_code_does():
    text = open(os.path.join(rpm_scratch.ROOT, "packaging", "xapi-numa.tmpfiles")).read()
    lines = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert lines == [["d", "/run/xapi-numa", "0700", "root", "root", "-"]]  # (os.makedirs(..., 0o700) in the code)


def test_the_documents_the_messages_name_are_in_the_rpm(ours):
    """Refusals and help send an admin to a document "in /opt/xapi-numa/doc" (the RPM's), and
    a dom0 has no checkout: the RPM carried none of them, not even the README."""
    package = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "xapi_numa")
    named = set()
    for folder, _, names in os.walk(package):
        for name in names:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    named |= set(re.findall(r"([\w-]+\.md) in /opt/xapi-numa/doc", f.read()))
    assert {"dom0-backends.md", "hvm.md", "vnuma.md"} <= named, named
    files = set(query(ours, "[%{FILENAMES}\n]"))
    assert {"/opt/xapi-numa/doc/" + name for name in named | {"README.md"}} <= files, sorted(
        f for f in files if "/doc" in f)
