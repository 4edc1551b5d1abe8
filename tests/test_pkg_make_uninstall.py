"""`make uninstall` takes away what `make install` put on a xapi host, and nothing else.

There was no way back from `make install` but by hand: pip's distribution, and the
plugin and unit it writes outside of pip's sight.  `make uninstall` (same ``PYTHON`` and
``DESTDIR``) removes the xapi-numa distribution (modules, launchers) and those two files;
it leaves the dependencies (there before, perhaps, or used by others) and every other
file.  A plugin or unit that is not the file `make install` writes for this Python is
not ours to remove: it refuses, saying which, and changes nothing.
"""
import os
import subprocess
import sys

import pytest
from make_install import ROOT, make_install, make_venv

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="make install runs on the build machine's Python")

PLUGIN = os.path.join("etc", "xapi.d", "plugins", "numa")
UNIT = os.path.join("etc", "systemd", "system", "xapi-numad.service")
OTHERS = {os.path.join("etc", "xapi.d", "plugins", "another-plugin"): "#!/bin/sh\n",
          os.path.join("etc", "systemd", "system", "another.service"): "[Service]\n"}


def files_under(folder) -> set:
    found = set()
    for dirpath, _, filenames in os.walk(str(folder)):
        found.update(os.path.relpath(os.path.join(dirpath, name), str(folder)) for name in filenames)
    return found


def make_uninstall(python, tmp):
    return subprocess.run(["make", "-C", ROOT, "uninstall", "PYTHON=" + python, "DESTDIR=" + str(tmp / "dest"),
                           "XENSOURCE_INVENTORY=" + str(tmp / "no-inventory")], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)


def installed_with_neighbours(tmp):
    """A virtualenv and a DESTDIR with files of others, then `make install` into them;
    the python, and the venv's files before the install."""
    python = make_venv(tmp)
    before = files_under(tmp / "venv")
    for name, text in OTHERS.items():
        os.makedirs(os.path.dirname(str(tmp / "dest" / name)), exist_ok=True)
        (tmp / "dest" / name).write_text(text)
    make_install(python, tmp)
    return python, before


def imports(python, module) -> bool:
    return subprocess.run([python, "-c", "import " + module], cwd="/", stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def test_uninstall_removes_what_install_put_there_and_nothing_else(tmp_path):
    python, before = installed_with_neighbours(tmp_path)
    done = make_uninstall(python, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    dest = tmp_path / "dest"
    assert files_under(dest) == set(OTHERS), "DESTDIR after: {}".format(sorted(files_under(dest)))
    assert all((dest / name).read_text() == text for name, text in OTHERS.items())
    venv = files_under(tmp_path / "venv")
    assert before <= venv, "removed what was there before: {}".format(sorted(before - venv)[:10])
    ours = sorted(f for f in venv - before if "xapi_numa" in f or "xapi-numa" in f)
    assert not ours, "left behind: {}".format(ours[:10])
    assert not imports(python, "xapi_numa")
    assert imports(python, "attr") and imports(python, "XenAPI"), "the dependencies stay"


def test_uninstall_refuses_a_plugin_it_did_not_write_and_changes_nothing(tmp_path):
    python, _ = installed_with_neighbours(tmp_path)
    plugin = tmp_path / "dest" / PLUGIN
    plugin.write_text("#!/bin/sh\necho someone else's numa plugin\n")
    venv_before, dest_before = files_under(tmp_path / "venv"), files_under(tmp_path / "dest")
    done = make_uninstall(python, tmp_path)
    assert done.returncode != 0
    assert str(plugin) in done.stdout and "not the file make install writes" in done.stdout, done.stdout[-2000:]
    assert files_under(tmp_path / "venv") == venv_before and files_under(tmp_path / "dest") == dest_before
    assert imports(python, "xapi_numa")


def test_uninstall_on_a_dom0_refuses_and_points_to_rpm(tmp_path):
    inventory = tmp_path / "xensource-inventory"
    inventory.write_text("INSTALLATION_UUID='x'\n")
    done = subprocess.run(["make", "-C", ROOT, "uninstall", "XENSOURCE_INVENTORY=" + str(inventory), "PYTHON=false",
                           "DESTDIR=" + str(tmp_path / "dest")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    assert done.returncode != 0 and "rpm -e xapi-numa" in done.stdout, done.stdout


def test_uninstall_refuses_a_package_imported_from_elsewhere(tmp_path):
    """A Python that imports xapi_numa from a checkout (pip install -e, a .pth): that is no
    install of `make install`'s, and removing it would break a developer's tree."""
    python = make_venv(tmp_path)
    elsewhere = tmp_path / "checkout"
    (elsewhere / "xapi_numa").mkdir(parents=True)
    (elsewhere / "xapi_numa" / "__init__.py").write_text("")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    with open(os.path.join(purelib, "a-checkout.pth"), "w") as f:
        f.write(str(elsewhere) + "\n")
    venv_before = files_under(tmp_path / "venv")
    done = make_uninstall(python, tmp_path)
    assert done.returncode != 0 and "runs xapi_numa from " + str(elsewhere) in done.stdout, done.stdout[-2000:]
    assert files_under(tmp_path / "venv") == venv_before and (elsewhere / "xapi_numa" / "__init__.py").exists()
